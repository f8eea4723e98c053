"""Failures that must end cleanly and be named (issues 13.1, 13.5, 13.6, 14.3): a target that fails
before the hand-off, a re-run after it, one migration ID for two VMs, a source VM deleted mid-way,
a migration orphaned by a deleted namespace. On the KubeVirt tier (tests/kubevirt): KubeVirt's own
virt-api, virt-controller and synchronization-controller; pods, virt-handler and CDI played."""

from __future__ import annotations

import signal
import time

import pytest

from kubectl_dlm import errors
from tests.e2e.conftest import start_vm
from tests.e2e.test_survive import background, finish, wait_vmim_phase
from tests.kubevirt.tier import phase

FOLLOW = ("--sync-timeout", "60", "--timeout", "120", "-o", "plain")
OPEN = ("", "Pending", "WaitingForSync", "Synchronizing", "Scheduling", "Scheduled", "PreparingTarget",
        "TargetReady", "Running")


def open_vmims(tier, cluster, ns):
    return [v for v in tier.list(cluster, "vmim", ns) if phase(v) in OPEN]


def release(tier, vmim):
    """What the hint tells an admin to do: drop the finalizers of a deleted VMIM KubeVirt holds."""
    ns, name = vmim["metadata"]["namespace"], vmim["metadata"]["name"]
    if tier.get("source", "vmim", ns, name) is not None:
        tier.request("source", "PATCH", f"/apis/kubevirt.io/v1/namespaces/{ns}/virtualmachineinstancemigrations/{name}",
                     {"metadata": {"finalizers": None}}, content_type="application/merge-patch+json")
    tier.wait_gone("source", "vmim", ns, name)


def receiving_pod(ns: str):
    """The target launcher pod virt-controller makes for a migration (label kubevirt.io/migrationJobUID)."""
    return lambda pod: (pod["metadata"]["namespace"] == ns
                        and "kubevirt.io/migrationJobUID" in (pod["metadata"].get("labels") or {}))


@pytest.fixture
def cross(request, kubevirt):
    """(source ns, target ns, target cluster, where-flags) for same- and cross-cluster moves."""
    if request.param:
        ns = kubevirt.namespaces("source", "target")
        return ns, ns, "target", ("--to-context", "target")
    src, dst = kubevirt.namespaces("source"), kubevirt.namespaces("source")
    return src, dst, "source", ("--to-namespace", dst)


@pytest.mark.parametrize("cross", [False, True], ids=["same-cluster", "cross-cluster"], indirect=True)
def test_target_failing_before_handoff_ends_the_source_and_names_the_cause(kubevirt, dlm, cross):
    src, dst, target, where = cross
    start_vm(kubevirt, "source", src)
    args = ("--context", "source", "-n", src, *where)
    with kubevirt.faults.failing_pods(target, receiving_pod(dst)):   # the receiving launcher crashes
        code, out, err = dlm("migrate", "vm1", *args, *FOLLOW)
    assert code == errors.FAILED, out + err
    # KubeVirt's own words (the target VMIM's Warning Event), never "no reason"
    assert "the target migration failed: " in err
    assert "no reason" not in err and "kubectl dlm cleanup vm1" in err
    assert "ending the source migration" in out  # said while it happens
    # KubeVirt (v1.9.0) does not release a source VMIM deleted in Scheduling: its VMI already names it
    # (decentralized.go:130-153), so MC:575 does not fail it. The tool asked, and says so honestly.
    held = open_vmims(kubevirt, "source", src)
    if not held:  # KubeVirt let go of it within the 20 s
        assert "ended the source migration" in err
    else:
        [held] = held
        assert held["metadata"].get("deletionTimestamp")
        assert f"asked KubeVirt to end the source migration {src}/{held['metadata']['name']}" in err
        assert "remove its finalizers" in err
        # a re-run says why it cannot start (never "resumes" it)
        code, out, err = dlm("migrate", "vm1", *args, *FOLLOW)
        assert code == errors.REFUSED and "KubeVirt still holds it" in err, out + err
        # the admin removes the finalizers, as the hint says
        release(kubevirt, held)
    assert phase(kubevirt.get("source", "vmi", src, "vm1")) == "Running"
    # cleanup clears both sides; a new attempt succeeds
    code, out, err = dlm("cleanup", "vm1", *args)
    assert code == errors.OK, out + err
    kubevirt.wait_gone(target, "vm", dst, "vm1")
    assert not [v for v in kubevirt.list("source", "vmim", src) if phase(v) == "Failed"]
    code, out, err = dlm("migrate", "vm1", *args, *FOLLOW)
    assert code == errors.OK, out + err


def test_rerun_never_resumes_a_source_whose_target_failed(kubevirt, dlm):
    src, dst = kubevirt.namespaces("source"), kubevirt.namespaces("source")
    start_vm(kubevirt, "source", src)
    args = ("--context", "source", "-n", src, "--to-namespace", dst)
    with kubevirt.faults.failing_pods("source", receiving_pod(dst)):   # the receiving launcher crashes
        proc = background(kubevirt.clusters, "migrate", "vm1", *args, *FOLLOW)
        wait_vmim_phase(kubevirt, "source", src, OPEN[1:])  # the source migration exists...
        proc.send_signal(signal.SIGKILL)  # ...and the tool dies before it could end it (or an older version)
        proc.wait(10)
        wait_vmim_phase(kubevirt, "source", dst, ("Failed",))  # the target fails before the hand-off
    [hanging] = open_vmims(kubevirt, "source", src)
    code, out, err = dlm("migrate", "vm1", *args, *FOLLOW)
    assert code == errors.REFUSED, out + err
    assert "while its target migration failed" in err and "kubectl dlm cleanup vm1" in err
    assert "resum" not in out and kubevirt.list("source", "vmim", dst)[0]["metadata"]["uid"]
    code, out, err = dlm("cleanup", "vm1", *args)
    assert code == errors.OK, out + err
    assert f"VirtualMachineInstanceMigration {src}/{hanging['metadata']['name']} on source (source)" in out
    release(kubevirt, hanging)  # KubeVirt may hold it (see above): the admin's step
    code, out, err = dlm("migrate", "vm1", *args, *FOLLOW)
    assert code == errors.OK, out + err


@pytest.mark.parametrize("cross", [False, True], ids=["same-cluster", "cross-cluster"], indirect=True)
def test_a_migration_id_in_use_by_another_vm_is_refused_before_anything_is_created(kubevirt, dlm, cross):
    src, dst, target, where = cross
    start_vm(kubevirt, "source", src, "vm1")
    start_vm(kubevirt, "source", src, "vm2")
    kubevirt.faults.transfer_seconds = 8
    args = ("--context", "source", "-n", src, *where, "--migration-id", "shared-move")
    first = background(kubevirt.clusters, "migrate", "vm1", *args, *FOLLOW)
    wait_vmim_phase(kubevirt, target, dst, OPEN[1:])
    code, out, err = dlm("migrate", "vm2", *args, *FOLLOW)
    assert code == errors.REFUSED, out + err
    assert "migration ID shared-move is already used by VirtualMachineInstanceMigration" in err
    assert "VMI " + f"{dst}/vm1" in err or f"VMI {src}/vm1" in err
    assert kubevirt.get(target, "vm", dst, "vm2") is None  # nothing created for vm2
    assert [v["spec"]["vmiName"] for v in kubevirt.list(target, "vmim", dst) if v["spec"].get("receive")] == ["vm1"]
    code, out = finish(first)
    assert code == errors.OK, out
    assert phase(kubevirt.get("source", "vmi", src, "vm2")) == "Running"  # untouched
    # one --migration-id for both VMs in one run: each VM gets its own
    code, out, err = dlm("migrate", "vm2", *where[:0], "--context", "source", "-n", src, *where,
                         "--migration-id", "batch", *FOLLOW)
    assert code == errors.OK, out + err


def test_source_vm_deleted_mid_migration_ends_with_each_side_reported(kubevirt):
    """Deleting the source VM deletes its VMI, whose launcher pod virt-controller deletes
    (pkg/virt-controller/watch/vmi/lifecycle.go:70-75 @v1.9.0): the source QEMU goes, the target's
    incoming stream ends, its QEMU exits and so does its virt-launcher (cmd/virt-launcher/
    virt-launcher.go:536-560). The target migration controller then fails the target migration,
    "target pod shutdown during migration" (pkg/virt-controller/watch/migration/migration.go:588-597);
    the source one fails as "vmi does not exist" (migration.go:561-566). migrate ends on that at
    once, naming each side, and points at cleanup (not at a source VM that no longer runs)."""
    src, dst = kubevirt.namespaces("source"), kubevirt.namespaces("source")
    start_vm(kubevirt, "source", src)
    kubevirt.faults.transfer_seconds = 10
    started = time.monotonic()
    proc = background(kubevirt.clusters, "migrate", "vm1", "--context", "source", "-n", src, "--to-namespace", dst,
                      "--timeout", "300", "-o", "plain")
    wait_vmim_phase(kubevirt, "source", src, ("Running",))
    kubevirt.delete("source", "vm", src, "vm1")  # someone deletes the source VM
    try:
        code, out = finish(proc, timeout=150)
    except Exception:
        proc.kill()
        raise AssertionError("migrate hung after the source VM was deleted:\n" + proc.communicate()[0]) from None
    assert time.monotonic() - started < 120, "migrate waited for --timeout"
    assert code == errors.FAILED, out
    # each side reported: what the source shows (migration gone, VM deleted) and what the target shows
    assert "source: migration " in out and "VM deleted" in out and "; target: migration " in out, out
    assert "timed out" not in out and "keeps running" not in out, out
    assert "kubectl dlm cleanup vm1" in out, out
    receiving = [v for v in kubevirt.list("source", "vmim", dst) if v["spec"].get("receive")]
    assert [phase(v) for v in receiving] == ["Failed"], receiving


def test_cleanup_removes_a_source_migration_orphaned_by_a_deleted_target_namespace(kubevirt, dlm):
    clusters = kubevirt.clusters
    ns = kubevirt.namespaces("source", "target")
    start_vm(kubevirt, "source", ns)
    kubevirt.faults.transfer_seconds = 30
    args = ("--context", "source", "-n", ns, "--to-context", "target")
    proc = background(clusters, "migrate", "vm1", *args, "--timeout", "120", "-o", "plain")
    wait_vmim_phase(kubevirt, "source", ns, ("Scheduling", "Scheduled", "PreparingTarget", "TargetReady", "Running"))
    proc.send_signal(signal.SIGKILL)  # the tool is gone, and then so is the target namespace
    proc.wait(10)
    clusters.by_name("target").delete_namespace(ns)
    code, out, err = dlm("cleanup", "vm1", *args)
    assert code == errors.OK, out + err
    assert f"namespace {ns} is gone from target" in out and "orphaned" in out
    assert "(source)" in out  # the source migration was deleted
    # KubeVirt then ends it (mid-transfer it is aborted) or holds it; either way nothing of ours is open and undeleted
    for v in open_vmims(kubevirt, "source", ns):
        assert v["metadata"].get("deletionTimestamp"), v["metadata"]["name"]
    assert kubevirt.get("source", "vmi", ns, "vm1") is not None  # never the source VM
