"""`migrate` waits for every blank target DataVolume before it creates the receiving VM, as
KubeVirt's own DLM e2e does (tests/migration/namespace.go:277-279,745-747 @d923fdb; the VM
controller itself waits only for dataVolumeTemplates: pkg/virt-controller/watch/vm/vm.go:556-567
@v1.9.0). The simulator's CDI is told to hold or fail the target's imports (tests/sim/faults.py)."""

from __future__ import annotations

from kubectl_dlm import errors
from tests.e2e.conftest import start_vm


def test_an_import_that_does_not_finish_keeps_the_receiver_uncreated(namespaces, kubevirt_sim, dlm):
    src, dst = namespaces("source"), namespaces("source")
    start_vm(kubevirt_sim, "source", src)
    kubevirt_sim.faults.hold_disks("source", dst)
    code, out, err = dlm("migrate", "vm1", "--context", "source", "-n", src, "--to-namespace", dst,
                         "--timeout", "15", "-o", "plain")
    assert code == errors.TIMED_OUT, out + err
    assert "waiting for target disk(s): vm1-disk (ImportInProgress; " in out + err
    assert kubevirt_sim.get("source", "dv", dst, "vm1-disk")["status"]["phase"] == "ImportInProgress"
    assert kubevirt_sim.get("source", "vm", dst, "vm1") is None  # the receiving VM was never created
    assert not kubevirt_sim.clusters["source"].stores["vmim"].list(src)  # nothing sent
    assert kubevirt_sim.get("source", "vmi", src, "vm1")["status"]["phase"] == "Running"


def test_a_failed_import_fails_the_migration_with_cdis_condition(namespaces, kubevirt_sim, dlm):
    src, dst = namespaces("source"), namespaces("source")
    start_vm(kubevirt_sim, "source", src)
    kubevirt_sim.faults.fail_disks("source", dst)
    code, out, err = dlm("migrate", "vm1", "--context", "source", "-n", src, "--to-namespace", dst,
                         "--timeout", "60", "-o", "plain")
    assert code == errors.FAILED, out + err
    assert ("DataVolume vm1-disk failed (Running: Error: Unable to process data: blank image: no space left); "
            "the receiving VM was not created") in err
    assert kubevirt_sim.get("source", "vm", dst, "vm1") is None
    assert kubevirt_sim.get("source", "vmi", src, "vm1")["status"]["phase"] == "Running"
