"""follow.py and progress.py, pure: VMIM states as KubeVirt writes them (dlm-state-machine.md) in,
outcome, cause and fix, and the lines a user sees, out."""

from __future__ import annotations

import io
import json

import pytest

from kubectl_dlm import follow
from kubectl_dlm.progress import Reporter, describe, human_bytes


def vmim(phase, conditions=(), failure_reason=None):
    status = {"phase": phase, "conditions": list(conditions)}
    if failure_reason:
        status["migrationState"] = {"failureReason": failure_reason}
    return {"kind": "VirtualMachineInstanceMigration", "status": status}


BLOCKED_X509 = {"type": "decentralizedMigrationBlocked", "status": "True", "reason": "DecentralizedNotLiveMigratable",
                "message": "rpc error: code = Unavailable desc = connection error: desc = \"transport: authentication "
                           "handshake failed: tls: failed to verify certificate: x509: certificate signed by unknown authority\""}
WAITING = {"type": "decentralizedMigrationBlocked", "status": "True",
           "message": "waiting for incoming synchronization, unable to proceed"}
ABORTED = {"type": "migrationAbortRequested", "status": "True"}


def view(source=None, target=None, source_gone_after=None, target_gone_after=None):
    v = follow.View(source_vmim=source, target_vmim=target)
    v.source_vmim_seen = source is not None or source_gone_after is not None
    v.target_vmim_seen = target is not None or target_gone_after is not None
    v.source_vmim_final = source_gone_after or ""
    v.target_vmim_final = target_gone_after or ""
    return v


@pytest.mark.parametrize("source, target, outcome", [
    (vmim("Synchronizing"), vmim("WaitingForSync"), None),
    (vmim("Running"), vmim("Running"), None),
    (vmim("Succeeded"), vmim("Running"), None),  # the target decides
    (vmim("Succeeded"), vmim("Succeeded"), follow.SUCCEEDED),
    (vmim("Running"), vmim("Failed"), follow.FAILED),
    (vmim("Failed", failure_reason="target pod died"), vmim("WaitingForSync"), follow.FAILED),
    (vmim("Failed", [ABORTED]), vmim("Running"), follow.CANCELLED),
], ids=["syncing", "transferring", "source-first", "both-succeeded", "target-failed", "source-failed", "aborted"])
def test_outcome_from_both_sides(source, target, outcome):
    assert follow.assess(view(source, target)).outcome == outcome


def test_source_vmim_deleted_by_kubevirt_after_success_is_success():
    # KubeVirt deletes the source VMIM once the source VMI is gone (dlm-state-machine §4)
    assert follow.assess(view(None, vmim("Succeeded"), source_gone_after="Running")).outcome == follow.SUCCEEDED


def test_source_vmim_gone_while_target_transfers_is_not_yet_judged():
    # seen out of order across two clusters: wait for the target's own verdict
    assert follow.assess(view(None, vmim("Running"), source_gone_after="Running")).outcome is None


def test_a_deleted_target_vmim_is_a_cancel():
    result = follow.assess(view(vmim("Running"), None, target_gone_after="Running"))
    assert result.outcome == follow.CANCELLED and "deleted while Running" in result.message
    assert "kubectl dlm cleanup" in result.hint


def test_failure_carries_the_reason_and_a_next_step():
    result = follow.assess(view(vmim("Failed", failure_reason="target pod died"), vmim("WaitingForSync")))
    assert result.message == "the source migration failed: target pod died"
    assert "cleanup" in result.hint


def test_blocked_conditions_are_reported_per_side_and_explained():
    result = follow.assess(view(vmim("Synchronizing", [BLOCKED_X509]), vmim("WaitingForSync", [WAITING])))
    assert [side for side, _ in result.blocked] == ["source", "target"]
    cause, fix = follow.explain(result.blocked[0][1])
    assert cause == "the two clusters do not trust each other's KubeVirt CA"
    assert fix.startswith("run `kubectl dlm trust")


def test_a_blocked_condition_left_on_a_succeeded_migration_is_not_reported():
    # seen on KubeVirt's own controllers: the target VMIM of a finished move still carries
    # "unable to locate VMI for migrationID" from before the receiving VMI existed
    stale = {**WAITING, "message": "rpc error: code = Unknown desc = target: unable to locate VMI for migrationID x"}
    result = follow.assess(view(target=vmim("Succeeded", [stale]), source_gone_after="Succeeded"))
    assert result.outcome == follow.SUCCEEDED and result.blocked == []
    result = follow.assess(view(vmim("Running", [BLOCKED_X509]), vmim("Succeeded", [stale])))
    assert [side for side, _ in result.blocked] == ["source"]


@pytest.mark.parametrize("message, cause_starts", [
    ("dial tcp 192.0.2.20:9185: connect: connection refused", "the target's synchronization address cannot be reached"),
    ("context deadline exceeded", "the target's synchronization address cannot be reached"),
    ("remote error: tls: bad certificate", "the two clusters do not trust"),
    ("unable to locate VMI src/vm1", "the other side's VMI or migration does not exist yet"),
    ("DecentralizedLiveMigration feature gate is not enabled in kubevirt resource", "decentralized live migration is disabled"),
    ("something KubeVirt never said", ""),
])
def test_explain_known_messages(message, cause_starts):
    cause, _ = follow.explain(message)
    assert cause.startswith(cause_starts) and (cause_starts or cause == "")


def test_sync_stalled_only_while_a_side_waits_to_connect():
    assert follow.sync_stalled(view(vmim("Synchronizing"), vmim("WaitingForSync")))
    assert follow.sync_stalled(view(vmim("Scheduling"), vmim("WaitingForSync")))
    assert not follow.sync_stalled(view(vmim("Running"), vmim("Running")))


def test_eta():
    assert follow.eta_seconds(100.0, 10.0) == 10.0
    assert follow.eta_seconds(None, 10.0) is None and follow.eta_seconds(100.0, 0) is None


def test_progress_line_shows_bytes_rate_eta_and_blocks():
    result = follow.assess(view(vmim("Running"), vmim("Running")))
    line = describe(result, 12.4, {"processed": 3 * 2**30, "remaining": 1 * 2**30, "rate": 256 * 2**20})
    assert line == "source Running, target Running (12s) - 3.0 GiB sent, 1.0 GiB left, 256.0 MiB/s, ETA 4s"
    assert human_bytes(512) == "512 B"


class Tty(io.StringIO):
    def isatty(self):
        return True


class Run:
    def __init__(self, vm):
        self.vm, self.outcome, self.message, self.hint, self.migration_id = vm, None, "", "", "id"


def test_terminal_keeps_one_live_line_per_vm():
    out = Tty()
    reporter = Reporter("auto", out)
    assert reporter.mode == "tty"
    result = follow.assess(view(vmim("Running"), vmim("Running")))
    reporter.update(Run("a"), result, 1, None)
    reporter.update(Run("b"), result, 1, None)
    reporter.update(Run("a"), result, 2, None)
    screen = out.getvalue()
    # each redraw moves the cursor up over the block and clears it
    assert screen.count("\x1b[1F\x1b[J") == 1 and screen.count("\x1b[2F\x1b[J") == 1
    assert screen.endswith("a: source Running, target Running (2s)\nb: source Running, target Running (1s)\n")


def test_log_lines_only_on_change_and_json_events():
    log = io.StringIO()
    reporter = Reporter("auto", log)
    assert reporter.mode == "plain"
    result = follow.assess(view(vmim("Running"), vmim("Running")))
    for seconds in (1, 2, 3):
        reporter.update(Run("a"), result, seconds, None)
    assert len(log.getvalue().splitlines()) == 1
    events = io.StringIO()
    Reporter("json", events).update(Run("a"), result, 1, {"processed": 10.0})
    event = json.loads(events.getvalue())
    assert (event["vm"], event["event"], event["source"], event["progress"]) == ("a", "status", "Running", {"processed": 10.0})


def test_success_waits_until_kubevirt_restored_the_target_run_strategy():
    receiving = {"metadata": {"annotations": {"kubevirt.io/restore-run-strategy": "Always"}},
                 "spec": {"runStrategy": "WaitAsReceiver"}}
    v = view(vmim("Succeeded"), vmim("Succeeded"))
    v.target_vm = receiving
    result = follow.assess(v)
    assert result.outcome is None and "restore the target VM's run strategy" in result.message
    v.target_vm = {**receiving, "spec": {"runStrategy": "Always"}}
    assert follow.assess(v).outcome == follow.SUCCEEDED
    # without the annotation KubeVirt never switches it: do not wait forever
    v.target_vm = {"metadata": {}, "spec": {"runStrategy": "WaitAsReceiver"}}
    assert follow.assess(v).outcome == follow.SUCCEEDED


@pytest.mark.parametrize("mode", ["plain", "json", "tty"])
@pytest.mark.parametrize("outcome", [follow.FAILED, follow.TIMED_OUT, follow.CANCELLED, "refused"])
def test_errors_and_refusals_go_to_stderr_with_their_hint_results_stay_on_stdout(mode, outcome):
    out, err = (Tty() if mode == "tty" else io.StringIO()), io.StringIO()
    run = Run("db")
    run.outcome, run.message, run.hint = outcome, "the target migration failed: Target pod is down", "run cleanup"
    Reporter(mode, out, err).finished(run)
    assert err.getvalue() == (f"error: db: {outcome}: the target migration failed: Target pod is down\n"
                              "  hint: run cleanup\n")
    if mode == "json":
        assert json.loads(out.getvalue())["outcome"] == outcome  # the event stream is complete on stdout
    else:
        assert out.getvalue().rstrip().endswith(f"db: {outcome}") and "error:" not in out.getvalue()


def test_success_says_nothing_on_stderr():
    out, err = io.StringIO(), io.StringIO()
    run = Run("db")
    run.outcome, run.message = follow.SUCCEEDED, "already migrated"
    Reporter("plain", out, err).finished(run)
    assert err.getvalue() == "" and out.getvalue().rstrip().endswith("db: succeeded: already migrated")


def obj(phase=None, deleting=False):
    o = {"metadata": {"deletionTimestamp": "2026-12-04T12:00:00Z"} if deleting else {}}
    if phase:
        o["status"] = {"phase": phase}
    return o


@pytest.mark.parametrize("source_vm, source_vmi, deleted", [
    (obj(), obj("Running"), False),
    (None, obj("Running", deleting=True), True),
    (obj(deleting=True), obj("Running"), True),
    (obj(), None, True),
    (None, None, True),
])
def test_source_deleted_when_the_vm_or_its_vmi_is_gone_or_going(source_vm, source_vmi, deleted):
    assert follow.source_deleted(source_vm, source_vmi) is deleted


@pytest.mark.parametrize("source, source_gone_after, source_vm, source_vmi, target, target_vmi, said", [
    (vmim("Running"), None, None, None, vmim("Failed"), obj("Scheduled"),
     "source: migration left Running, VM deleted, VMI gone; target: migration Failed, VMI Scheduled"),
    (vmim("Failed"), None, obj(deleting=True), obj("Running", deleting=True), vmim("Running"), None,
     "source: migration Failed, VM deleted, VMI being deleted; target: migration Running, VMI gone"),
    (None, "Running", obj(), obj("Running"), None, None,
     "source: migration gone after Running, VM still there, VMI Running; target: migration gone, VMI gone"),
])
def test_each_side_says_what_each_cluster_shows(source, source_gone_after, source_vm, source_vmi, target, target_vmi,
                                                said):
    v = view(source, target, source_gone_after=source_gone_after)
    v.target_vmi = target_vmi
    assert follow.each_side(v, source_vm, source_vmi) == said


READY_TERMINATING = {"type": "Ready", "status": "False", "reason": "PodTerminating",
                     "message": "virt-launcher pod is terminating"}


@pytest.mark.parametrize("conditions, ended", [
    ([], False),
    ([{"type": "Ready", "status": "True"}], False),
    ([{"type": "Ready", "status": "False", "reason": "PodConditionMissing"}], False),
    ([{"type": "LiveMigratable", "status": "True"}, READY_TERMINATING], True),
])
def test_a_source_launcher_has_ended_when_the_vmi_says_its_pod_is_terminating(conditions, ended):
    vmi = {"status": {"phase": "Running", "conditions": conditions}}
    assert follow.launcher_ended(vmi) is ended
    assert follow.launcher_ended(None) is False


def _monitor_view(target, config=None):
    v = view(vmim("Failed", failure_reason=follow.ABORTED), target)
    if config is not None:
        v.source_vmi = {"status": {"migrationState": {"migrationConfiguration": config, "abortStatus": "Succeeded"}}}
    return v


@pytest.mark.parametrize("target, config, by_monitor", [
    (vmim("Running"), {"progressTimeout": 5, "completionTimeoutPerGiB": 150}, True),
    (vmim("Running"), None, True),                           # no configuration read: the values say so
    ({**vmim("Running"), "metadata": {"deletionTimestamp": "2026-12-04T12:00:00Z"}}, None, False),  # cancelled
    (vmim("Failed", [ABORTED]), None, False),                # a deleted VMIM was marked by virt-controller
], ids=["monitor", "monitor-no-config", "target-being-deleted", "target-abort-requested"])
def test_an_abort_nobody_asked_for_is_named_as_the_migration_monitors(target, config, by_monitor):
    """libvirt's abort reads 'Live migration has been aborted' whoever asked; without a deleted or
    abort-requested VMIM it was the source launcher's migration monitor (progressTimeout,
    completionTimeoutPerGiB), and the fix is to let the transfer converge."""
    result = follow.assess(_monitor_view(target, config))
    if not by_monitor:
        assert result.outcome == follow.CANCELLED or "migration monitor" not in result.message
        return
    assert result.outcome == follow.FAILED
    assert "Live migration has been aborted by KubeVirt's migration monitor (no VMIM was deleted)" in result.message
    expected = "progressTimeout (5 s)" if config else "progressTimeout (unknown)"
    assert expected in result.message
    cause, fix = follow.explain(result.message)
    assert cause.startswith("the guest dirties memory faster than it is sent")
    assert "--allow-auto-converge" in fix and "--allow-post-copy" in fix


def test_an_abort_with_the_target_migration_gone_is_not_blamed_on_the_monitor():
    result = follow.assess(view(vmim("Failed", failure_reason=follow.ABORTED), None, target_gone_after="Running"))
    assert "migration monitor" not in result.message
