"""`kubectl dlm` end to end on KubeVirt's own virt-api, virt-controller and synchronization-controller;
virt-handler (tests/kubevirt/handler.py), the scheduler and kubelet are played.

Each test asserts the end state KubeVirt's controllers leave on both clusters, not only the plugin's
exit code. More of kubectl dlm end to end on this tier: tests/e2e (fixture `kubevirt`, tier.py); ten
VMs at a time: tests/e2e/test_survive.py.
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from kubectl_dlm import cli, errors
from tests.harness.apiserver import ApiError
from tests.kubevirt import handler
from tests.kubevirt.played import wait_for
from tests.kubevirt.test_live import vm_manifest
from tests.kubevirt.tier import Tier

# No --skip-checks: migrate's checks pass here as on a real pair of clusters (test_check.py).
FOLLOW = ("--sync-timeout", "60", "--timeout", "60", "-o", "plain")
ROOT = Path(__file__).resolve().parents[2]
KV = "/apis/kubevirt.io/v1/namespaces/{ns}/{kind}"


@pytest.fixture
def dlm(kubevirt_clusters, handlers, capsys):
    def run(*args: str):
        code = cli.run(list(args) + ["--kubeconfig", str(kubevirt_clusters.kubeconfig)])
        out = capsys.readouterr()
        return code, out.out, out.err
    return run


def get(cluster, ns: str, kind: str, name: str = ""):
    try:
        return cluster.request("GET", KV.format(ns=ns, kind=kind) + (f"/{name}" if name else ""))
    except ApiError as e:
        if e.status == 404:
            return None
        raise


def dump(kubevirt_clusters, ns: str) -> str:
    """For an assertion message: the pods, VMIMs and VMIs of both clusters in this namespace."""
    lines = []
    for c in kubevirt_clusters:
        for p in c.request("GET", f"/api/v1/namespaces/{ns}/pods")["items"]:
            lines.append(f"{c.name} pod {p['metadata']['name']} node={p['spec'].get('nodeName')} "
                         f"phase={p.get('status', {}).get('phase')} nodeSelector={p['spec'].get('nodeSelector')}")
        for m in get(c, ns, "virtualmachineinstancemigrations")["items"]:
            lines.append(f"{c.name} vmim {m['metadata']['name']} {m.get('status', {}).get('phase')} "
                         f"deleting={bool(m['metadata'].get('deletionTimestamp'))} "
                         f"finalizers={m['metadata'].get('finalizers')} "
                         f"conditions={m.get('status', {}).get('conditions')}")
        for v in get(c, ns, "virtualmachineinstances")["items"]:
            lines.append(f"{c.name} vmi {v['metadata']['name']} {v['status'].get('phase')} "
                         f"{json.dumps(v['status'].get('migrationState'))}")
    return "\n" + "\n".join(lines)


def start_vm(kubevirt_clusters, ns: str, name: str = "vm1", cluster: str = "source") -> dict:
    """Create a VM; the real virt-controller makes its VMI and launcher pod, the played scheduler,
    kubelet and virt-handler take it to Running."""
    c = kubevirt_clusters.by_name(cluster)
    c.request("POST", KV.format(ns=ns, kind="virtualmachines"), vm_manifest(name, "Always"))
    return wait_for(f"VMI {name} Running with LiveMigratable", lambda: (v := get(c, ns, "virtualmachineinstances", name))
                    and v.get("status", {}).get("phase") == "Running"
                    and any(x["type"] == "LiveMigratable" and x["status"] == "True"
                            for x in v["status"].get("conditions", [])) and v)


def assert_moved(kubevirt_clusters, src_cluster: str, src: str, dst_cluster: str, dst: str, name: str = "vm1"):
    """What KubeVirt leaves after a successful DLM (tier.Tier.assert_moved, the one place these checks
    live), for the tests here written on the harness fixtures rather than the `kubevirt` fixture."""
    return Tier(kubevirt_clusters, {}, {}, {}).assert_moved(src_cluster, src, dst_cluster, dst, name)


def test_cross_cluster_move(kubevirt_clusters, kv_namespace, dlm):
    ns = kv_namespace
    start_vm(kubevirt_clusters, ns)
    code, out, err = dlm("migrate", "vm1", "--context", "source", "-n", ns, "--to-context", "target", *FOLLOW)
    assert code == errors.OK, out + err + dump(kubevirt_clusters, ns)
    assert "vm1: succeeded" in out
    assert_moved(kubevirt_clusters, "source", ns, "target", ns)


@pytest.fixture
def other_namespace(kubevirt_clusters, kv_namespace):
    """A second fresh namespace on the source cluster (a move within one cluster)."""
    name = kv_namespace + "-to"
    c = kubevirt_clusters.by_name("source")
    c.create_namespace(name)
    yield name
    c.delete_namespace(name)


def test_same_cluster_namespace_move(kubevirt_clusters, kv_namespace, other_namespace, dlm):
    """One API server, one synchronization controller serving both ends, two nodes (the receiving pod may
    not run on the source's node, migration.go:913-935)."""
    src, dst = kv_namespace, other_namespace
    start_vm(kubevirt_clusters, src)
    code, out, err = dlm("migrate", "vm1", "--context", "source", "-n", src, "--to-namespace", dst, *FOLLOW)
    assert code == errors.OK, out + err + dump(kubevirt_clusters, src) + dump(kubevirt_clusters, dst)
    assert "vm1: succeeded" in out
    assert_moved(kubevirt_clusters, "source", src, "source", dst)
    # run again (say the first run was killed right at the end): nothing to do, still a success
    code, out, err = dlm("migrate", "vm1", "--context", "source", "-n", src, "--to-namespace", dst, *FOLLOW)
    assert code == errors.OK, out + err
    assert f"vm1: succeeded: already migrated to source/{dst}" in out


def background(kubevirt_clusters, *args: str) -> subprocess.Popen:
    """`kubectl dlm ARGS` in its own process, as a user's terminal would run it."""
    return subprocess.Popen([sys.executable, "-m", "kubectl_dlm", *args, "--kubeconfig",
                             str(kubevirt_clusters.kubeconfig)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def wait_vmim_phase(cluster, ns: str, phases, timeout: float = 60) -> dict:
    return wait_for(f"a VMIM in {phases} in {cluster.name}/{ns}", lambda: next(
        (m for m in get(cluster, ns, "virtualmachineinstancemigrations")["items"]
         if m.get("status", {}).get("phase") in phases), None), timeout=timeout)


@pytest.fixture
def slow_transfer():
    """Transfers take 30 s while the test runs (time to act during one)."""
    before, handler.NETWORK.transfer_seconds = handler.NETWORK.transfer_seconds, 30
    yield
    handler.NETWORK.transfer_seconds = before


BOTH = pytest.mark.parametrize("cross", [False, True], ids=["same-cluster", "cross-cluster"])


def destination(kv_namespace: str, other_namespace: str, cross: bool) -> tuple[str, str, tuple[str, ...]]:
    """(namespace, cluster, migrate's flags) of the receiving side: another cluster, or another
    namespace of the source cluster."""
    return ((kv_namespace, "target", ("--to-context", "target")) if cross
            else (other_namespace, "source", ("--to-namespace", other_namespace)))


@BOTH
def test_cancel_during_transfer(kubevirt_clusters, kv_namespace, other_namespace, dlm, slow_transfer, cross):
    """The plugin deletes both VMIMs; the real migration controller sets abortRequested on each VMI
    (migration.go:1921-1927), the played handler cancels the source's libvirt job (migration-source.go
    handleMigrationAbort), the source reports the abort and the target records it once the source's
    end arrived through the sync controller (migration-target.go:248-287)."""
    src = kv_namespace
    dst, target, where = destination(kv_namespace, other_namespace, cross)
    s, t = kubevirt_clusters.by_name("source"), kubevirt_clusters.by_name(target)
    start_vm(kubevirt_clusters, src)
    proc = background(kubevirt_clusters, "migrate", "vm1", "--context", "source", "-n", src, *where, *FOLLOW)
    try:
        wait_vmim_phase(s, src, ("Running",))
        code, out, err = dlm("cancel", "vm1", "--context", "source", "-n", src, *where)
        assert code == errors.OK, out + err + dump(kubevirt_clusters, src)
        assert "deleted" in out
        migrate_out, _ = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == errors.CANCELLED, migrate_out
    assert get(s, src, "virtualmachineinstancemigrations")["items"] == []
    assert get(t, dst, "virtualmachineinstancemigrations")["items"] == []
    vmi = get(s, src, "virtualmachineinstances", "vm1")
    assert vmi["status"]["phase"] == "Running"   # the source keeps running
    ms = vmi["status"]["migrationState"]
    assert ms["abortStatus"] == "Succeeded" and ms["failed"] is True, ms
    assert ms["failureReason"] == "Live migration has been aborted"
    wait_for("the receiving VMI back to WaitingForSync",
             lambda: get(t, dst, "virtualmachineinstances", "vm1")["status"]["phase"] == "WaitingForSync", 30)
    code, out, err = dlm("cancel", "vm1", "--context", "source", "-n", src, *where)  # idempotent
    assert code == errors.OK and "nothing to cancel" in out, out + err


@pytest.fixture
def broken_transfer():
    """The next transfer breaks halfway, as libvirt reports a failed migration job."""
    reason = "operation failed: migration out job: unexpectedly failed"
    handler.NETWORK.fail_next_transfer(reason)
    yield reason
    handler.NETWORK._fail_next.clear()


@BOTH
def test_transfer_failing_after_handoff_fails_the_move_with_libvirts_reason(kubevirt_clusters, kv_namespace,
                                                                             other_namespace, dlm, broken_transfer,
                                                                             cross):
    """tests/e2e/test_migrate.py::test_failure_mid_transfer_then_cleanup_then_retry goes on with cleanup
    and a retry. The source's launcher reports the failed job (setMigrationResult), the played handler copies it to
    the source VMI (migration-source.go:191-218) and the real migration controller fails the source
    migration ("source node reported migration failed"); the VM keeps running where it was."""
    ns = kv_namespace
    dst, _, where = destination(kv_namespace, other_namespace, cross)
    s = kubevirt_clusters.by_name("source")
    start_vm(kubevirt_clusters, ns)
    code, out, err = dlm("migrate", "vm1", "--context", "source", "-n", ns, *where, *FOLLOW)
    assert code == errors.FAILED, out + err + dump(kubevirt_clusters, ns)
    assert "vm1: failed" in out
    assert broken_transfer in err, err
    # KubeVirt fails the target by itself after the hand-off: the plugin waits for that instead of
    # deleting it, which would make the synchronization controller delete the Failed source VMIM too.
    assert "ending the target migration" not in out + err, out + err
    vmi = get(s, ns, "virtualmachineinstances", "vm1")
    assert vmi["status"]["phase"] == "Running"
    ms = vmi["status"]["migrationState"]
    assert ms["failed"] is True and ms["failureReason"] == broken_transfer
    assert [m["status"]["phase"] for m in get(s, ns, "virtualmachineinstancemigrations")["items"]
            if not m["spec"].get("receive")] == ["Failed"]


@BOTH
def test_killed_and_run_again_resumes_without_a_second_vmim(kubevirt_clusters, kv_namespace, other_namespace, dlm,
                                                            cross):
    """The CLI dies mid-transfer; the migration goes on in KubeVirt, and `migrate` run again follows the
    same migration (same migration ID, one target VMIM) to its end."""
    ns = kv_namespace
    dst, target, where = destination(kv_namespace, other_namespace, cross)
    s, t = kubevirt_clusters.by_name("source"), kubevirt_clusters.by_name(target)
    start_vm(kubevirt_clusters, ns)
    before, handler.NETWORK.transfer_seconds = handler.NETWORK.transfer_seconds, 6
    try:
        args = ("migrate", "vm1", "--context", "source", "-n", ns, *where, *FOLLOW)
        proc = background(kubevirt_clusters, *args)
        try:
            first = wait_vmim_phase(s, ns, ("Running", "TargetReady", "PreparingTarget"))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        code, out, err = dlm(*args)
    finally:
        handler.NETWORK.transfer_seconds = before
    assert code == errors.OK, out + err + dump(kubevirt_clusters, ns)
    targets = [m for m in get(t, dst, "virtualmachineinstancemigrations")["items"] if m["spec"].get("receive")]
    label = "dlm.kubevirt-tools.io/migration-id"
    assert [m["metadata"]["labels"][label] for m in targets] == [first["metadata"]["labels"][label]]
    assert_moved(kubevirt_clusters, "source", ns, target, dst)


def test_reviewed_bundle_is_applied_with_secrets_copied_server_to_server(kubevirt_clusters, kv_namespace, dlm,
                                                                          tmp_path):
    """`render` writes a bundle without Secret data; `apply` copies the Secret server to server and the
    real controllers carry the move out (virt-api admits every object the bundle holds)."""
    ns = kv_namespace
    s, t = kubevirt_clusters.by_name("source"), kubevirt_clusters.by_name("target")
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "vm1-userdata"}, "type": "Opaque",
              "data": {"userdata": "I2Nsb3VkLWNvbmZpZwo="}}
    s.request("POST", f"/api/v1/namespaces/{ns}/secrets", secret)
    vm = vm_manifest("vm1", "Always")
    spec = vm["spec"]["template"]["spec"]
    spec["domain"]["devices"]["disks"].append({"name": "cloudinit", "disk": {"bus": "virtio"}})
    spec["volumes"].append({"name": "cloudinit", "cloudInitNoCloud": {"secretRef": {"name": "vm1-userdata"}}})
    s.request("POST", KV.format(ns=ns, kind="virtualmachines"), vm)
    wait_for("VMI vm1 Running", lambda: (v := get(s, ns, "virtualmachineinstances", "vm1"))
             and v.get("status", {}).get("phase") == "Running")
    bundle = tmp_path / "migration"
    code, out, err = dlm("render", "vm1", "--context", "source", "-n", ns, "--to-context", "target",
                         "--output-dir", str(bundle))
    assert code == errors.OK, err
    assert "I2Nsb3VkLWNvbmZpZwo=" not in "".join(p.read_text() for p in bundle.rglob("*") if p.is_file())
    code, out, err = dlm("apply", "-f", str(bundle), "--timeout", "120", "-o", "plain")
    assert code == errors.OK, out + err + dump(kubevirt_clusters, ns)
    assert "I2Nsb3VkLWNvbmZpZwo=" not in out + err
    copied = t.request("GET", f"/api/v1/namespaces/{ns}/secrets/vm1-userdata")
    assert copied["data"] == secret["data"] and copied["type"] == "Opaque"
    assert_moved(kubevirt_clusters, "source", ns, "target", ns)
