"""status, cancel and cleanup: look at, stop, and tidy up a migration this tool started."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from kubectl_dlm import errors, follow, inventory, kube, tuning
from kubectl_dlm.model import LABEL_MIGRATION_ID, Obj, meta, display_name


@dataclass
class Sides:
    source: kube.Cluster
    target: kube.Cluster
    source_namespace: str
    target_namespace: str


def connect(kubeconfig, context, namespace, to_context, to_kubeconfig, to_namespace, vms=()) -> Sides:
    from kubectl_dlm import names as naming

    naming.check("-n", namespace, naming.dns_label_problem, "namespace name (RFC 1123 label)")
    naming.check("--to-namespace", to_namespace, naming.dns_label_problem, "namespace name (RFC 1123 label)")
    naming.check_vm_names(vms)
    source = kube.connect(kubeconfig, context)
    target = kube.connect(to_kubeconfig or kubeconfig, to_context) if (to_context or to_kubeconfig) else source
    ns = namespace or source.namespace
    return Sides(source, target, ns, to_namespace or ns)


def view_of(sides: Sides, vm: str):
    """(migration id, follow.View) of the newest migration of `vm`, or (None, None)."""
    src = inventory.vmims(sides.source, sides.source_namespace, vm)
    tgt = inventory.vmims(sides.target, sides.target_namespace, vm)
    migration_id = inventory.latest_migration_id(src, tgt)
    if migration_id is None:
        return None, None
    pick = lambda objs: next((o for o in reversed(objs) if (meta(o).get("labels") or {}).get(LABEL_MIGRATION_ID) == migration_id), None)
    view = follow.View(source_vmim=pick(src), target_vmim=pick(tgt),
                       target_vmi=kube.get(sides.target, "VirtualMachineInstance", sides.target_namespace, vm),
                       target_vm=kube.get(sides.target, "VirtualMachine", sides.target_namespace, vm))
    view.source_vmim_seen = view.source_vmim is not None
    view.target_vmim_seen = view.target_vmim is not None
    if view.target_vmim is not None and follow.phase(view.target_vmim) == "Succeeded" and view.source_vmim is None:
        view.source_vmim_seen, view.source_vmim_final = True, "Succeeded"  # KubeVirt deletes it after success
    return migration_id, view


@dataclass
class StatusRow:
    vm: str
    migration_id: str
    source_phase: str
    target_phase: str
    target_vmi_phase: str
    outcome: str
    details: List[str] = field(default_factory=list)
    # what KubeVirt resolved at the hand-off (status.migrationState of the target VMI): tuning.resolved
    migration_policy: Optional[str] = None
    migration_configuration: Optional[Dict[str, Any]] = None


def status(sides: Sides, vm: str) -> StatusRow:
    migration_id, view = view_of(sides, vm)
    if view is None:
        raise errors.NotFound(f"no migration of VirtualMachine {sides.source_namespace}/{vm} by kubectl-dlm found "
                              f"(looked in {sides.source.context}/{sides.source_namespace} and "
                              f"{sides.target.context}/{sides.target_namespace})",
                              "check -n, --to-context and --to-namespace")
    result = follow.assess(view)
    details = []
    for side, message in result.blocked:
        cause, fix = follow.explain(message)
        details.append(f"{side} blocked: {message}" + (f"\n    likely cause: {cause}\n    fix: {fix}" if cause else ""))
    if result.message:
        details.append(result.message + (f"\n    hint: {result.hint}" if result.hint else ""))
    policy, config = tuning.resolved(view.target_vmi, view.target_vmim,
                                     migration_uid=meta(view.target_vmim or {}).get("uid"))
    if config is not None:
        details.append(f"KubeVirt applies {tuning.describe(policy, config)}")
    return StatusRow(vm, migration_id, result.source_phase, result.target_phase,
                     follow.phase(view.target_vmi) or "-", result.outcome or "in progress", details,
                     migration_policy=policy, migration_configuration=config)


@dataclass
class CancelReport:
    vm: str
    deleted: List[str]
    source_vmi_phase: str
    target_vmi_phase: str


def cancel(sides: Sides, vm: str, timeout: float = 120) -> CancelReport:
    """Delete our non-final VMIMs on both clusters (KubeVirt does not propagate a cancel across
    clusters), then wait until KubeVirt has let go of them (its finalizers are gone)."""
    doomed, doomed_policies = [], []
    for cluster, ns in ((sides.target, sides.target_namespace), (sides.source, sides.source_namespace)):
        for vmim in inventory.vmims(cluster, ns, vm):
            if follow.phase(vmim) not in inventory.FINAL:
                doomed.append((cluster, ns, meta(vmim)["name"]))
    for cluster, ns, name in doomed:
        kube.delete(cluster, "VirtualMachineInstanceMigration", ns, name)
    # The tuning of a cancelled migration has nothing left to tune (KubeVirt reads it at the hand-off only).
    for policy in inventory.policies(sides.target, sides.target_namespace, vm):
        if kube.delete(sides.target, "MigrationPolicy", None, meta(policy)["name"]):
            doomed_policies.append(f"{sides.target.context}/MigrationPolicy {meta(policy)['name']}")
    deadline = time.monotonic() + timeout
    for cluster, ns, name in doomed:
        while kube.get(cluster, "VirtualMachineInstanceMigration", ns, name) is not None:
            if time.monotonic() > deadline:
                raise errors.DlmError(f"VirtualMachineInstanceMigration {ns}/{name} on {cluster.describe()} is still "
                                      f"there after {int(timeout)}s (KubeVirt has not released it)",
                                      "check virt-controller on that cluster; run cancel again to keep waiting")
            time.sleep(0.5)
    src_vmi = kube.get(sides.source, "VirtualMachineInstance", sides.source_namespace, vm)
    tgt_vmi = kube.get(sides.target, "VirtualMachineInstance", sides.target_namespace, vm)
    return CancelReport(vm, [f"{c.context}/{ns}/{n}" for c, ns, n in doomed] + doomed_policies,
                        follow.phase(src_vmi) or "gone", follow.phase(tgt_vmi) or "gone")


@dataclass
class CleanupPlan:
    vm: str
    objects: List[Obj]  # on the target
    refusal: Optional[str] = None
    source_objects: List[Obj] = field(default_factory=list)  # our source VMIMs of failed or orphaned attempts
    notes: List[str] = field(default_factory=list)
    # Our MigrationPolicies (--bandwidth ...): one-shot, so removable even after a success
    policies: List[Obj] = field(default_factory=list)
    succeeded: bool = False


SUCCEEDED_REFUSAL = "the migration succeeded: the target VM is now the running VM"


def plan_cleanup(sides: Sides, vm: str) -> CleanupPlan:
    found = inventory.created_on_target(sides.target, sides.target_namespace, vm)
    vmims = found["VirtualMachineInstanceMigration"]
    refusal = None
    if any(follow.phase(v) == "Succeeded" for v in vmims) or any(
            (o.get("spec") or {}).get("runStrategy") not in (None, "WaitAsReceiver") for o in found["VirtualMachine"]):
        refusal = SUCCEEDED_REFUSAL
    elif any(follow.phase(v) not in inventory.FINAL for v in vmims):
        refusal = "a migration is still running; cancel it first with `kubectl dlm cancel`"
    # The PVC behind each blank DataVolume is owned by it; remove it explicitly rather than rely on
    # garbage collection, so a retry right after cleanup does not meet a claim that is still there.
    claims = []
    for dv in found["DataVolume"]:
        pvc = kube.get(sides.target, "PersistentVolumeClaim", sides.target_namespace, meta(dv)["name"])
        owners = (meta(pvc).get("ownerReferences") or []) if pvc else []
        if any(o.get("kind") == "DataVolume" and o.get("uid") == meta(dv).get("uid") for o in owners):
            claims.append({"kind": "PersistentVolumeClaim", **pvc})
    objects = vmims + found["VirtualMachine"] + found["DataVolume"] + claims
    plan = CleanupPlan(vm, objects, refusal, succeeded=refusal == SUCCEEDED_REFUSAL)
    plan.policies = inventory.policies(sides.target, sides.target_namespace, vm)
    if refusal is None:
        _plan_source_side(sides, vm, vmims, plan)
    return plan


def _plan_source_side(sides: Sides, vm: str, target_vmims: List[Obj], plan: CleanupPlan) -> None:
    """Our source VMIMs of an attempt that cannot go on: a failed one, and an open one whose target
    failed or is gone (KubeVirt never ends that one: a target failing before the hand-off does not
    fail the source, MC:789-799; a deleted peer namespace leaves it waiting). An open source whose
    target is still open is a running migration: that is `cancel`'s, not ours."""
    target_ns_exists = kube.get(sides.target, "Namespace", None, sides.target_namespace) is not None
    by_id = {}
    for v in target_vmims:
        by_id.setdefault((meta(v).get("labels") or {}).get(LABEL_MIGRATION_ID), []).append(v)
    for vmim in inventory.vmims(sides.source, sides.source_namespace, vm):
        if sides.source.server == sides.target.server and sides.source_namespace == sides.target_namespace:
            break
        mid = (meta(vmim).get("labels") or {}).get(LABEL_MIGRATION_ID)
        peers = by_id.get(mid, [])
        if follow.phase(vmim) == "Failed":
            plan.source_objects.append(vmim)
        elif follow.phase(vmim) != "Succeeded":
            if any(follow.phase(p) not in inventory.FINAL for p in peers):
                continue  # both sides open: a running migration (the refusal above covers it)
            if not target_ns_exists:
                plan.notes.append(f"namespace {sides.target_namespace} is gone from {sides.target.context}: the source "
                                  f"migration {meta(vmim)['name']} is orphaned")
            elif not peers and not _peer_missing(vmim):
                plan.notes.append(f"left the source migration {meta(vmim)['name']} alone: no target migration "
                                  f"{mid} in {sides.target.context}/{sides.target_namespace}, yet KubeVirt does not "
                                  "say its peer is missing (check --to-context/--to-namespace; `kubectl dlm cancel` "
                                  "ends it)")
                continue
            plan.source_objects.append(vmim)


def _peer_missing(vmim: Obj) -> bool:
    """KubeVirt's sync controller says the other side's migration or VMI cannot be found
    (pkg/synchronization-controller/synchronization-controller.go:62-65)."""
    for cond in ((vmim.get("status") or {}).get("conditions") or []):
        if "unable to locate" in (cond.get("message") or "").lower():
            return True
    return False


def run_cleanup(sides: Sides, plan: CleanupPlan, dry_run: bool) -> List[str]:
    done = []
    for cluster, side, objects in ((sides.target, "target", plan.objects + plan.policies),
                                   (sides.source, "source", plan.source_objects)):
        for obj in objects:
            m = meta(obj)
            kind = obj.get("kind") or "VirtualMachineInstanceMigration"
            if kube.delete(cluster, kind, m.get("namespace"), m["name"], dry_run=dry_run):
                done.append(f"{kind} {display_name(m.get('namespace'), m['name'])} on {cluster.context} ({side})")
    return done


def counts(rows: Dict[str, int]) -> str:
    return ", ".join(f"{v} {k}" for k, v in rows.items() if v)
