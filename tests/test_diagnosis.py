"""kubectl_dlm.diagnosis, pure: the cause of a stall from the freshest evidence, each piece with its age."""

from __future__ import annotations

import datetime as dt

from kubectl_dlm import diagnosis

NOW = dt.datetime(2026, 12, 3, 12, 0, 0, tzinfo=dt.timezone.utc)


def ts(seconds_ago: int) -> str:
    return (NOW - dt.timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def vmim(message: str, seconds_ago: int):
    return {"kind": "VirtualMachineInstanceMigration", "metadata": {"name": "vm1-receive-abc"},
            "status": {"phase": "WaitingForSync", "conditions": [
                {"type": "decentralizedMigrationBlocked", "status": "True", "reason": "DecentralizedNotLiveMigratable",
                 "message": message, "lastTransitionTime": ts(seconds_ago)}]}}


def event(message: str, seconds_ago: int, component: str = "virt-controller"):
    return {"kind": "Event", "metadata": {"name": "e"}, "type": "Warning", "reason": "FailedSync",
            "involvedObject": {"kind": "VirtualMachineInstanceMigration", "name": "vm1-send-abc"},
            "source": {"component": component}, "message": message, "lastTimestamp": ts(seconds_ago)}


def test_a_frozen_first_message_is_dated_and_a_newer_event_names_the_cause():
    """The target's condition still says what it said first (conditions.go:203-218 keeps it)."""
    found = diagnosis.diagnose(diagnosis.Evidence(
        read_at=NOW, target_vmim=vmim("waiting for incoming synchronization", 400),
        events=[("source", event("rpc error: transport: authentication handshake failed: x509: certificate signed "
                                 "by unknown authority", 20))]))
    assert ("target migration decentralizedMigrationBlocked: waiting for incoming synchronization (first reported "
            "6m40s ago; KubeVirt keeps the first message while it stays blocked)") in found.why
    assert "source Event Warning FailedSync on VirtualMachineInstanceMigration vm1-send-abc from virt-controller" in found.why
    assert "(20s ago)" in found.why and found.why.endswith("(read 12:00:00 UTC)")
    assert found.cause == "the two clusters do not trust each other's KubeVirt CA"


def test_without_newer_evidence_the_condition_is_explained_and_its_age_shown():
    found = diagnosis.diagnose(diagnosis.Evidence(read_at=NOW, source_vmim=vmim("dial tcp 192.0.2.20:9185: connect: "
                                                                                 "connection refused", 30)))
    assert "(first reported 30s ago;" in found.why
    assert found.cause.startswith("the target's synchronization address cannot be reached")


def test_the_source_vmis_migration_state_is_part_of_the_evidence():
    vmi = {"status": {"migrationState": {"startTimestamp": ts(90), "failed": True, "failureReason": "dial tcp: i/o timeout",
                                         "targetState": {"syncAddress": "192.0.2.20:9185"}}}}
    found = diagnosis.diagnose(diagnosis.Evidence(read_at=NOW, source_vmi=vmi))
    assert found.why.startswith("source VMI migrationState: failed=True, failureReason=dial tcp: i/o timeout, "
                                "targetState.syncAddress=192.0.2.20:9185, started 1m30s ago")
    assert found.cause.startswith("the target's synchronization address cannot be reached")


def test_nothing_to_go_on_says_so():
    found = diagnosis.diagnose(diagnosis.Evidence(read_at=NOW))
    assert (found.why, found.cause) == ("no condition, migration state or Event explains it (read 12:00:00 UTC)", "")
