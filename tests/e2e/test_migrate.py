"""`kubectl dlm migrate` end to end on the KubeVirt tier: KubeVirt's own virt-api, virt-controller and
synchronization-controller, the node side, CDI and virt-handler played (tests/kubevirt/README.md).

Each test checks what KubeVirt's controllers leave on both clusters, not only the exit code. The
plain moves (across clusters, within one) are tests/kubevirt/test_dlm_e2e.py's.
"""

from __future__ import annotations

from kubectl_dlm import errors
from tests.e2e.conftest import start_vm
from tests.harness.kubevirt import join_host_port
from tests.kubevirt.tier import vm_manifest

# No --skip-checks: migrate's checks pass on the tier as on a real pair of clusters (tests/kubevirt/test_check.py).
FOLLOW = ("--sync-timeout", "60", "--timeout", "120", "-o", "plain")
BROKEN_STREAM = "Unable to read from socket: Connection reset by peer"   # libvirt's, as tests/sim had it


def test_name_taken_on_target_is_an_error_and_nothing_is_overwritten(kubevirt, dlm):
    src, dst = kubevirt.namespaces("source"), kubevirt.namespaces("source")
    start_vm(kubevirt, "source", src)
    squatter = vm_manifest("vm1", "Halted")
    squatter["metadata"]["labels"] = {"owner": "someone-else"}
    kubevirt.create("source", "vm", dst, squatter)
    # --skip-checks: past check's name-collisions row, the refusal when the VM is applied
    code, out, err = dlm("migrate", "vm1", "--context", "source", "-n", src, "--to-namespace", dst, "--skip-checks",
                         *FOLLOW)
    assert code == errors.REFUSED, out + err
    assert "vm1: refused" in out  # the result on stdout, the error with its cause and hint on stderr
    assert err.startswith("error: vm1: refused: ") and "\n  hint: " in err
    assert "already exists" in err and "was not created by this migration" in err and "nothing was overwritten" in err
    kept = kubevirt.get("source", "vm", dst, "vm1")
    assert kept["metadata"]["labels"] == {"owner": "someone-else"} and kept["spec"]["runStrategy"] == "Halted"
    assert kubevirt.get("source", "vmi", src, "vm1")["status"]["phase"] == "Running"
    assert kubevirt.list("source", "vmim", src) == [] and kubevirt.get("source", "vmi", dst, "vm1") is None


def test_failure_mid_transfer_then_cleanup_then_retry(kubevirt, dlm):
    src, dst = kubevirt.namespaces("source"), kubevirt.namespaces("source")
    start_vm(kubevirt, "source", src, data_volume=True)
    kubevirt.faults.fail_next_transfer(BROKEN_STREAM)   # libvirt reports the stream broken half-way
    args = ("--context", "source", "-n", src, "--to-namespace", dst)
    code, out, err = dlm("migrate", "vm1", *args, *FOLLOW)
    assert code == errors.FAILED, out + err + kubevirt.dump(src, dst)
    assert "vm1: failed" in out and err.startswith("error: vm1: failed: ") and "kubectl dlm cleanup" in err
    assert BROKEN_STREAM in err   # the source's failureReason, as virt-handler wrote it
    assert kubevirt.get("source", "vmi", src, "vm1")["status"]["phase"] == "Running"  # the source keeps running
    code, out, err = dlm("cleanup", "vm1", *args, "--dry-run")
    assert code == errors.OK and "would delete" in out and f"VirtualMachine {dst}/vm1" in out
    assert kubevirt.get("source", "vm", dst, "vm1") is not None  # a dry run removes nothing
    code, out, err = dlm("cleanup", "vm1", *args)
    assert code == errors.OK, out + err
    for kind, name in (("vm", "vm1"), ("dv", "vm1-disk"), ("pvc", "vm1-disk")):
        kubevirt.wait_gone("source", kind, dst, name)
    assert kubevirt.get("source", "vm", src, "vm1") is not None  # never anything on the source
    code, out, err = dlm("migrate", "vm1", *args, *FOLLOW)
    assert code == errors.OK, out + err + kubevirt.dump(src, dst)
    kubevirt.assert_moved("source", src, "source", dst)


def test_cleanup_refuses_after_success(kubevirt, dlm):
    src, dst = kubevirt.namespaces("source"), kubevirt.namespaces("source")
    start_vm(kubevirt, "source", src)
    args = ("--context", "source", "-n", src, "--to-namespace", dst)
    code, out, err = dlm("migrate", "vm1", *args, *FOLLOW)
    assert code == errors.OK, out + err
    code, out, err = dlm("cleanup", "vm1", *args)
    assert code == errors.REFUSED
    assert "the migration succeeded" in err
    assert kubevirt.get("source", "vm", dst, "vm1") is not None
    kubevirt.assert_moved("source", src, "source", dst)   # and cleanup left it so


def test_dry_run_server_sends_everything_and_changes_nothing(kubevirt, dlm):
    ns = kubevirt.namespaces("source", "target")
    start_vm(kubevirt, "source", ns, data_volume=True)
    code, out, err = dlm("migrate", "vm1", "--context", "source", "-n", ns, "--to-context", "target",
                         "--dry-run=server", "-o", "plain")
    assert code == errors.OK, out + err
    assert "checked VirtualMachine" in out and "checked DataVolume" in out
    assert f"checked VirtualMachineInstanceMigration {ns}/vm1-send-" in out  # the source one: its VMI exists
    # the target one: KubeVirt admits it only once the receiving VMI exists (migration-create-admitter.go:124-128)
    assert f"validated at run time: needs the receiving VMI: VirtualMachineInstanceMigration {ns}/vm1-receive-" in out
    assert "vm1: dry run" in out
    assert kubevirt.list("target", "vm", ns) == []
    assert kubevirt.list("target", "dv", ns) == []
    assert kubevirt.list("source", "vmim", ns) == []


def test_stall_ends_in_sync_timeout_with_the_cause(kubevirt, dlm):
    """The target's synchronization controller is down (its pod and Lease stay, its address stays
    published): the real source sync controller's dial error, as KubeVirt words it, is the cause."""
    ns = kubevirt.namespaces("source", "target")
    start_vm(kubevirt, "source", ns)
    target_sync = join_host_port(kubevirt.clusters.kubevirt["target"].sync_ip,
                                 kubevirt.clusters.kubevirt["target"].sync_port)
    kubevirt.faults.block_sync("target", "refused")
    code, out, err = dlm("migrate", "vm1", "--context", "source", "-n", ns, "--to-context", "target",
                         "--sync-timeout", "5", "--timeout", "60", "-o", "plain")
    assert code == errors.TIMED_OUT, out + err + kubevirt.dump(ns)
    assert "did not connect within 5s" in err and err.startswith("error: vm1: timed out: ")
    assert "cannot be reached" in err  # the plain-words cause of the dial error
    # the evidence, each with its age (KubeVirt keeps a blocked condition's first message), read now
    assert "source VMI DecentralizedLiveMigrationFailure: rpc error: " in err and "(first reported " in err
    assert f"source VMI migrationState: targetState.syncAddress={target_sync}" in err and " UTC) - likely cause" in err
    assert "kubectl dlm cancel vm1" in err
    # left as it is: both migrations still exist
    assert kubevirt.list("source", "vmim", ns) and kubevirt.list("target", "vmim", ns)
