"""After the move: did it really happen live, and is the old copy where it should be? Pure.

verify(Facts) -> one Row per fact, each with the evidence read from the objects. It works from
the objects alone (no memory of the run), so it can be run days after the migration.
KubeVirt references are to v1.9.0.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from kubectl_dlm.model import ANN_MIGRATED_TO, LABEL_MIGRATION_ID, Obj, meta
from kubectl_dlm.plan import restore_run_strategy

PASS, FAIL = "pass", "fail"
RESTORE_RUN_STRATEGY = "kubevirt.io/restore-run-strategy"
# pkg/virt-controller/watch/vm/firmware.go:83-88: a VM without a firmware UUID gets uuid5 of its name.
LEGACY_UUID_NAMESPACE = uuid.UUID("6a1a24a1-4061-4607-8bf4-a3963d0c5895")
FACTS = ("target-running", "migrated-live", "run-strategy-restored", "source-stopped", "disks-bound",
         "firmware-uuid", "mac-addresses")


@dataclass
class Facts:
    """What verify reads: both VMs and VMIs, our target migrations, the target's claims."""

    vm: str
    source: str  # cluster/namespace, for messages
    target: str
    source_vm: Optional[Obj] = None
    source_vmi: Optional[Obj] = None
    target_vm: Optional[Obj] = None
    target_vmi: Optional[Obj] = None
    target_vmims: List[Obj] = field(default_factory=list)  # ours for this VM, oldest first
    claims: Dict[str, Optional[Obj]] = field(default_factory=dict)  # target claim name -> PVC
    migration_id: Optional[str] = None  # asked for (--migration-id); else the newest succeeded one


@dataclass
class Row:
    fact: str
    status: str
    evidence: str
    final: bool = False  # a failure KubeVirt will not mend by itself: waiting longer changes nothing


@dataclass
class Verdict:
    vm: str
    migration_id: Optional[str]
    rows: List[Row]

    @property
    def passed(self) -> bool:
        return all(r.status == PASS for r in self.rows)

    def as_dict(self) -> Dict[str, Any]:
        return {"vm": self.vm, "migrationID": self.migration_id, "passed": self.passed,
                "facts": [{"fact": r.fact, "status": r.status, "evidence": r.evidence} for r in self.rows]}

    @property
    def settled(self) -> bool:
        """Passed, or every failing row is one that waiting will not change."""
        return all(r.status == PASS or r.final for r in self.rows)


def _dig(obj: Optional[Obj], *path: str) -> Any:
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def run_strategy(vm: Optional[Obj]) -> Optional[str]:
    """The VM's run strategy as KubeVirt reads it; None when there is no VM."""
    return None if vm is None else restore_run_strategy(vm)


def receive_vmim(facts: Facts) -> Optional[Obj]:
    """Our target migration: the one asked for, else the newest that succeeded, else the newest."""
    mine = [v for v in facts.target_vmims if _dig(v, "spec", "receive")]
    if facts.migration_id:
        return next((v for v in reversed(mine) if _mid(v) == facts.migration_id), None)
    done = [v for v in mine if _dig(v, "status", "phase") == "Succeeded"]
    return (done or mine or [None])[-1]


def _mid(vmim: Obj) -> Optional[str]:
    return _dig(vmim, "spec", "receive", "migrationID") or (meta(vmim).get("labels") or {}).get(LABEL_MIGRATION_ID)


def verify(facts: Facts) -> Verdict:
    vmim = receive_vmim(facts)
    migration_id = facts.migration_id or (_mid(vmim) if vmim else None)
    rows = [_target_running(facts), _migrated_live(facts, vmim, migration_id), _run_strategy_restored(facts),
            _source_stopped(facts), _disks_bound(facts), _firmware_uuid(facts), _macs(facts)]
    return Verdict(facts.vm, migration_id, rows)


def _target_running(f: Facts) -> Row:
    if f.target_vmi is None:
        return Row("target-running", FAIL, f"no VirtualMachineInstance {f.vm} in {f.target}")
    phase = _dig(f.target_vmi, "status", "phase") or "no phase"
    node = _dig(f.target_vmi, "status", "nodeName") or "?"
    return Row("target-running", PASS if phase == "Running" else FAIL, f"target VMI is {phase} on node {node}")


def _migrated_live(f: Facts, vmim: Optional[Obj], migration_id: Optional[str]) -> Row:
    """A VMI that received a migration records it in status.migrationState: the target migration's
    UID (decentralized.go:64, migration.go:1213-1224) and completed without failed, set by the
    target virt-handler once the domain runs there (virt-handler/migration-target.go:1253; an abort
    sets completed *and* failed, :274-275). A freshly booted VMI has no migrationState at all."""
    name = "migrated-live"
    if vmim is None:
        wanted = f" with migration ID {migration_id}" if migration_id else ""
        return Row(name, FAIL, f"no target migration by kubectl-dlm{wanted} for {f.vm} in {f.target}")
    uid = meta(vmim).get("uid")
    label = f"target migration {meta(vmim).get('name')} (migration ID {migration_id}, {_dig(vmim, 'status', 'phase') or 'no phase'})"
    state = _dig(f.target_vmi, "status", "migrationState")
    if f.target_vmi is None:
        return Row(name, FAIL, f"{label}: the target VMI is gone")
    if not state:
        return Row(name, FAIL, f"{label}: the target VMI has no migrationState: it was booted, not migrated in")
    if state.get("migrationUid") == uid or _dig(state, "targetState", "migrationUID") == uid:
        if state.get("failed"):
            return Row(name, FAIL, f"{label}: migrationState failed: {state.get('failureReason') or 'no reason given'}")
        if not state.get("completed"):
            return Row(name, FAIL, f"{label}: migrationState not completed yet")
        src = _dig(state, "sourceState", "node") or state.get("sourceNode") or "?"
        dst = _dig(state, "targetState", "node") or state.get("targetNode") or "?"
        return Row(name, PASS, f"target VMI migrationState: migrationUid {uid} of {label}, completed, "
                               f"node {src} -> {dst}, ended {state.get('endTimestamp') or '?'}")
    # The VMI migrated again since (a node drain on the target): its migrationState describes the
    # newer migration; our VMIM's own outcome is the remaining evidence.
    if _dig(vmim, "status", "phase") == "Succeeded" and meta(f.target_vmi).get("uid") == _received_vmi_uid(vmim):
        return Row(name, PASS, f"{label}: Succeeded; the target VMI migrated again since "
                               f"(migrationUid now {state.get('migrationUid')})")
    return Row(name, FAIL, f"{label}: the target VMI's migrationState is of another migration "
                           f"(migrationUid {state.get('migrationUid')})")


def _received_vmi_uid(vmim: Obj) -> Optional[str]:
    return _dig(vmim, "status", "migrationState", "targetState", "virtualMachineInstanceUID") or \
        _dig(vmim, "status", "migrationState", "sourceState", "virtualMachineInstanceUID")


def _run_strategy_restored(f: Facts) -> Row:
    """VMC restores spec.runStrategy from the annotation once the receiver VMI completed its
    migration and keeps the annotation (pkg/virt-controller/watch/vm/vm.go:1149-1166)."""
    name = "run-strategy-restored"
    if f.target_vm is None:
        return Row(name, FAIL, f"no VirtualMachine {f.vm} in {f.target}")
    strategy = run_strategy(f.target_vm)
    wanted = (meta(f.target_vm).get("annotations") or {}).get(RESTORE_RUN_STRATEGY)
    if strategy == "WaitAsReceiver":
        return Row(name, FAIL, f"target VM is still WaitAsReceiver (annotation asks for {wanted or 'nothing'})")
    if wanted is None:
        return Row(name, PASS, f"target VM runStrategy {strategy} (restore annotation no longer there: declared since)")
    if strategy != wanted:
        return Row(name, FAIL, f"target VM runStrategy {strategy}, but {RESTORE_RUN_STRATEGY} is {wanted}")
    return Row(name, PASS, f"target VM runStrategy {strategy}, as {RESTORE_RUN_STRATEGY} asks")


def original_strategy(f: Facts) -> Optional[str]:
    """The source's run strategy when it was moved: the receiving VM recorded it in the annotation."""
    annotated = (meta(f.target_vm).get("annotations") or {}).get(RESTORE_RUN_STRATEGY) if f.target_vm else None
    return annotated or run_strategy(f.source_vm)


def _source_stopped(f: Facts) -> Row:
    """After a decentralized migration the source VMI is Succeeded. VMC halts only a runStrategy
    Always VM (vm.go:987-996); RerunOnFailure deletes the VMI without restart (vm.go:1039-1060);
    Manual (vm.go:1088-1113) and Once (vm.go:1140-1148) keep the Succeeded VMI and the strategy;
    a legacy `running: true` VM cannot take runStrategy Halted next to `running` (the VM admitter
    rejects both, pkg/virt-api/webhooks/validating-webhook/admitters/vms-admitter.go:232-235).
    Only the first is stopped for good: the others can be started again on the old disks."""
    name = "source-stopped"
    if f.source_vm is None and f.source_vmi is None:
        return Row(name, PASS, f"source VM and VMI are gone from {f.source}")
    vmi_phase = _dig(f.source_vmi, "status", "phase") if f.source_vmi else None
    if vmi_phase not in (None, "Succeeded"):
        ended = _migrated_away(f.source_vmi)
        if vmi_phase == "Running" and ended:
            context, namespace = f.source.rsplit("/", 1)
            halt = (f"kubectl --context {context} -n {namespace} patch vm {f.vm} --type merge "
                    """-p '{"spec":{"runStrategy":"Halted"}}'""")
            return Row(name, FAIL, f"source VMI is still Running in {f.source}, but its migration completed at {ended} "
                                   f"and the guest runs on the target: KubeVirt did not mark it Succeeded; halt the "
                                   f"source VM ({halt}), KubeVirt then removes that VMI and starts none (do not delete "
                                   "the VMI first: runStrategy Always would start the old copy again)",
                       final=not _decentralized(f.source_vmi))
        return Row(name, FAIL, f"source VMI is {vmi_phase} in {f.source}: the old copy is running")
    vmi_text = "source VMI gone" if f.source_vmi is None else "source VMI Succeeded"
    if f.source_vm is None:
        return Row(name, PASS, f"{vmi_text}; source VM deleted")
    strategy = run_strategy(f.source_vm)
    retired = (meta(f.source_vm).get("annotations") or {}).get(ANN_MIGRATED_TO)
    if retired and strategy == "Halted":
        return Row(name, PASS, f"{vmi_text}; source VM retired (Halted, migrated-to {retired})")
    original = original_strategy(f)
    if original == "Always" and _dig(f.source_vm, "spec", "runStrategy") == "Always":
        return Row(name, FAIL, f"{vmi_text}, but the source VM is still runStrategy Always: KubeVirt "
                               "should have halted it (vm.go:987-996)")
    if strategy == "Halted":
        return Row(name, PASS, f"{vmi_text}; source VM Halted")
    kind = "uses the legacy `running: true`" if "running" in (f.source_vm.get("spec") or {}) else f"runStrategy {strategy}"
    return Row(name, PASS, f"{vmi_text}; source VM {kind}: KubeVirt does not halt it, "
                           "it can be started again (retire it with `kubectl dlm retire`)")


def _migrated_away(source_vmi: Obj) -> Optional[str]:
    """When a source VMI's own migration state says the guest left it (completed, not failed, the
    target's domain ready), the end time. KubeVirt v1.9.0 then leaves the VMI Running if its
    synchronization controller changed leader mid-migration (an API server away longer than the
    Lease's renew deadline): the new leader writes its own address into the source VMI's
    sourceState (rebuildSourceConnection, pkg/synchronization-controller/synchronization-controller.go:858-878),
    with both addresses set the VMI no longer counts as a decentralized migration
    (IsDecentralizedMigration, staging/src/kubevirt.io/api/core/v1/types.go:676-681), and
    virt-controller marks a source VMI whose launcher exited Succeeded only if it does
    (pkg/virt-controller/watch/vmi/lifecycle.go:487-490)."""
    state = _dig(source_vmi, "status", "migrationState") or {}
    target = state.get("targetState") or {}
    if state.get("completed") and not state.get("failed") and state.get("endTimestamp") \
            and (target.get("domainReadyTimestamp") or state.get("targetNodeDomainReadyTimestamp")):
        return state["endTimestamp"]
    return None


def _decentralized(vmi: Obj) -> bool:
    """VirtualMachineInstance.IsDecentralizedMigration (types.go:676-681): exactly one side's
    synchronization address set. Once it is not, virt-controller never marks the VMI Succeeded."""
    state = _dig(vmi, "status", "migrationState") or {}
    source, target = state.get("sourceState"), state.get("targetState")
    return source is not None and target is not None and \
        (source.get("syncAddress") is None) != (target.get("syncAddress") is None)


def _disks_bound(f: Facts) -> Row:
    name = "disks-bound"
    if not f.claims:
        return Row(name, PASS if f.target_vm is not None else FAIL, "the target VM has no claims"
                   if f.target_vm is not None else "no target VM to read the claims from")
    states = {claim: (_dig(pvc, "status", "phase") or "no phase") if pvc else "missing" for claim, pvc in sorted(f.claims.items())}
    bad = {c: s for c, s in states.items() if s != "Bound"}
    text = ", ".join(f"{c} {s}" for c, s in states.items())
    return Row(name, FAIL if bad else PASS, f"target claims: {text}")


def source_firmware_uuid(f: Facts) -> Optional[str]:
    """The UUID the guest saw on the source: the VMI's, else the VM's (KubeVirt persists it there,
    vm-mutator.go:86-90, firmware.go:48-60), else the legacy one derived from the name."""
    for found in (_dig(f.source_vmi, "spec", "domain", "firmware", "uuid"),
                  _dig(f.source_vm, "spec", "template", "spec", "domain", "firmware", "uuid")):
        if found:
            return str(found)
    if f.source_vm is not None:
        return str(uuid.uuid5(LEGACY_UUID_NAMESPACE, meta(f.source_vm).get("name", "")))
    return None


def _firmware_uuid(f: Facts) -> Row:
    name = "firmware-uuid"
    got = _dig(f.target_vmi, "spec", "domain", "firmware", "uuid")
    want = source_firmware_uuid(f)
    origin = "source"
    if want is None:  # the source VM was deleted since: compare with what the move pinned from it
        want, origin = _dig(f.target_vm, "spec", "template", "spec", "domain", "firmware", "uuid"), "pinned at render (source gone)"
    if not got:
        return Row(name, FAIL, "the target VMI has no firmware UUID")
    if got != want:
        return Row(name, FAIL, f"target {got}, {origin} {want}")
    return Row(name, PASS, f"{got} on both ({origin})")


def _macs(f: Facts) -> Row:
    name = "mac-addresses"
    got = _vmi_macs(f.target_vmi)
    want, origin = _vmi_macs(f.source_vmi), "source VMI"
    if not want:
        want, origin = _spec_macs(f.source_vm), "source VM spec"
    if not want:
        want, origin = _spec_macs(f.target_vm), "pinned at render from the source VMI"
    if not want and not got:
        return Row(name, PASS, "no interfaces")
    wrong = [f"{n}: target {got.get(n) or 'none'}, source {m}" for n, m in sorted(want.items()) if (got.get(n) or "").lower() != m.lower()]
    if wrong:
        return Row(name, FAIL, "; ".join(wrong) + f" ({origin})")
    return Row(name, PASS, ", ".join(f"{n} {m}" for n, m in sorted(want.items())) + f" ({origin})")


def _vmi_macs(vmi: Optional[Obj]) -> Dict[str, str]:
    return {i["name"]: i["mac"] for i in _dig(vmi, "status", "interfaces") or [] if i.get("name") and i.get("mac")}


def _spec_macs(vm: Optional[Obj]) -> Dict[str, str]:
    interfaces = _dig(vm, "spec", "template", "spec", "domain", "devices", "interfaces") or []
    return {i["name"]: i["macAddress"] for i in interfaces if i.get("name") and i.get("macAddress")}


def target_claims(target_vm: Optional[Obj]) -> List[str]:
    """The claim names the target VM's volumes use (dataVolume names are their claims' names)."""
    out = []
    for volume in _dig(target_vm, "spec", "template", "spec", "volumes") or []:
        claim = _dig(volume, "dataVolume", "name") or _dig(volume, "persistentVolumeClaim", "claimName")
        if claim:
            out.append(claim)
    return sorted(set(out))

