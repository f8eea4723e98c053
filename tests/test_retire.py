"""retire.py: halting the old copy, the warning for startable sources, and a move back's stale copy."""

from __future__ import annotations

import pytest

from kubectl_dlm import retire
from kubectl_dlm.model import ANN_MIGRATED_TO


def vm(spec, annotations=None, uid="vm-uid"):
    return {"metadata": {"name": "vm1", "namespace": "a", "uid": uid, "resourceVersion": "7",
                         "annotations": dict(annotations or {})},
            "spec": {**spec, "template": {"spec": {"volumes": [{"name": "root", "dataVolume": {"name": "vm1-disk"}},
                                                                 {"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]}}},
            "status": {"printableStatus": "Stopped"}}


def test_retiring_halts_drops_legacy_running_and_annotates():
    marks = retire.marks("east/prod/vm1", "abc", "2026-12-01T10:00:00Z")
    out = retire.retired_vm(vm({"running": True}, {"keep": "me"}), marks)
    assert out["spec"]["runStrategy"] == "Halted" and "running" not in out["spec"]
    assert out["metadata"]["annotations"] == {"keep": "me", **marks}
    assert out["metadata"]["resourceVersion"] == "7" and "status" not in out  # a conditional PUT of the spec
    assert retire.claims_of(out) == ["data", "vm1-disk"]


@pytest.mark.parametrize("strategy, legacy, warned", [
    ("Always", False, False), ("Manual", False, True), ("Once", False, True), ("RerunOnFailure", False, True),
    (None, True, True), ("Halted", False, False),
])
def test_only_sources_kubevirt_leaves_startable_are_warned_about(strategy, legacy, warned):
    text = retire.startable_warning("vm1", strategy, legacy, "kubectl dlm retire vm1 -n a")
    assert (text is not None) == warned
    if warned:
        assert "same MAC addresses and firmware UUID" in text and "kubectl dlm retire vm1 -n a" in text


def test_needs_retiring_until_halted_and_annotated():
    assert retire.needs_retiring(vm({"runStrategy": "Halted"}))
    assert retire.needs_retiring(vm({"runStrategy": "Manual"}, {ANN_MIGRATED_TO: "x"}))
    assert not retire.needs_retiring(vm({"runStrategy": "Halted"}, {ANN_MIGRATED_TO: "x"}))
    assert not retire.needs_retiring(None)


def disk(name, annotations=None, owner=None):
    meta = {"name": name, "namespace": "a", "uid": f"{name}-uid", "annotations": dict(annotations or {})}
    if owner:
        meta["ownerReferences"] = [{"uid": owner}]
    return {"metadata": meta}


def test_a_retired_copy_and_its_disks_are_recognised_by_annotation_and_ownership():
    retired = vm({"runStrategy": "Halted"}, {ANN_MIGRATED_TO: "b/ns/vm1"})
    dvs = {"vm1-disk": disk("vm1-disk", owner="vm-uid")}
    pvcs = {"vm1-disk": disk("vm1-disk", owner="vm1-disk-uid"), "data": disk("data", {ANN_MIGRATED_TO: "b/ns/vm1"})}
    stale = retire.find_stale("vm1", ["vm1-disk", "data"], retired, None, dvs, pvcs)
    assert stale.vm is retired and not stale.problems
    assert sorted((k, d["metadata"]["name"]) for k, d in stale.disks) == [
        ("DataVolume", "vm1-disk"), ("PersistentVolumeClaim", "data"), ("PersistentVolumeClaim", "vm1-disk")]
    assert "retired: migrated to b/ns/vm1" in stale.describe()[0]


def test_what_is_not_a_retired_copy_is_never_taken_for_one():
    someone = vm({"runStrategy": "Halted"})  # same name, no annotation: someone else's
    stale = retire.find_stale("vm1", ["data"], someone, None, {}, {"data": disk("data")})
    assert not stale.found and not stale.problems
    running = vm({"runStrategy": "Always"}, {ANN_MIGRATED_TO: "b/ns/vm1"})  # marked but started again
    stale = retire.find_stale("vm1", [], running, "Running", {}, {})
    assert stale.vm is None and "not Halted" in stale.problems[0]


def test_kept_stale_disks_give_the_new_disks_other_claim_names():
    assert retire.renamed_claims(["vm1-disk", "data"], "0123456789abcdef", ["vm1-disk"]) == {"vm1-disk": "vm1-disk-01234567"}
