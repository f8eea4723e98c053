"""Which existing migrations stand in the way of a migration ID (pure, table-tested)."""

from __future__ import annotations

import pytest

from kubectl_dlm import follow, ids


def vmim(ns, name, vmi, role, mid, phase="Running", deleting=False, uid=None):
    spec = {"vmiName": vmi, ("receive" if role == "receive" else "sendTo"): {"migrationID": mid}}
    meta = {"namespace": ns, "name": name, "uid": uid or f"uid-{name}"}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
        meta["finalizers"] = ["kubevirt.io/migrationJobFinalize"]
    return {"metadata": meta, "spec": spec, "status": {"phase": phase}}


OURS = {("source", "send", "prod", "db"), ("target", "receive", "prod-b", "db")}


@pytest.mark.parametrize("seen,foreign", [
    ({"source": [], "target": []}, []),
    # our own two sides
    ({"source": [vmim("prod", "s", "db", "send", "m1")], "target": [vmim("prod-b", "r", "db", "receive", "m1")]}, []),
    # another VMI on the target with our ID, in another namespace, even a finished one
    ({"source": [], "target": [vmim("other", "r2", "web", "receive", "m1", "Succeeded")]}, ["r2"]),
    # the same VMI name but in another namespace is another VMI
    ({"source": [vmim("prod-c", "s3", "db", "send", "m1")], "target": []}, ["s3"]),
    # a source-role VMIM on the target cluster with our ID
    ({"source": [], "target": [vmim("prod-b", "s4", "db", "send", "m1")]}, ["s4"]),
    # other IDs do not matter
    ({"source": [vmim("prod", "x", "web", "send", "m2")], "target": []}, []),
])
def test_foreign_uses(seen, foreign):
    assert [u.vmim["metadata"]["name"] for u in ids.foreign_uses(seen, "m1", OURS)] == foreign


@pytest.mark.parametrize("source,target,says", [
    ([], [], None),
    ([vmim("prod", "s", "db", "send", "m1", "Scheduling")], [vmim("prod-b", "r", "db", "receive", "m1", "Scheduling")], None),
    ([vmim("prod", "s", "db", "send", "m1", "Scheduling")], [vmim("prod-b", "r", "db", "receive", "m1", "Failed")],
     "while its target migration failed"),
    ([vmim("prod", "s", "db", "send", "m1", "Scheduling")], [], "while its target migration is gone"),
    ([], [vmim("prod-b", "r", "db", "receive", "m1", "Failed")], "an earlier attempt with this migration ID failed"),
    ([vmim("prod", "s", "db", "send", "m1", "Scheduling", deleting=True)], [], "KubeVirt still holds it"),
    ([vmim("prod", "s", "db", "send", "m1", "Succeeded")], [vmim("prod-b", "r", "db", "receive", "m1", "Succeeded")], None),
])
def test_stale_attempt_is_never_resumed(source, target, says):
    found = ids.stale_attempt(source, target)
    assert (found is None) if says is None else (says in found)


def failed(uid="u1", **status):
    return {"metadata": {"uid": uid}, "status": {"phase": "Failed", **status}}


WAITING = {"type": follow.BLOCKED_CONDITION, "status": "True", "message": "waiting for incoming synchronization, unable to proceed"}


@pytest.mark.parametrize("vmim,vmis,events,reason", [
    (failed(migrationState={"failureReason": "Target pod is down"}), [], [], "Target pod is down"),
    # before the hand-off: only the VMI (whose migration is this one) or an Event tells
    (failed(), [{"status": {"migrationState": {"migrationUid": "u1", "failureReason": "quota exceeded"}}}], [], "quota exceeded"),
    (failed(), [{"status": {"migrationState": {"migrationUid": "old", "failureReason": "an older failure"}}}], [], ""),
    (failed(conditions=[WAITING]), [], [
        {"type": "Normal", "involvedObject": {"uid": "u1"}, "message": "Created migration target pod"},
        {"type": "Warning", "involvedObject": {"uid": "u1"}, "lastTimestamp": "2026-01-01T00:00:02Z",
         "message": "Migration failed because target pod shutdown during migration"},
        {"type": "Warning", "involvedObject": {"uid": "other"}, "message": "not ours"}],
     "Migration failed because target pod shutdown during migration"),
    # the first message of a blocked condition is how every target starts, not a cause
    (failed(conditions=[WAITING]), [], [], ""),
    (failed(conditions=[dict(WAITING, message="x509: certificate signed by unknown authority")]), [], [],
     "x509: certificate signed by unknown authority"),
])
def test_failure_reason_looks_everywhere_kubevirt_writes_one(vmim, vmis, events, reason):
    assert follow.failure_reason(vmim, vmis, events) == reason


def test_no_reason_anywhere_says_where_it_looked():
    view = follow.View(target_vmim=failed(), target_vmim_seen=True)
    assert follow.assess(view).message == f"the target migration failed: {follow.NO_REASON}"
    assert "either VMI or their events" in follow.NO_REASON
