"""verify.py: each fact from small objects shaped as KubeVirt v1.9.0 writes them."""

from __future__ import annotations

import copy
import uuid

import pytest

from kubectl_dlm import verify
from kubectl_dlm.model import ANN_MIGRATED_TO

UID = "0713cffa-0000-4000-8000-000000000001"


def vm(strategy="Always", annotations=None, mac="02:00:00:00:00:01", fw="fw-1", running=None):
    spec = {"template": {"spec": {"domain": {"firmware": {"uuid": fw}, "devices": {"interfaces": [{"name": "default", "macAddress": mac}]}},
                                  "volumes": [{"name": "root", "dataVolume": {"name": "vm1-disk"}}]}}}
    if running is None:
        spec["runStrategy"] = strategy
    else:
        spec["running"] = running
    return {"metadata": {"name": "vm1", "annotations": dict(annotations or {})}, "spec": spec}


def vmi(phase="Running", state=None, mac="02:00:00:00:00:01", fw="fw-1"):
    status = {"phase": phase, "nodeName": "n2", "interfaces": [{"name": "default", "mac": mac}]}
    if state is not None:
        status["migrationState"] = state
    return {"metadata": {"name": "vm1", "uid": "vmi-uid"}, "spec": {"domain": {"firmware": {"uuid": fw}}}, "status": status}


def completed(**extra):
    # decentralized.go:48-64 and migration.go:1213-1224 write the UIDs; migration-target.go:1253 completed
    state = {"migrationUid": UID, "completed": True, "endTimestamp": "2026-12-01T10:00:00Z",
             "sourceState": {"migrationUID": "src-uid", "node": "n1", "syncAddress": None},
             "targetState": {"migrationUID": UID, "node": "n2", "syncAddress": "10.0.0.1:9185"}}
    state.update(extra)
    return state


def receive(phase="Succeeded", mid="abc123"):
    return {"metadata": {"name": "vm1-receive-abc123", "uid": UID, "labels": {"dlm.kubevirt-tools.io/migration-id": mid}},
            "spec": {"vmiName": "vm1", "receive": {"migrationID": mid}}, "status": {"phase": phase}}


def good():
    return verify.Facts(vm="vm1", source="a/ns", target="b/ns",
                        source_vm=vm("Halted"), source_vmi=None,
                        target_vm=vm("Always", {verify.RESTORE_RUN_STRATEGY: "Always"}),
                        target_vmi=vmi(state=completed()), target_vmims=[receive()],
                        claims={"vm1-disk": {"status": {"phase": "Bound"}}})


def rows(facts):
    return {r.fact: r for r in verify.verify(facts).rows}


def test_a_verified_move_passes_every_fact_with_its_evidence():
    verdict = verify.verify(good())
    assert verdict.passed and [r.fact for r in verdict.rows] == list(verify.FACTS)
    assert verdict.migration_id == "abc123"
    found = {r.fact: r.evidence for r in verdict.rows}
    assert UID in found["migrated-live"] and "n1 -> n2" in found["migrated-live"]
    assert verdict.as_dict()["passed"] is True


def _set(facts, path, value):
    facts = copy.deepcopy(facts)
    setattr(facts, path, value)
    return facts


@pytest.mark.parametrize("change, fact, says", [
    (lambda f: _set(f, "target_vmi", None), "target-running", "no VirtualMachineInstance"),
    (lambda f: _set(f, "target_vmi", vmi("Failed", completed())), "target-running", "Failed"),
    (lambda f: _set(f, "target_vmi", vmi(state=None)), "migrated-live", "booted, not migrated in"),
    (lambda f: _set(f, "target_vmi", vmi(state=completed(completed=False))), "migrated-live", "not completed"),
    # an abort sets completed and failed (migration-target.go:274-275)
    (lambda f: _set(f, "target_vmi", vmi(state=completed(failed=True, failureReason="aborted"))), "migrated-live", "failed: aborted"),
    (lambda f: _set(f, "target_vmims", []), "migrated-live", "no target migration"),
    (lambda f: _set(f, "migration_id", "other"), "migrated-live", "migration ID other"),
    (lambda f: _set(f, "target_vmi", vmi(state=completed(migrationUid="x", targetState={"migrationUID": "x"}))),
     "migrated-live", "of another migration"),
    (lambda f: _set(f, "target_vm", vm("WaitAsReceiver", {verify.RESTORE_RUN_STRATEGY: "Always"})), "run-strategy-restored", "still WaitAsReceiver"),
    (lambda f: _set(f, "target_vm", vm("Manual", {verify.RESTORE_RUN_STRATEGY: "Always"})), "run-strategy-restored", "but"),
    (lambda f: _set(f, "source_vmi", vmi("Running")), "source-stopped", "the old copy is running"),
    # completed but not ready on the target, or failed: still "the old copy is running"
    (lambda f: _set(f, "source_vmi", vmi("Running", completed())), "source-stopped", "the old copy is running"),
    (lambda f: _set(f, "source_vmi", vmi("Running", completed(failed=True, targetNodeDomainReadyTimestamp="x"))),
     "source-stopped", "the old copy is running"),
    (lambda f: _set(f, "source_vm", vm("Always")), "source-stopped", "should have halted it"),
    (lambda f: _set(f, "claims", {"vm1-disk": {"status": {"phase": "Pending"}}}), "disks-bound", "vm1-disk Pending"),
    (lambda f: _set(f, "claims", {"vm1-disk": None}), "disks-bound", "vm1-disk missing"),
    (lambda f: _set(f, "target_vmi", vmi(state=completed(), fw="fw-2")), "firmware-uuid", "target fw-2, source fw-1"),
    (lambda f: _set(f, "target_vmi", vmi(state=completed(), mac="02:00:00:00:00:09")), "mac-addresses", "target 02:00:00:00:00:09"),
])
def test_each_fact_fails_on_its_own_evidence(change, fact, says):
    found = rows(change(good()))
    assert found[fact].status == verify.FAIL and says in found[fact].evidence
    assert [r.fact for r in found.values() if r.status == verify.FAIL] == [fact] or fact in ("target-running",)


@pytest.mark.parametrize("source_vm, source_vmi, says", [
    (None, None, "source VM and VMI are gone"),
    (vm("Once", {}), vmi("Succeeded"), "runStrategy Once: KubeVirt does not halt it"),
    (vm("Manual", {}), None, "runStrategy Manual"),
    (vm(running=True), vmi("Succeeded"), "legacy"),
    (vm("Halted", {ANN_MIGRATED_TO: "b/ns/vm1"}), None, "retired (Halted, migrated-to b/ns/vm1)"),
])
def test_source_states_that_pass_say_what_they_are(source_vm, source_vmi, says):
    facts = good()
    facts.source_vm, facts.source_vmi = source_vm, source_vmi
    row = rows(facts)["source-stopped"]
    assert row.status == verify.PASS and says in row.evidence


def test_a_source_vmi_left_running_after_its_migration_completed_is_named_with_how_to_finish():
    # KubeVirt v1.9.0 after its synchronization controller changed leader mid-migration: the source
    # VMI's state says completed, the target's domain ready, both sync addresses set, phase Running
    # (tests/e2e/test_survive.py::test_api_server_restart_mid_migration shows it on KubeVirt's code).
    state = completed(targetNodeDomainReadyTimestamp="2026-12-01T10:00:01Z",
                      sourceState={"migrationUID": "src-uid", "syncAddress": "10.0.0.2:9185"})
    facts = _set(_set(good(), "source_vmi", vmi("Running", state)), "source_vm", vm("Always"))
    row = rows(facts)["source-stopped"]
    assert row.status == verify.FAIL
    assert row.evidence.startswith("source VMI is still Running in a/ns, but its migration completed at "
                                   "2026-12-01T10:00:00Z and the guest runs on the target: KubeVirt did not mark it "
                                   "Succeeded; halt the source VM (kubectl --context a -n ns patch vm vm1 --type merge "
                                   """-p '{"spec":{"runStrategy":"Halted"}}')""")
    assert "do not delete the VMI first" in row.evidence
    assert row.final   # no longer a decentralized migration to KubeVirt: migrate stops waiting on it
    assert verify.verify(facts).settled and not verify.verify(facts).passed


def test_a_source_vmi_still_running_right_after_a_normal_completion_is_worth_waiting_for():
    # One sync address set: still decentralized, virt-controller marks it Succeeded once its
    # launcher exits (lifecycle.go:487-490).
    state = completed(targetNodeDomainReadyTimestamp="2026-12-01T10:00:01Z")
    facts = _set(_set(good(), "source_vmi", vmi("Running", state)), "source_vm", vm("Always"))
    row = rows(facts)["source-stopped"]
    assert row.status == verify.FAIL and not row.final
    assert not verify.verify(facts).settled


def test_after_the_gitops_hand_off_the_restore_annotation_may_be_gone():
    facts = _set(good(), "target_vm", vm("Always"))
    assert rows(facts)["run-strategy-restored"].status == verify.PASS


def test_a_later_migration_on_the_target_keeps_the_move_verified_by_its_vmim():
    facts = good()
    facts.target_vmi = vmi(state=completed(migrationUid="later", targetState={"migrationUID": "later"}))
    facts.target_vmims[0]["status"]["migrationState"] = {"targetState": {"virtualMachineInstanceUID": "vmi-uid"}}
    row = rows(facts)["migrated-live"]
    assert row.status == verify.PASS and "migrated again since" in row.evidence


def test_legacy_firmware_uuid_is_derived_from_the_name_like_kubevirt():
    # firmware.go:83-88: uuid5(magic namespace, name) when the VM has none
    facts = good()
    facts.source_vm = vm("Halted", fw="")
    want = str(uuid.uuid5(uuid.UUID("6a1a24a1-4061-4607-8bf4-a3963d0c5895"), "vm1"))
    assert verify.source_firmware_uuid(facts) == want


def test_the_newest_succeeded_target_migration_is_verified_by_default():
    old, new, failed = receive(mid="first"), receive(mid="second"), receive("Failed", mid="third")
    facts = verify.Facts(vm="vm1", source="a", target="b", target_vmims=[old, new, failed])
    assert verify.receive_vmim(facts) is new
