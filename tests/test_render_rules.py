"""The rules of issue 2, asserted field by field on the rendered bundle of each fixture.

The snapshots show the whole output for review; these tests pin down what each rule requires,
with the expected values worked out from the fixture (see the comment at the top of each
fixture), so that a careless `--snapshot-update` cannot make a broken rule pass.
"""

from __future__ import annotations

import base64
import functools
from typing import List, Optional

import pytest
import yaml as pyyaml  # PyYAML reads YAML 1.1, as kubectl does
from ruamel.yaml import YAML

from kubectl_dlm import errors
from tests.conftest import FIXTURES, TARGET_ARGS, run_cli

SERVER_FIELDS = {"uid", "resourceVersion", "generation", "creationTimestamp", "managedFields", "ownerReferences",
                 "finalizers", "selfLink", "deletionTimestamp"}
DROPPED_ANNOTATIONS = {"kubectl.kubernetes.io/last-applied-configuration", "kubevirt.io/latest-observed-api-version",
                       "kubevirt.io/storage-observed-api-version"}


def load_all(text: str) -> List[dict]:
    return [d for d in YAML(typ="safe", pure=True).load_all(text) if d is not None]


def fixture_objects(name: str) -> List[dict]:
    out = []
    for doc in load_all((FIXTURES / f"{name}.yaml").read_text()):
        out.extend(doc["items"] if doc.get("kind") == "List" else [doc])
    return out


def source(name: str, kind: str, obj_name: str) -> dict:
    return next(o for o in fixture_objects(name) if o["kind"] == kind and o["metadata"]["name"] == obj_name)


@functools.lru_cache(maxsize=None)
def rendered(fixture: str, args: tuple):
    """Rendering is deterministic (test_cli.py checks it), so each fixture renders once per session."""
    return run_cli(["render", "-f", FIXTURES / f"{fixture}.yaml", *args])


class Bundle:
    def __init__(self, fixture: str, *extra: str, args=TARGET_ARGS):
        self.result = rendered(fixture, (*args, *extra))
        assert self.result.code == errors.OK, self.result.stderr
        self.docs = load_all(self.result.stdout)

    def get(self, kind: str, name: Optional[str] = None) -> dict:
        found = self.all(kind, name)
        assert len(found) == 1, f"{len(found)} {kind} {name or ''} in the bundle"
        return found[0]

    def all(self, kind: str, name: Optional[str] = None) -> List[dict]:
        return [d for d in self.docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]

    def vm(self) -> dict:
        return self.get("VirtualMachine")

    def storage(self, dv: str) -> dict:
        return self.get("DataVolume", dv)["spec"]["storage"]


SUCCESS = ["datavolume-templates", "pvc-volumes", "hotplug-persisted", "hotplug-vmi-only", "block-and-filesystem",
           "maps", "cloudinit-nocloud", "cloudinit-configdrive", "access-credentials", "sysprep-secret",
           "sysprep-configmap", "configmap-secret-volumes", "containerdisk-pull-secret", "instancetype-namespaced",
           "instancetype-cluster", "legacy-running-true", "legacy-running-false", "persistent-tpm-efi",
           "disks-not-live-migratable"]


def walk_keys(value, path=""):
    if isinstance(value, dict):
        for k, v in value.items():
            yield f"{path}.{k}", k
            yield from walk_keys(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from walk_keys(v, f"{path}[{i}]")


@pytest.mark.parametrize("name", SUCCESS)
def test_every_object_is_clean_and_tied_to_its_migration(name):
    b = Bundle(name)
    vm_name = fixture_objects(name)[0]["metadata"]["name"]
    migration_ids = set()
    for doc in b.docs:
        m = doc["metadata"]
        assert set(m) <= {"name", "namespace", "labels", "annotations"}, m
        assert "status" not in doc and "generateName" not in m
        labels, annotations = m["labels"], m["annotations"]
        assert labels["app.kubernetes.io/managed-by"] == "kubectl-dlm"
        assert labels["dlm.kubevirt-tools.io/vm"] == vm_name
        migration_ids.add(labels["dlm.kubevirt-tools.io/migration-id"])
        side, phase = annotations["dlm.kubevirt-tools.io/side"], annotations["dlm.kubevirt-tools.io/phase"]
        assert (phase, side) in {("prepare", "target"), ("receive", "target"), ("send", "source")}
        assert m["namespace"] == ("prod-b" if side == "target" else "prod")
        assert annotations["dlm.kubevirt-tools.io/source"].startswith("prod/")
        assert not DROPPED_ANNOTATIONS & set(annotations)
        if doc["kind"] != "ControllerRevision":  # its data is the pinned revision, copied as it is
            leaked = [p for p, k in walk_keys(doc.get("spec") or {}) if k in SERVER_FIELDS]
            assert leaked == [], f"{doc['kind']} {m['name']}: {leaked}"
    assert len(migration_ids) == 1


@pytest.mark.parametrize("name", SUCCESS + ["example"])
def test_yaml_1_1_readers_see_the_same_objects(name):
    """kubectl reads YAML 1.1: `on`, `yes`, `n` unquoted would turn strings into booleans."""
    args = ["--example"] if name == "example" else ["-f", FIXTURES / f"{name}.yaml", *TARGET_ARGS]
    result = run_cli(["render", *args]) if name == "example" else rendered(name, TARGET_ARGS)
    assert result.code == 0
    assert [d for d in pyyaml.safe_load_all(result.stdout) if d] == load_all(result.stdout)


def test_configmap_values_that_look_like_booleans_stay_strings():
    cm = Bundle("configmap-secret-volumes").get("ConfigMap", "web-config")
    yaml11 = [d for d in pyyaml.safe_load_all(rendered("configmap-secret-volumes", TARGET_ARGS).stdout)
              if d and d["kind"] == "ConfigMap"][0]
    assert yaml11["data"]["cache"] == "yes" and yaml11["metadata"]["labels"]["enabled"] == "on"
    assert cm["data"] == source("configmap-secret-volumes", "ConfigMap", "web-config")["data"]


@pytest.mark.parametrize("name", SUCCESS)
def test_identity_and_empty_maps_are_kept(name):
    """firmware UUID and MACs come from the running VMI; `masquerade: {}`, `pod: {}`, `bridge: {}` survive."""
    b = Bundle(name)
    vm_name = fixture_objects(name)[0]["metadata"]["name"]
    vmi = source(name, "VirtualMachineInstance", vm_name)
    src_vm = source(name, "VirtualMachine", vm_name)
    tspec = b.vm()["spec"]["template"]["spec"]
    assert tspec["domain"]["firmware"]["uuid"] == vmi["spec"]["domain"]["firmware"]["uuid"]
    macs = {i["name"]: i["mac"] for i in vmi["status"]["interfaces"]}
    for iface in tspec["domain"]["devices"]["interfaces"]:
        assert iface["macAddress"] == macs[iface["name"]]
        src_iface = next(i for i in src_vm["spec"]["template"]["spec"]["domain"]["devices"]["interfaces"]
                         if i["name"] == iface["name"])
        for binding in ("masquerade", "bridge"):
            if binding in src_iface:
                assert iface[binding] == src_iface[binding] == {}
    assert tspec["networks"][0] == {"name": "default", "pod": {}}
    for dv in b.all("DataVolume"):
        assert dv["spec"]["source"] == {"blank": {}}
    # Volume names never change: KubeVirt matches the two sides' volumes by name.
    src_names = [v["name"] for v in src_vm["spec"]["template"]["spec"]["volumes"]]
    assert [v["name"] for v in tspec["volumes"]][:len(src_names)] == src_names


@pytest.mark.parametrize("name", SUCCESS)
def test_target_vm_waits_as_receiver_and_restores_the_run_strategy(name):
    b = Bundle(name)
    src = fixture_objects(name)[0]["spec"]
    spec = b.vm()["spec"]
    assert spec["runStrategy"] == "WaitAsReceiver" and "running" not in spec
    expected = src.get("runStrategy") or {True: "Always", False: "Halted"}[src["running"]]
    assert b.vm()["metadata"]["annotations"]["kubevirt.io/restore-run-strategy"] == expected


def test_legacy_running_fields():
    assert Bundle("legacy-running-true").vm()["metadata"]["annotations"]["kubevirt.io/restore-run-strategy"] == "Always"
    assert Bundle("legacy-running-false").vm()["metadata"]["annotations"]["kubevirt.io/restore-run-strategy"] == "Halted"


@pytest.mark.parametrize("name", SUCCESS)
def test_the_two_migrations_share_one_id(name):
    b = Bundle(name)
    vm_name = fixture_objects(name)[0]["metadata"]["name"]
    receive, send = b.all("VirtualMachineInstanceMigration")
    mid = receive["metadata"]["labels"]["dlm.kubevirt-tools.io/migration-id"]
    assert receive["spec"] == {"vmiName": vm_name, "receive": {"migrationID": mid}}
    assert send["spec"] == {"vmiName": vm_name, "sendTo": {"migrationID": mid, "connectURL": "192.0.2.20:9185"}}
    assert receive["metadata"]["namespace"] == "prod-b" and send["metadata"]["namespace"] == "prod"


def test_datavolume_templates():
    b = Bundle("datavolume-templates")
    # Block: the PVC's status.capacity (21Gi), not the 20Gi request; Filesystem: the request.
    assert b.storage("pg-root") == {"accessModes": ["ReadWriteOnce"], "volumeMode": "Block",
                                    "storageClassName": "local-block", "resources": {"requests": {"storage": "21Gi"}}}
    assert b.storage("pg-data") == {"accessModes": ["ReadWriteOnce"], "volumeMode": "Filesystem",
                                    "storageClassName": "standard", "resources": {"requests": {"storage": "50Gi"}}}
    dvts = b.vm()["spec"]["dataVolumeTemplates"]
    assert [d["metadata"] for d in dvts] == [{"name": "pg-root"}, {"name": "pg-data", "namespace": "prod-b"}]
    src = source("datavolume-templates", "VirtualMachine", "pg")["spec"]["dataVolumeTemplates"]
    assert [d["spec"] for d in dvts] == [d["spec"] for d in src]
    # The blank DVs carry the template names, so KubeVirt does not import the templates again.
    assert {d["metadata"]["name"] for d in dvts} == {d["metadata"]["name"] for d in b.all("DataVolume")}


def test_pvc_volumes():
    b = Bundle("pvc-volumes")
    assert b.storage("files-os") == {"accessModes": ["ReadWriteMany"], "volumeMode": "Filesystem",
                                     "storageClassName": "nfs", "resources": {"requests": {"storage": "8Gi"}}}
    assert b.storage("files-scratch")["resources"]["requests"]["storage"] == "10752Mi"
    assert b.storage("files-scratch")["volumeMode"] == "Block"


def test_hotplug_volume_in_the_vm_spec():
    b = Bundle("hotplug-persisted")
    assert b.storage("app-logs")["resources"]["requests"]["storage"] == "5Gi"
    volumes = b.vm()["spec"]["template"]["spec"]["volumes"]
    assert {"name": "hp-logs", "dataVolume": {"name": "app-logs", "hotpluggable": True}} in volumes


def test_hotplug_volume_only_in_the_vmi():
    b = Bundle("hotplug-vmi-only")
    assert b.storage("cache-scratch")["resources"]["requests"]["storage"] == "2Gi"
    tspec = b.vm()["spec"]["template"]["spec"]
    assert tspec["volumes"][-1] == {"name": "hot-cache",
                                    "persistentVolumeClaim": {"claimName": "cache-scratch", "hotpluggable": True}}
    assert tspec["domain"]["devices"]["disks"][-1] == {"name": "hot-cache", "disk": {"bus": "scsi"}}
    assert ("warning: cache: volume hot-cache is hotplugged into the running VM but not in its spec; "
            "the target VM gets it as a persisted hotplug volume") in b.result.stderr_lines


def test_block_and_filesystem_sizes():
    b = Bundle("block-and-filesystem")
    assert b.storage("blk-root")["resources"]["requests"]["storage"] == "10244Mi"  # capacity
    assert b.storage("blk-root")["volumeMode"] == "Block"
    assert b.storage("blk-logs")["resources"]["requests"]["storage"] == "20Gi"  # request
    assert b.storage("blk-logs")["volumeMode"] == "Filesystem"  # the PVC had none: Kubernetes' default


def test_block_to_filesystem_through_a_mapping_file():
    b = Bundle("block-and-filesystem", "--mapping-file", str(FIXTURES / "mapping-block-to-filesystem.yaml"))
    # 10244Mi of Block data on Filesystem, CDI's default overhead 0.06 kept free twice: 10244 / 0.88 = 11640.9 -> 11641Mi.
    assert b.storage("blk-root") == {"accessModes": ["ReadWriteOnce"], "volumeMode": "Filesystem",
                                     "storageClassName": "cephfs", "resources": {"requests": {"storage": "11641Mi"}}}
    # Mapped by class name only: volume mode and access modes are the source's.
    assert b.storage("blk-logs") == {"accessModes": ["ReadWriteOnce"], "volumeMode": "Filesystem",
                                     "storageClassName": "standard-b", "resources": {"requests": {"storage": "20Gi"}}}


def test_storage_class_map():
    b = Bundle("maps", "--storage-class-map", "gold=platinum")
    assert b.storage("router-root")["storageClassName"] == "platinum"
    assert b.storage("router-state")["storageClassName"] == "silver"  # unmapped: kept


def test_network_map():
    b = Bundle("maps", "--network-map", "lan-net=prod-b/lan-net-b", "--network-map", "infra/storage-net=infra-b/storage")
    assert b.vm()["spec"]["template"]["spec"]["networks"] == [
        {"name": "default", "pod": {}},
        {"name": "lan", "multus": {"networkName": "prod-b/lan-net-b"}},
        {"name": "storage", "multus": {"networkName": "infra-b/storage"}},
    ]
    assert [line for line in b.result.stderr_lines if "NetworkAttachmentDefinition" in line] == [
        "note: router needs NetworkAttachmentDefinition prod-b/lan-net-b (network lan) on the target",
        "note: router needs NetworkAttachmentDefinition infra-b/storage (network storage) on the target",
    ]


def test_network_map_by_qualified_source_name():
    b = Bundle("maps", "--network-map", "prod/lan-net=shared/lan")
    assert b.vm()["spec"]["template"]["spec"]["networks"][1]["multus"] == {"networkName": "shared/lan"}


def test_unmapped_networks_are_kept_and_listed():
    b = Bundle("maps")
    assert [n.get("multus") for n in b.vm()["spec"]["template"]["spec"]["networks"]] == [
        None, {"networkName": "lan-net"}, {"networkName": "infra/storage-net"}]
    assert "note: router needs NetworkAttachmentDefinition prod-b/lan-net (network lan) on the target" in b.result.stderr_lines


def test_claim_map():
    b = Bundle("maps", "--claim-map", "router-state=router-state-b")
    assert {d["metadata"]["name"] for d in b.all("DataVolume")} == {"router-root", "router-state-b"}
    state = b.get("DataVolume", "router-state-b")
    assert state["metadata"]["annotations"]["dlm.kubevirt-tools.io/source"] == "prod/router-state"
    volumes = b.vm()["spec"]["template"]["spec"]["volumes"]
    assert volumes[1] == {"name": "state", "persistentVolumeClaim": {"claimName": "router-state-b"}}


@pytest.mark.parametrize("name, secrets", [
    ("cloudinit-nocloud", ["ci-nocloud-network", "ci-nocloud-userdata"]),
    ("cloudinit-configdrive", ["ci-drive-network", "ci-drive-userdata"]),
    ("access-credentials", ["bastion-passwords", "bastion-ssh-keys"]),
    ("sysprep-secret", ["win-a-sysprep"]),
    ("configmap-secret-volumes", ["web-tls"]),
    ("containerdisk-pull-secret", ["registry-creds"]),
])
def test_referenced_secrets_are_copied_with_type_and_data(name, secrets):
    b = Bundle(name)
    assert sorted(s["metadata"]["name"] for s in b.all("Secret")) == secrets
    for secret_name in secrets:
        copied, original = b.get("Secret", secret_name), source(name, "Secret", secret_name)
        assert copied["type"] == original["type"]
        assert copied["data"] == original["data"]
        assert copied.get("immutable") == original.get("immutable")
        user_labels = {k: v for k, v in copied["metadata"]["labels"].items() if not k.startswith(("app.kubernetes.io/managed-by", "dlm."))}
        assert user_labels == original["metadata"].get("labels", {})
    note = f"note: the bundle includes {len(secrets)} Secret(s) copied from the source, with their data; use --secrets reference to leave the data out"
    assert note in b.result.stderr_lines


def test_pull_secret_keeps_its_type():
    assert Bundle("containerdisk-pull-secret").get("Secret", "registry-creds")["type"] == "kubernetes.io/dockerconfigjson"


def test_secret_user_metadata_is_kept_and_server_metadata_dropped():
    s = Bundle("cloudinit-nocloud").get("Secret", "ci-nocloud-userdata")
    assert s["immutable"] is True
    assert s["metadata"]["annotations"]["team"] == "platform"
    assert s["metadata"]["labels"]["app"] == "ci-nocloud"


@pytest.mark.parametrize("name, configmap", [("sysprep-configmap", "win-b-sysprep"), ("configmap-secret-volumes", "web-config")])
def test_referenced_configmaps_are_copied(name, configmap):
    copied, original = Bundle(name).get("ConfigMap", configmap), source(name, "ConfigMap", configmap)
    for key in ("data", "binaryData", "immutable"):
        assert copied.get(key) == original.get(key)


def test_namespaced_instancetype_preference_and_pinned_revisions():
    b = Bundle("instancetype-namespaced")
    it, pref = b.get("VirtualMachineInstancetype", "u1-small"), b.get("VirtualMachinePreference", "fedora-pref")
    assert it["spec"] == source("instancetype-namespaced", "VirtualMachineInstancetype", "u1-small")["spec"]
    assert pref["spec"] == source("instancetype-namespaced", "VirtualMachinePreference", "fedora-pref")["spec"]
    vm_spec = b.vm()["spec"]
    for matcher in (vm_spec["instancetype"], vm_spec["preference"]):
        revision = b.get("ControllerRevision", matcher["revisionName"])
        original = source("instancetype-namespaced", "ControllerRevision", matcher["revisionName"])
        assert revision["data"] == original["data"] and revision["revision"] == original["revision"]
    # Prerequisites first: the VM comes after everything it references.
    kinds = [d["kind"] for d in b.docs]
    assert kinds == ["VirtualMachineInstancetype", "ControllerRevision", "VirtualMachinePreference", "ControllerRevision",
                     "VirtualMachine", "VirtualMachineInstanceMigration", "VirtualMachineInstanceMigration"]


def test_cluster_instancetype_is_a_prerequisite():
    b = Bundle("instancetype-cluster")
    assert not b.all("VirtualMachineClusterInstancetype") and not b.all("VirtualMachineClusterPreference")
    assert b.get("ControllerRevision")["metadata"]["name"] == b.vm()["spec"]["instancetype"]["revisionName"]
    assert [line for line in b.result.stderr_lines if "cluster-scoped" in line] == [
        "note: cluster-typed needs VirtualMachineClusterInstancetype u1.medium (cluster-scoped) on the target",
        "note: cluster-typed needs VirtualMachineClusterPreference fedora (cluster-scoped) on the target",
    ]


def test_persistent_tpm_and_efi_render_with_a_warning_and_no_state_pvc():
    b = Bundle("persistent-tpm-efi")
    assert {d["kind"] for d in b.docs} == {"VirtualMachine", "VirtualMachineInstanceMigration"}
    assert b.vm()["spec"]["template"]["spec"]["domain"]["devices"]["tpm"] == {"persistent": True}
    warning = [line for line in b.result.stderr_lines if line.startswith("warning:")]
    assert len(warning) == 1
    assert "persistent TPM and persistent EFI" in warning[0] and "RWX" in warning[0] and "not rendered" in warning[0]


def test_disks_not_live_migratable_is_not_a_refusal():
    b = Bundle("disks-not-live-migratable")
    assert b.storage("rwo-root")["resources"]["requests"]["storage"] == "8Gi"


# --- Secrets never leak -------------------------------------------------------------------------

def secret_values(name: str) -> List[str]:
    values = []
    for obj in fixture_objects(name):
        if obj["kind"] == "Secret":
            for v in (obj.get("data") or {}).values():
                values += [v, base64.b64decode(v).decode("utf-8", "replace").strip()]
    return [v for v in values if len(v) >= 8]


SECRET_FIXTURES = ["cloudinit-nocloud", "cloudinit-configdrive", "access-credentials", "sysprep-secret",
                   "configmap-secret-volumes", "containerdisk-pull-secret"]


@pytest.mark.parametrize("name", SECRET_FIXTURES)
@pytest.mark.parametrize("mode", ["include", "reference", "omit"])
def test_secret_values_never_reach_stderr(name, mode):
    result = run_cli(["render", "-f", FIXTURES / f"{name}.yaml", *TARGET_ARGS, "--secrets", mode])
    assert result.code == 0
    values = secret_values(name)
    assert values
    assert not [v for v in values if v in result.stderr]
    if mode != "include":
        assert "kind: Secret" not in result.stdout
        assert not [v for v in values if v in result.stdout]


@pytest.mark.parametrize("name", SECRET_FIXTURES)
def test_output_dir_leaves_secret_data_out_by_default(name, tmp_path):
    out = tmp_path / "bundle"
    result = run_cli(["render", "-f", FIXTURES / f"{name}.yaml", *TARGET_ARGS, "--output-dir", out])
    assert result.code == 0
    written = "".join(p.read_text() for p in out.rglob("*") if p.is_file())
    assert not [v for v in secret_values(name) if v in written + result.stderr]
    index = YAML(typ="safe").load((out / "dlm-bundle.yaml").read_text())
    expected = sorted(o["metadata"]["name"] for o in fixture_objects(name) if o["kind"] == "Secret")
    assert sorted(s["name"] for s in index["secretsToCopy"]) == expected


def same(a, b) -> bool:
    """Equal, and of the same types all the way down (a tuple is not a list here)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


@pytest.mark.parametrize("name", SUCCESS + ["example"])
def test_each_document_carries_the_object_its_text_parses_to(name):
    """migrate and apply send Document.data instead of parsing the text again: it must be that text's object."""
    from kubectl_dlm import pipeline
    from kubectl_dlm.commands.render import example_path

    path = example_path() if name == "example" else FIXTURES / f"{name}.yaml"
    request = pipeline.Request(filename=str(path), to_namespace="prod-b", connect_url="192.0.2.20:9185", secrets="include")
    result = pipeline.run(request, after=True)
    assert result.docs
    for doc in result.docs + result.after:
        parsed = YAML(typ="safe", pure=True).load(doc.text)
        assert same(doc.data, parsed), f"{doc.item.kind} {doc.item.name}: {doc.data!r} != {parsed!r}"
