"""`migrate` waits for every blank target DataVolume before it creates the receiving VM, as
KubeVirt's own DLM e2e does (tests/migration/namespace.go:277-279,745-747 @d923fdb; the VM
controller itself waits only for dataVolumeTemplates: pkg/virt-controller/watch/vm/vm.go:556-567
@v1.9.0). On the KubeVirt tier, the played CDI (tests/kubevirt/cdi.py) is told to hold or fail the
target's imports."""

from __future__ import annotations

from kubectl_dlm import errors
from tests.e2e.conftest import start_vm
from tests.kubevirt.tier import phase


def test_an_import_that_does_not_finish_keeps_the_receiver_uncreated(kubevirt, dlm):
    src, dst = kubevirt.namespaces("source"), kubevirt.namespaces("source")
    start_vm(kubevirt, "source", src, data_volume=True)
    kubevirt.faults.hold_disks("source", dst)
    code, out, err = dlm("migrate", "vm1", "--context", "source", "-n", src, "--to-namespace", dst,
                         "--timeout", "15", "-o", "plain")
    assert code == errors.TIMED_OUT, out + err
    assert "waiting for target disk(s): vm1-disk (ImportInProgress; Running: Pod is running)" in out + err
    assert phase(kubevirt.get("source", "dv", dst, "vm1-disk")) == "ImportInProgress"
    assert kubevirt.get("source", "vm", dst, "vm1") is None  # the receiving VM was never created
    assert not kubevirt.list("source", "vmim", src)  # nothing sent
    assert phase(kubevirt.get("source", "vmi", src, "vm1")) == "Running"


def test_an_import_that_keeps_failing_is_named_and_the_receiver_never_created(kubevirt, dlm):
    """CDI restarts a failing importer (restartPolicy OnFailure), so the DataVolume does not turn
    Failed: it stays ImportInProgress with CDI's Running condition (reason Error, the importer's
    termination message); `migrate` names it when its --timeout ends."""
    src, dst = kubevirt.namespaces("source"), kubevirt.namespaces("source")
    start_vm(kubevirt, "source", src, data_volume=True)
    kubevirt.faults.fail_disks("source", dst, "Unable to process data: blank image: no space left")
    code, out, err = dlm("migrate", "vm1", "--context", "source", "-n", src, "--to-namespace", dst,
                         "--timeout", "15", "-o", "plain")
    assert code == errors.TIMED_OUT, out + err
    assert ("waiting for target disk(s): vm1-disk (ImportInProgress; Running: Error: Unable to process data: "
            "blank image: no space left)") in out + err
    assert kubevirt.get("source", "vm", dst, "vm1") is None
    assert phase(kubevirt.get("source", "vmi", src, "vm1")) == "Running"
