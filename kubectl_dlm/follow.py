"""Where a migration stands, from what the two clusters show. Pure: objects in, assessment out.

KubeVirt publishes no progress in status (only Prometheus metrics) and has no timeout of its own
for the sync phases, so this module turns phases and conditions into an outcome and, when a side
is blocked, into a plain-words cause and fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from kubectl_dlm.model import Obj

SUCCEEDED, FAILED, CANCELLED, TIMED_OUT = "succeeded", "failed", "cancelled", "timed out"
SYNC_PHASES = ("", "WaitingForSync", "Synchronizing")
BLOCKED_CONDITION = "decentralizedMigrationBlocked"
ABORT_CONDITION = "migrationAbortRequested"
RESTORE_ANNOTATION = "kubevirt.io/restore-run-strategy"


@dataclass
class View:
    """The latest objects seen for one VM's migration. `*_seen` tells 'gone' from 'not yet created'."""

    source_vmim: Optional[Obj] = None
    target_vmim: Optional[Obj] = None
    target_vmi: Optional[Obj] = None
    source_vmim_seen: bool = False
    target_vmim_seen: bool = False
    source_vmim_final: str = ""  # last phase seen before the object went away
    target_vmim_final: str = ""
    target_vm: Optional[Obj] = None  # None: not watched (or gone)
    # Read only when a side failed: where KubeVirt writes the cause when the VMIM has none.
    source_vmi: Optional[Obj] = None
    events: List[Obj] = field(default_factory=list)  # Warning Events of either VMIM


@dataclass
class Assessment:
    source_phase: str
    target_phase: str
    outcome: Optional[str] = None
    message: str = ""
    hint: str = ""
    blocked: List[Tuple[str, str]] = field(default_factory=list)  # (side, message)
    failed_side: str = ""
    reason: str = ""  # KubeVirt's reason for a failure, "" while none is written anywhere


def phase(obj: Optional[Obj]) -> str:
    return ((obj or {}).get("status") or {}).get("phase") or ""


def _conditions(obj: Optional[Obj]) -> List[Dict[str, Any]]:
    return ((obj or {}).get("status") or {}).get("conditions") or []


def assess(view: View) -> Assessment:
    src = phase(view.source_vmim) or (f"gone after {view.source_vmim_final}" if view.source_vmim_seen and view.source_vmim is None else "")
    tgt = phase(view.target_vmim) or (f"gone after {view.target_vmim_final}" if view.target_vmim_seen and view.target_vmim is None else "")
    result = Assessment(source_phase=src or "-", target_phase=tgt or "-")
    for side, vmim in (("source", view.source_vmim), ("target", view.target_vmim)):
        # A Succeeded VMIM keeps a stale blocked condition: KubeVirt copies the VMI's
        # DecentralizedLiveMigrationFailure onto every VMIM, final ones too (migration.go:553-559, 654,
        # 678-694 @v1.9.0), and the sync controller clears it only on a later successful sync
        # (synchronization-controller.go:390-431), which never comes once the migration is over.
        if phase(vmim) == "Succeeded":
            continue
        for cond in _conditions(vmim):
            if cond.get("type") == BLOCKED_CONDITION and cond.get("status") == "True":
                result.blocked.append((side, cond.get("message") or cond.get("reason") or ""))
    target_done = phase(view.target_vmim) == "Succeeded" or view.target_vmim_final == "Succeeded"
    source_done = phase(view.source_vmim) == "Succeeded" or (view.source_vmim_seen and view.source_vmim is None
                                                           and view.source_vmim_final in ("Succeeded", "Running", "TargetReady", ""))
    # The source VMIM is deleted by KubeVirt once its VMI is gone after success: gone is success.
    if target_done and source_done:
        if _still_receiving(view.target_vm):
            result.message = "waiting for KubeVirt to restore the target VM's run strategy"
            return result
        result.outcome = SUCCEEDED
        return result
    for side, vmim in (("target", view.target_vmim), ("source", view.source_vmim)):
        if phase(vmim) == "Failed" and _aborted(vmim):
            # Deleting a VMIM is how DLM is cancelled; KubeVirt marks it aborted on its way out.
            result.outcome = CANCELLED
            result.message = f"the {side} migration was deleted (cancelled); the source VM keeps running"
            result.hint = "run `kubectl dlm cleanup` before a new attempt"
            return result
        if phase(vmim) == "Failed":
            result.outcome = FAILED
            result.failed_side = side
            result.reason = failure_reason(vmim, [view.target_vmi, view.source_vmi], view.events)
            result.message = f"the {side} migration failed: {monitor_abort(view, result.reason) or result.reason or NO_REASON}"
            result.hint = explain(result.message)[1] or "run `kubectl dlm cleanup` and try again; the source VM keeps running"
            return result
    target_gone = view.target_vmim_seen and view.target_vmim is None
    source_gone = view.source_vmim_seen and view.source_vmim is None
    # A source VMIM that vanishes while the target is mid-transfer may be KubeVirt's own
    # clean-up after success seen out of order across two clusters: only the target decides.
    if target_gone or (source_gone and phase(view.target_vmim) in SYNC_PHASES):
        side, last = ("target", view.target_vmim_final) if target_gone else ("source", view.source_vmim_final)
        result.outcome = CANCELLED
        result.message = f"the {side} migration was deleted while {last or 'starting'}"
        result.hint = "run `kubectl dlm cleanup` before a new attempt"
    return result


def _going(obj: Optional[Obj]) -> bool:
    return obj is None or bool((obj.get("metadata") or {}).get("deletionTimestamp"))


def source_deleted(source_vm: Optional[Obj], source_vmi: Optional[Obj]) -> bool:
    """The source VM or its VMI is gone or being deleted (by someone else: the plugin never deletes it)."""
    return _going(source_vm) or _going(source_vmi)


def each_side(view: View, source_vm: Optional[Obj], source_vmi: Optional[Obj]) -> str:
    """What each cluster shows of a migration whose source may have been deleted, in one line."""
    vm_state = "deleted" if _going(source_vm) else "still there"
    vmi_state = "gone" if source_vmi is None else ("being deleted" if _going(source_vmi) else phase(source_vmi))
    migration = (f"migration gone after {view.source_vmim_final or 'starting'}" if view.source_vmim is None
                 else f"migration {'left ' if phase(view.source_vmim) != 'Failed' else ''}"
                      f"{phase(view.source_vmim) or 'Pending'}")
    return (f"source: {migration}, VM {vm_state}, VMI {vmi_state}; "
            f"target: migration {phase(view.target_vmim) or 'gone'}, VMI {phase(view.target_vmi) or 'gone'}")


def launcher_ended(vmi: Optional[Obj]) -> bool:
    """The VMI's launcher pod is down or going down: virt-controller sets its Ready condition False
    with reason PodTerminating then (pkg/virt-controller/watch/vmi/lifecycle.go:286, 887-895 @v1.9.0),
    while it keeps a Running VMI Running as long as the pod exists, even Failed (lifecycle.go:479-484).
    Its QEMU, the guest, is gone with it."""
    return any(c.get("type") == "Ready" and c.get("status") == "False" and c.get("reason") == "PodTerminating"
               for c in _conditions(vmi))


def _still_receiving(vm: Optional[Obj]) -> bool:
    """After success KubeVirt switches the target VM from WaitAsReceiver to the restore annotation's
    strategy; until then `kubectl get vm` would still show a receiver (dlm-state-machine §4)."""
    if vm is None:
        return False
    annotations = (vm.get("metadata") or {}).get("annotations") or {}
    return (vm.get("spec") or {}).get("runStrategy") == "WaitAsReceiver" and bool(annotations.get(RESTORE_ANNOTATION))


def _aborted(vmim: Optional[Obj]) -> bool:
    return any(c.get("type") == ABORT_CONDITION and c.get("status") == "True" for c in _conditions(vmim))


WAITING = "waiting for incoming synchronization"
NO_REASON = ("KubeVirt wrote no reason on either migration, either VMI or their events; "
             "see `kubectl describe vmim` on both sides")

# What the source virt-launcher records when libvirt's job was aborted ("canceled by client"):
# pkg/virt-launcher/virtwrap/live-migration-source.go:408-411 @v1.9.0.
ABORTED = "Live migration has been aborted"
MONITOR = "by KubeVirt's migration monitor"


def monitor_abort(view: View, reason: str) -> str:
    """The reason for a migration the source's migration monitor aborted, or "".

    The monitor in the source virt-launcher aborts a transfer with no new low of the remaining data
    for progressTimeout seconds, or not done within completionTimeoutPerGiB per GiB of the VM's data
    (handleLegacyConvergence, live-migration-source.go:730-815 @v1.9.0); libvirt's abort then reads
    like a cancel. A cancel deletes a VMIM (virt-controller marks it migrationAbortRequested,
    migration.go:575-587, 630-638): with both still there and neither marked, it was the monitor."""
    if reason != ABORTED:
        return ""
    for vmim in (view.source_vmim, view.target_vmim):
        if _going(vmim) or _aborted(vmim):
            return ""
    config = (((view.source_vmi or {}).get("status") or {}).get("migrationState") or {}).get("migrationConfiguration") or {}
    progress, per_gib = (f"{config[k]} s" if config.get(k) is not None else "unknown"
                         for k in ("progressTimeout", "completionTimeoutPerGiB"))
    return (f"{ABORTED} {MONITOR} (no VMIM was deleted): the data left to send made no headway for "
            f"progressTimeout ({progress}), or the transfer outlasted completionTimeoutPerGiB ({per_gib}) "
            "per GiB of the VM's memory and disks")


def failure_reason(vmim: Optional[Obj], vmis: List[Optional[Obj]] = (), events: List[Obj] = ()) -> str:
    """KubeVirt's reason for a failed VMIM, from wherever it wrote it, or "".

    After the hand-off the VMIM carries status.migrationState.failureReason (MC:553-557, copied only
    when the VMI's migration is this one). Before the hand-off nothing is copied: the cause is a
    Warning Event on the VMIM (MC:566-629) or the VMI's migrationState (MC:1136, handler)."""
    status = (vmim or {}).get("status") or {}
    if (status.get("migrationState") or {}).get("failureReason"):
        return status["migrationState"]["failureReason"]
    uid = ((vmim or {}).get("metadata") or {}).get("uid")
    for vmi in vmis:
        state = ((vmi or {}).get("status") or {}).get("migrationState") or {}
        ours = uid and uid in (state.get("migrationUid"), (state.get("targetState") or {}).get("migrationUID"),
                               (state.get("sourceState") or {}).get("migrationUID"))
        if ours and state.get("failureReason"):
            return state["failureReason"]
    mine = [e for e in events if uid and (e.get("involvedObject") or {}).get("uid") == uid and e.get("type") == "Warning"]
    if mine:
        newest = max(mine, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")
        return newest.get("message") or newest.get("reason") or ""
    # A blocked condition keeps its first message (MC:678-696): "waiting for incoming synchronization"
    # is how every target starts, not a cause.
    for cond in _conditions(vmim):
        message = cond.get("message") or ""
        if cond.get("status") == "True" and message and cond.get("type") != ABORT_CONDITION \
                and WAITING not in message.lower():
            return message
    if any(c.get("type") == ABORT_CONDITION for c in _conditions(vmim)):
        return "the migration was aborted (one side was deleted)"
    return ""


# Known messages from KubeVirt's synchronization controller, in plain words (dlm-state-machine §2.6-2.8).
_CAUSES = (
    (("x509", "unknown authority", "bad certificate", "certificate"),
     "the two clusters do not trust each other's KubeVirt CA",
     "run `kubectl dlm trust --context SOURCE --to-context TARGET`, then retry"),
    (("connection refused", "no route to host", "i/o timeout", "deadline exceeded", "dial tcp", "connection error",
      "unavailable", "transport"),
     "the target's synchronization address cannot be reached from the source (or the other way round)",
     "check that KubeVirt.status.synchronizationAddresses on each cluster is routable from the other; "
     "pass --connect-url if the default address is not"),
    (("unable to locate vmi", "unable to locate",),
     "the other side's VMI or migration does not exist yet",
     "make sure the receiving VM was created and the target migration applied"),
    (("feature gate", "decentralizedlivemigration"),
     "decentralized live migration is disabled on one cluster",
     "add DecentralizedLiveMigration to spec.configuration.developerConfiguration.featureGates of the KubeVirt CR"),
    ((MONITOR.lower(),),
     "the guest dirties memory faster than it is sent, or the transfer is too slow for KubeVirt's timeouts",
     "let it converge: --allow-auto-converge (throttles the guest), --allow-post-copy, or more --bandwidth "
     "(a MigrationPolicy for this move), or raise progressTimeout/completionTimeoutPerGiB in the KubeVirt CR's "
     "spec.configuration.migrations; the source VM keeps running"),
    (("waiting for incoming synchronization",),
     "the target is waiting for the source to connect",
     "normal at the start; if it lasts, check the source migration and the sync address"),
)


def explain(message: str) -> Tuple[str, str]:
    """(cause, fix) for a KubeVirt message, or ("", "") when it is not one we know."""
    lowered = message.lower()
    for needles, cause, fix in _CAUSES:
        if any(n in lowered for n in needles):
            return cause, fix
    return "", ""


def sync_stalled(view: View) -> bool:
    """Both sides still waiting to connect (the phase that has no timeout in KubeVirt)."""
    return phase(view.source_vmim) in SYNC_PHASES or phase(view.target_vmim) in SYNC_PHASES


def eta_seconds(remaining_bytes: Optional[float], rate: Optional[float]) -> Optional[float]:
    if remaining_bytes is None or not rate or rate <= 0:
        return None
    return remaining_bytes / rate
