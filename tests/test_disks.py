"""kubectl_dlm.disks, pure: are the blank target DataVolumes ready for the receiving VM?"""

from __future__ import annotations

import pytest

from kubectl_dlm import disks


def dv(name, phase, *conditions):
    return {"kind": "DataVolume", "metadata": {"name": name},
            "status": {"phase": phase, "conditions": [dict(zip(("type", "status", "reason", "message"), c))
                                                       for c in conditions]}}


@pytest.mark.parametrize("phase", ["Succeeded", "WaitForFirstConsumer", "PendingPopulation"])
def test_the_phases_kubevirts_vm_controller_accepts_are_ready(phase):
    """pkg/virt-controller/watch/vm/vm.go:556-567 @v1.9.0."""
    assert disks.assess(["a", "b"], {"a": dv("a", phase), "b": dv("b", "Succeeded")}).ready


def test_not_yet_seen_or_importing_is_waiting_with_its_condition():
    verdict = disks.assess(["a", "b"], {"a": dv("a", "ImportInProgress", ("Running", "True", "Pod is running", "")),
                                        "b": None})
    assert not verdict.ready and not verdict.failed
    assert verdict.waiting == ["a (ImportInProgress; Running: Pod is running)", "b (no phase yet; no condition reported)"]


def test_pending_names_the_bound_condition():
    verdict = disks.assess(["a"], {"a": dv("a", "Pending", ("Bound", "False", "Pending",
                                                           "PVC a Pending: exceeded quota: storage"))})
    assert verdict.waiting == ["a (Pending; Bound: Pending: PVC a Pending: exceeded quota: storage)"]


def test_a_failed_disk_fails_with_its_condition():
    verdict = disks.assess(["a"], {"a": dv("a", "Failed", ("Running", "False", "Error", "Unable to process data"))})
    assert verdict.failed == "DataVolume a failed (Running: Error: Unable to process data)"
    assert not verdict.ready


def test_no_disks_is_ready():
    assert disks.assess([], {}).ready
