"""`kubectl dlm migrate` end to end: two real API servers, KubeVirt played by the simulator.

Each test checks the end state of both clusters, not only the exit code; the simulator fails
the test at teardown if the plugin did anything a real KubeVirt webhook would have rejected.
"""

from __future__ import annotations

from kubectl_dlm import errors
from tests.e2e.conftest import start_vm
from tests.sim import scenario

FOLLOW = ("--sync-timeout", "60", "--timeout", "120", "-o", "plain")


def assert_moved(sim, src_cluster, src, dst_cluster, dst, name="vm1"):
    target_vm = sim.get(dst_cluster, "vm", dst, name)
    assert target_vm["spec"]["runStrategy"] == "Always"  # restored from kubevirt.io/restore-run-strategy
    assert sim.get(dst_cluster, "vmi", dst, name)["status"]["phase"] == "Running"
    sim.wait_for(src_cluster, "vm", src, name, lambda o: o["spec"].get("runStrategy") == "Halted", 20,
                 "source halted")  # KubeVirt halts an Always source once the migration completed
    sim.wait_gone(src_cluster, "vmi", src, name)


def test_same_cluster_namespace_move(namespaces, kubevirt_sim, dlm):
    src, dst = namespaces("source"), namespaces("source")
    start_vm(kubevirt_sim, "source", src)
    code, out, err = dlm("migrate", "vm1", "--context", "source", "-n", src, "--to-namespace", dst, *FOLLOW)
    assert code == errors.OK, out + err
    assert "vm1: succeeded" in out
    assert_moved(kubevirt_sim, "source", src, "source", dst)
    # run again (say the first run was killed right at the end): nothing to do, still a success
    code, out, err = dlm("migrate", "vm1", "--context", "source", "-n", src, "--to-namespace", dst, *FOLLOW)
    assert code == errors.OK, out + err
    assert f"vm1: succeeded: already migrated to source/{dst}" in out


def test_cross_cluster_move(namespaces, kubevirt_sim, dlm):
    ns = namespaces("source", "target")
    start_vm(kubevirt_sim, "source", ns)
    scenario.trust_each_other(kubevirt_sim)
    code, out, err = dlm("migrate", "vm1", "--context", "source", "-n", ns, "--to-context", "target", *FOLLOW)
    assert code == errors.OK, out + err
    assert_moved(kubevirt_sim, "source", ns, "target", ns)
    # The source VMIM is deleted by KubeVirt once its VMI is gone; the target one stays Succeeded.
    [source_vmim] = kubevirt_sim.clusters["source"].stores["vmim"].list(ns) or [None]
    if source_vmim is not None:
        kubevirt_sim.wait_gone("source", "vmim", ns, source_vmim["metadata"]["name"])
    [target_vmim] = kubevirt_sim.clusters["target"].stores["vmim"].list(ns)
    assert target_vmim["status"]["phase"] == "Succeeded"


def test_name_taken_on_target_is_an_error_and_nothing_is_overwritten(clusters, namespaces, kubevirt_sim, dlm):
    src, dst = namespaces("source"), namespaces("source")
    start_vm(kubevirt_sim, "source", src)
    squatter = scenario.vm_manifest("vm1", run_strategy="Halted")
    squatter["metadata"]["labels"] = {"owner": "someone-else"}
    scenario.create(kubevirt_sim, "source", "vm", dst, squatter)
    code, out, err = dlm("migrate", "vm1", "--context", "source", "-n", src, "--to-namespace", dst, "--skip-checks", *FOLLOW)
    assert code == errors.REFUSED, out + err
    assert "vm1: refused" in out  # the result on stdout, the error with its cause and hint on stderr
    assert err.startswith("error: vm1: refused: ") and "\n  hint: " in err
    assert "already exists" in err and "was not created by this migration" in err and "nothing was overwritten" in err
    kept = kubevirt_sim.get("source", "vm", dst, "vm1")
    assert kept["metadata"]["labels"] == {"owner": "someone-else"} and kept["spec"]["runStrategy"] == "Halted"
    assert kubevirt_sim.get("source", "vmi", src, "vm1")["status"]["phase"] == "Running"


def test_stall_ends_in_sync_timeout_with_the_cause(namespaces, kubevirt_sim, dlm):
    ns = namespaces("source", "target")
    start_vm(kubevirt_sim, "source", ns)
    scenario.trust_each_other(kubevirt_sim)
    kubevirt_sim.faults.block_sync("target", "refused")
    code, out, err = dlm("migrate", "vm1", "--context", "source", "-n", ns, "--to-context", "target",
                         "--sync-timeout", "5", "--timeout", "60", "-o", "plain")
    assert code == errors.TIMED_OUT, out + err
    assert "did not connect within 5s" in err and err.startswith("error: vm1: timed out: ")
    assert "cannot be reached" in err  # the plain-words cause of the dial error
    # the evidence, each with its age (KubeVirt keeps a blocked condition's first message), read now
    assert "source VMI DecentralizedLiveMigrationFailure: rpc error: " in err and "(first reported " in err
    assert "source VMI migrationState: targetState.syncAddress=192.0.2.20:9185" in err and " UTC) - likely cause" in err
    assert "kubectl dlm cancel vm1" in err
    # left as it is: both migrations still exist
    assert kubevirt_sim.clusters["source"].stores["vmim"].list(ns)


def test_failure_mid_transfer_then_cleanup_then_retry(namespaces, kubevirt_sim, dlm):
    src, dst = namespaces("source"), namespaces("source")
    start_vm(kubevirt_sim, "source", src)
    kubevirt_sim.faults.transfer_seconds = 2.0
    kubevirt_sim.faults.fail_target_at = 0.5
    args = ("--context", "source", "-n", src, "--to-namespace", dst)
    code, out, err = dlm("migrate", "vm1", *args, *FOLLOW)
    assert code == errors.FAILED, out + err
    assert "vm1: failed" in out and err.startswith("error: vm1: failed: ") and "kubectl dlm cleanup" in err
    assert kubevirt_sim.get("source", "vmi", src, "vm1")["status"]["phase"] == "Running"  # the source keeps running
    code, out, err = dlm("cleanup", "vm1", *args, "--dry-run")
    assert code == errors.OK and "would delete" in out and f"VirtualMachine {dst}/vm1" in out
    assert kubevirt_sim.get("source", "vm", dst, "vm1") is not None  # a dry run removes nothing
    code, out, err = dlm("cleanup", "vm1", *args)
    assert code == errors.OK, out + err
    for kind, name in (("vm", "vm1"), ("dv", "vm1-disk"), ("pvc", "vm1-disk")):
        kubevirt_sim.wait_gone("source", kind, dst, name)
    assert kubevirt_sim.get("source", "vm", src, "vm1") is not None  # never anything on the source
    code, out, err = dlm("migrate", "vm1", *args, *FOLLOW)
    assert code == errors.OK, out + err
    assert_moved(kubevirt_sim, "source", src, "source", dst)


def test_cleanup_refuses_after_success(namespaces, kubevirt_sim, dlm):
    src, dst = namespaces("source"), namespaces("source")
    start_vm(kubevirt_sim, "source", src)
    args = ("--context", "source", "-n", src, "--to-namespace", dst)
    assert dlm("migrate", "vm1", *args, *FOLLOW)[0] == errors.OK
    code, out, err = dlm("cleanup", "vm1", *args)
    assert code == errors.REFUSED
    assert "the migration succeeded" in err
    assert kubevirt_sim.get("source", "vm", dst, "vm1") is not None


def test_dry_run_server_sends_everything_and_changes_nothing(namespaces, kubevirt_sim, dlm):
    ns = namespaces("source", "target")
    start_vm(kubevirt_sim, "source", ns)
    code, out, err = dlm("migrate", "vm1", "--context", "source", "-n", ns, "--to-context", "target",
                         "--dry-run=server", "-o", "plain")
    assert code == errors.OK, out + err
    assert "checked VirtualMachine" in out and "checked DataVolume" in out
    assert f"checked VirtualMachineInstanceMigration {ns}/vm1-send-" in out  # the source one: its VMI exists
    # the target one: KubeVirt admits it only once the receiving VMI exists (migration-create-admitter.go:124-128)
    assert f"validated at run time: needs the receiving VMI: VirtualMachineInstanceMigration {ns}/vm1-receive-" in out
    assert "vm1: dry run" in out
    assert not kubevirt_sim.clusters["target"].stores["vm"].list(ns)
    assert not kubevirt_sim.clusters["target"].stores["dv"].list(ns)
    assert not kubevirt_sim.clusters["source"].stores["vmim"].list(ns)
