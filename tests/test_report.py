"""`kubectl dlm report`: kubectl_dlm.diagnostics (pure) and the archive from the test clusters."""

from __future__ import annotations

import io
import tarfile

import pytest

from kubectl_dlm import diagnostics, errors

VM = {"kind": "VirtualMachine", "metadata": {"name": "vm1"}, "spec": {"template": {"spec": {"volumes": [
    {"name": "root", "dataVolume": {"name": "vm1-root"}},
    {"name": "data", "persistentVolumeClaim": {"claimName": "vm1-data"}},
    {"name": "ci", "cloudInitNoCloud": {"secretRef": {"name": "vm1-userdata"}, "networkDataSecretRef": {"name": "x"}}},
    {"name": "cfg", "secret": {"secretName": "vm1-config"}},
    {"name": "sys", "sysprep": {"secret": {"name": "vm1-unattend"}}},
]}}}}


def test_volume_claims_and_secrets():
    dvs, pvcs, secrets = diagnostics.volume_claims(VM)
    assert dvs == {"vm1-root"} and pvcs == {"vm1-root", "vm1-data"}
    assert secrets == {"vm1-userdata", "x", "vm1-config", "vm1-unattend"}


def test_relevant_events_are_those_about_our_objects_oldest_first():
    def event(name, kind, obj, at):
        return {"metadata": {"name": name}, "involvedObject": {"kind": kind, "name": obj}, "lastTimestamp": at}

    events = [event("b", "VirtualMachine", "vm1", "2026-01-02T00:00:00Z"), event("c", "Pod", "other", "2026-01-01T00:00:00Z"),
              event("a", "VirtualMachineInstance", "vm1", "2026-01-01T00:00:00Z")]
    picked = diagnostics.relevant_events(events, {("VirtualMachine", "vm1"), ("VirtualMachineInstance", "vm1")})
    assert [e["metadata"]["name"] for e in picked] == ["a", "b"]


def test_archive_is_deterministic_and_lists_what_is_left_out():
    contents = diagnostics.Contents()
    contents.add("source/virtualmachine-vm1.yaml", VM)
    contents.left_out += diagnostics.secrets_left_out("source", "prod", {"vm1-userdata"}) + [diagnostics.NO_EVENT_LOG]
    header = diagnostics.header("0.1.0", "vm1", {"source": "west/prod", "target": "east/prod"})
    data = diagnostics.archive(contents, header, "dlm-report-vm1")
    assert data == diagnostics.archive(contents, header, "dlm-report-vm1")
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        assert tar.getnames() == ["dlm-report-vm1/README.md", "dlm-report-vm1/source/virtualmachine-vm1.yaml"]
        readme = tar.extractfile("dlm-report-vm1/README.md").read().decode()
    assert "* kubectl-dlm version: 0.1.0" in readme and "* source cluster: west/prod" in readme
    assert "* Secret prod/vm1-userdata (source): Secrets and their values are never included" in readme
    assert "kubectl-dlm keeps none on disk" in readme


def test_an_existing_file_is_never_overwritten(cli, tmp_path):
    existing = tmp_path / "r.tar.gz"
    existing.write_text("keep me")
    result = cli("report", "vm1", "--kubeconfig", "/nonexistent", "--output-file", str(existing))
    assert result.code == errors.CONFLICT
    assert result.stderr.splitlines()[0] == f"error: {existing} already exists"
    assert existing.read_text() == "keep me"


@pytest.mark.cluster
def test_report_from_the_test_clusters_never_holds_secret_values(kubevirt, cli, tmp_path):
    from tests.kubevirt.tier import vm_manifest

    clusters = kubevirt.clusters
    src, dst = kubevirt.namespaces("source"), kubevirt.namespaces("source")
    vm = vm_manifest("vm1", data_volume=True)
    spec = vm["spec"]["template"]["spec"]
    spec["domain"]["devices"]["disks"].append({"name": "cloudinit", "disk": {"bus": "virtio"}})
    spec["volumes"].append({"name": "cloudinit", "cloudInitNoCloud": {"secretRef": {"name": "vm1-userdata"}}})
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "vm1-userdata"}, "type": "Opaque",
              "data": {"userdata": "c2VjcmV0LXZhbHVlLTQyCg=="}}
    kubevirt.run_vm("source", src, vm, secrets=[secret])
    out = tmp_path / "report.tar.gz"
    result = cli("report", "vm1", "--kubeconfig", str(clusters.kubeconfig), "--context", "source", "-n", src,
                 "--to-namespace", dst, "--output-file", str(out))
    assert result.code == errors.OK, result.stderr
    with tarfile.open(out) as tar:
        names = tar.getnames()
        texts = {n: tar.extractfile(n).read().decode() for n in names}
    everything = "".join(texts.values())
    assert "c2VjcmV0LXZhbHVlLTQyCg==" not in everything and "secret-value-42" not in everything
    assert {"dlm-report-vm1/source/virtualmachine-vm1.yaml", "dlm-report-vm1/source/virtualmachineinstance-vm1.yaml",
            "dlm-report-vm1/source/kubevirt-kubevirt.yaml"} <= set(names)
    readme = texts["dlm-report-vm1/README.md"]
    assert f"* Secret {src}/vm1-userdata (source): Secrets and their values are never included" in readme
    assert f"* VirtualMachine {dst}/vm1 on the target cluster: not found" in readme
    assert result.stdout.startswith(f"wrote {out}: ")


@pytest.mark.parametrize("obj, path", [
    ({"kind": "VirtualMachine", "spec": {"template": {"spec": {"volumes": [
        {"name": "ci", "cloudInitNoCloud": {"userData": "#cloud-config\npassword: hunter2\n"}}]}}}},
     ("spec", "template", "spec")),
    ({"kind": "VirtualMachineInstance", "spec": {"volumes": [
        {"name": "ci", "cloudInitNoCloud": {"userData": "#cloud-config\npassword: hunter2\n"}}]}}, ("spec",)),
])
def test_inline_cloud_init_is_left_out_and_listed(obj, path):
    redacted, notes = diagnostics.redact_inline(obj, "VM prod/vm1 (source)")
    spec = redacted
    for key in path:
        spec = spec[key]
    assert spec["volumes"][0]["cloudInitNoCloud"]["userData"] == "<left out: 32 characters>"
    assert notes == ["VM prod/vm1 (source): volume ci cloudInitNoCloud.userData (32 characters): "
                     "inline cloud-init data may hold credentials"]
    assert "hunter2" in str(obj) and "hunter2" not in str(redacted)  # the input is not changed
