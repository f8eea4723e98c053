"""Every object rendered from every manifest in ../shared/examples/ validates against the CRD schemas.

The examples are bare manifests, not exports of running VMs, so each is wrapped into what a
`kubectl get vm,vmi,dv,pvc,secret,cm -o yaml` of it would show (see `export_of`):

* a running VMI (firmware UUID, a MAC per interface), and for a VMI-only example a VM whose
  `spec.template.spec` is the VMI's spec (as shared/examples/README.md suggests);
* a Bound PVC for every claim and DataVolume, a Secret/ConfigMap for every reference, and the
  instancetype/preference objects of the other example files;
* the two user-guide sysprep blocks have no `apiVersion` upstream: it is added.

Handled honestly, not papered over:

* `user-guide_vmi-{configmap,secret,serviceaccount}-disk.yaml` have a bare `disk:` (null), which
  the real schema rejects ("must be of type object"). The renderer copies the spec verbatim, so
  their VM is asserted to fail validation at exactly that path and nowhere else; the same example
  with `disk: {}` must then validate completely.
* `user-guide_vm-persistent-efi.partial.yaml` is a fragment without `domain.devices`, which the
  schema requires: the same treatment (fails only there; validates once `devices: {}` is added).
  `user-guide_vm-persistent-tpm.partial.yaml` is a fragment too but schema-valid: it renders as is.
* `user-guide_vmi-cloudinit{nocloud,configdrive}-secretref.yaml` use a LUN disk, which DLM
  refuses: the refusal is asserted, and the example is validated with the LUN as a plain disk.
* the sysprep blocks name their claim `windows_pvc`, not a valid object name upstream either: the
  name check below lists it as the one known exception.

VirtualMachine, VirtualMachineInstanceMigration and DataVolume are validated against both the
KubeVirt main schemas (`crds/kubevirt-main/`) and the v1.7.1 CRDs (`crds/v1.7.1/`); the copied
instancetypes/preferences against the main schemas (no v1.7.1 CRD exists for them). Secrets,
ConfigMaps and ControllerRevisions are core kinds without a CRD here. Unknown fields are errors:
the API server would prune them silently, so a typo in a template would otherwise pass.
"""

from __future__ import annotations

import copy
import functools
import re
from pathlib import Path
from typing import Dict, List, Tuple

import jsonschema
import pytest
from ruamel.yaml import YAML

from kubectl_dlm import errors
from kubectl_dlm.refs import references
from tests.conftest import FIXTURES, TARGET_ARGS, run_cli, shared_dir

yaml = YAML(typ="safe", pure=True)
SHARED = shared_dir()
pytestmark = pytest.mark.skipif(not (SHARED / "crds").is_dir(), reason=f"no reference data at {SHARED}: set DLM_SHARED_DIR")

INSTANCETYPE_KINDS = {"VirtualMachineInstancetype", "VirtualMachinePreference",
                      "VirtualMachineClusterInstancetype", "VirtualMachineClusterPreference"}
LUN = {"user-guide_vmi-cloudinitnocloud-secretref", "user-guide_vmi-cloudinitconfigdrive-secretref"}


# --- schemas --------------------------------------------------------------------------------------

def kube_schema(node):
    """A Kubernetes structural schema as plain JSON Schema (draft 7), strict about unknown fields."""
    if isinstance(node, list):
        return [kube_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: kube_schema(v) for k, v in node.items() if not k.startswith("x-kubernetes-") and k != "nullable"}
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if (out.get("type") == "object" and "properties" in out and "additionalProperties" not in out
            and not node.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


def _crd_schema(path: Path, version: str):
    crd = yaml.load(path.read_text())
    return next(v["schema"]["openAPIV3Schema"] for v in crd["spec"]["versions"] if v["name"] == version)


@functools.lru_cache(maxsize=None)
def validators() -> Dict[str, List[Tuple[str, jsonschema.Draft7Validator]]]:
    main, v171 = SHARED / "crds" / "kubevirt-main", SHARED / "crds" / "v1.7.1"
    raw = {
        "VirtualMachine": [("main", yaml.load((main / "kubevirt.io_v1_virtualmachine.schema.yaml").read_text())["openAPIV3Schema"]),
                           ("v1.7.1", _crd_schema(v171 / "kubevirt.io_virtualmachines.yaml", "v1"))],
        "VirtualMachineInstanceMigration": [
            ("main", yaml.load((main / "kubevirt.io_v1_virtualmachineinstancemigration.schema.yaml").read_text())["openAPIV3Schema"]),
            ("v1.7.1", _crd_schema(v171 / "kubevirt.io_virtualmachineinstancemigrations.yaml", "v1"))],
        "DataVolume": [("main", _crd_schema(main / "cdi.kubevirt.io_datavolumes.crd.yaml", "v1beta1")),
                       ("v1.7.1", _crd_schema(v171 / "cdi.kubevirt.io_datavolumes.yaml", "v1beta1"))],
        "VirtualMachineInstancetype": [("main", yaml.load(
            (main / "instancetype.kubevirt.io_v1beta1_virtualmachineinstancetype.schema.yaml").read_text())["openAPIV3Schema"])],
        "VirtualMachinePreference": [("main", yaml.load(
            (main / "instancetype.kubevirt.io_v1beta1_virtualmachinepreference.schema.yaml").read_text())["openAPIV3Schema"])],
    }
    return {kind: [(name, jsonschema.Draft7Validator(kube_schema(s))) for name, s in schemas] for kind, schemas in raw.items()}


def schema_errors(obj) -> List[str]:
    """'<schema family>: <path>: <message>' for every violation of every schema of obj's kind."""
    found = []
    for family, validator in validators().get(obj["kind"], []):
        for err in validator.iter_errors(obj):
            found.append(f"{family}: {'.'.join(str(p) for p in err.absolute_path)}: {err.message}")
    return sorted(found)


def test_the_schemas_are_strict_enough():
    """The converted schemas accept a known-good VM and reject what they must (else the test proves nothing)."""
    good = yaml.load((SHARED / "examples" / "kubevirt-examples_vm-alpine-datavolume.yaml").read_text())
    assert schema_errors(good) == []
    bad = copy.deepcopy(good)
    bad["spec"]["template"]["spec"]["domain"]["devices"] = "a string"
    assert any("domain.devices" in e for e in schema_errors(bad))
    typo = copy.deepcopy(good)
    typo["spec"]["runStrategyy"] = "Always"
    assert len(schema_errors(typo)) == 2 and all("runStrategyy" in e for e in schema_errors(typo))
    vmim = {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstanceMigration", "metadata": {"name": "m"},
            "spec": {"vmiName": "v", "sendTo": {"migrationID": "x"}}}
    assert len(schema_errors(vmim)) == 2 and all("connectURL" in e for e in schema_errors(vmim))


# --- wrapping examples into exports ---------------------------------------------------------------

def examples() -> Dict[str, List[dict]]:
    return {p.name[:-5]: [d for d in yaml.load_all(p.read_text()) if d] for p in sorted((SHARED / "examples").glob("*.yaml"))}


def vm_examples() -> List[str]:
    if not (SHARED / "examples").is_dir():
        return []
    return [name for name, docs in examples().items() if docs[0].get("kind") in ("VirtualMachine", "VirtualMachineInstance")]


def export_of(name: str, repair: bool) -> List[dict]:
    """The example as an export of a running VM in namespace src (repair: fix what upstream got wrong)."""
    all_examples = examples()
    (obj,) = copy.deepcopy(all_examples[name])
    obj.setdefault("apiVersion", "kubevirt.io/v1")
    if obj["kind"] == "VirtualMachineInstance":
        template = {"spec": obj["spec"]}
        if obj["metadata"].get("labels"):
            template["metadata"] = {"labels": obj["metadata"]["labels"]}
        vm = {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "metadata": {"name": obj["metadata"]["name"]},
              "spec": {"runStrategy": "Always", "template": template}}
    else:
        vm = obj
    vm["metadata"]["namespace"] = "src"
    tspec = vm["spec"]["template"]["spec"]
    if repair:
        for disk in tspec.get("domain", {}).get("devices", {}).get("disks", []):
            if "disk" in disk and disk["disk"] is None:
                disk["disk"] = {}
            if "lun" in disk:
                disk["disk"] = disk.pop("lun") or {}
        tspec.setdefault("domain", {}).setdefault("devices", {})
    name_ = vm["metadata"]["name"]
    interfaces = (tspec.get("domain", {}).get("devices") or {}).get("interfaces") or [{"name": "default"}]
    vmi = {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance",
           "metadata": {"name": name_, "namespace": "src", "uid": "00000000-0000-4000-8000-00000000000a"},
           "spec": {"domain": {"firmware": {"uuid": "5b1c1b8e-1a2b-5c3d-9e4f-000000000001"}}},
           "status": {"phase": "Running", "conditions": [{"type": "LiveMigratable", "status": "True"}],
                      "interfaces": [{"name": i["name"], "mac": f"02:00:00:00:00:{n:02x}"} for n, i in enumerate(interfaces)]}}
    objects = [vm, vmi]
    refs = references(vm, vmi)
    for claim in refs.claims:
        objects.append({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": claim.claim, "namespace": "src"},
                        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10Gi"}},
                                 "storageClassName": "standard", "volumeMode": "Filesystem"},
                        "status": {"phase": "Bound", "capacity": {"storage": "10Gi"}}})
    for secret in refs.secrets:
        objects.append({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": secret, "namespace": "src"},
                        "type": "Opaque", "data": {"key": "dmFsdWU="}})
    for cm in refs.configmaps:
        objects.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": cm, "namespace": "src"},
                        "data": {"key": "value"}})
    for docs in all_examples.values():  # the instancetype/preference objects of the other example files
        for doc in docs:
            if doc.get("kind") in INSTANCETYPE_KINDS:
                doc = copy.deepcopy(doc)
                doc["metadata"]["namespace"] = "src"
                objects.append(doc)
    return objects


def render_example(name: str, tmp_path: Path, repair: bool):
    path = tmp_path / f"{name}.yaml"
    with path.open("w") as f:
        YAML().dump({"apiVersion": "v1", "kind": "List", "items": export_of(name, repair)}, f)
    return run_cli(["render", "-f", path, "-n", "src", "--to-namespace", "dst", "--connect-url", "192.0.2.20:9185"])


def docs_of(result) -> List[dict]:
    return [d for d in yaml.load_all(result.stdout) if d]


def bare_disks(*indexes):
    return sorted(f"{family}: spec.template.spec.domain.devices.disks.{i}.disk: None is not of type 'object'"
                  for family in ("main", "v1.7.1") for i in indexes)


EXPECTED_INVALID = {  # example -> the errors its upstream manifest carries into the rendered VM
    "user-guide_vmi-configmap-disk": bare_disks(2),
    "user-guide_vmi-secret-disk": bare_disks(2),
    "user-guide_vmi-serviceaccount-disk": bare_disks(0, 1),
    "user-guide_vm-persistent-efi.partial": ["main: spec.template.spec.domain: 'devices' is a required property",
                                             "v1.7.1: spec.template.spec.domain: 'devices' is a required property"],
}


def test_every_example_is_covered():
    names = vm_examples()
    assert len(names) == 19 and set(EXPECTED_INVALID) | LUN <= set(names)


@pytest.mark.parametrize("name", vm_examples())
def test_rendered_example_validates(name, tmp_path):
    result = render_example(name, tmp_path, repair=False)
    if name in LUN:
        assert result.code == errors.REFUSED and result.stdout == ""
        assert "is a LUN" in result.stderr_lines[0]
        result = render_example(name, tmp_path, repair=True)
    assert result.code == 0, result.stderr
    docs = docs_of(result)
    kinds = [d["kind"] for d in docs]
    assert kinds.count("VirtualMachine") == 1 and kinds.count("VirtualMachineInstanceMigration") == 2
    for doc in docs:
        found = schema_errors(doc)
        if doc["kind"] == "VirtualMachine" and name in EXPECTED_INVALID:
            assert found == EXPECTED_INVALID[name]
        else:
            assert found == [], f"{doc['kind']} {doc['metadata']['name']}"


@pytest.mark.parametrize("name", sorted(EXPECTED_INVALID))
def test_repaired_invalid_example_validates(name, tmp_path):
    result = render_example(name, tmp_path, repair=True)
    assert result.code == 0, result.stderr
    assert [(d["kind"], schema_errors(d)) for d in docs_of(result) if schema_errors(d)] == []


DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


@pytest.mark.parametrize("name", vm_examples())
def test_rendered_names_are_valid_object_names(name, tmp_path):
    docs = docs_of(render_example(name, tmp_path, repair=True))
    bad = sorted({d["metadata"]["name"] for d in docs if not DNS1123.match(d["metadata"]["name"])})
    assert bad == (["windows_pvc"] if "sysprep" in name else [])  # upstream's own claim name is invalid


# --- the project's fixtures, against the same schemas ----------------------------------------------

FIXTURE_CASES = sorted(p.stem for p in FIXTURES.glob("*.yaml") if not p.stem.startswith(("refuse-", "mapping-")))


@pytest.mark.parametrize("name", FIXTURE_CASES)
def test_rendered_fixture_validates(name):
    result = run_cli(["render", "-f", FIXTURES / f"{name}.yaml", *TARGET_ARGS])
    assert result.code == 0, result.stderr
    docs = docs_of(result)
    assert {"VirtualMachine", "VirtualMachineInstanceMigration"} <= {d["kind"] for d in docs}
    assert [(d["kind"], d["metadata"]["name"], schema_errors(d)) for d in docs if schema_errors(d)] == []
    assert all(DNS1123.match(d["metadata"]["name"]) for d in docs)
