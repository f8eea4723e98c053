"""After the move, the I/O half: read what `verify` judges, retire or delete the old copy, and
clear a retired copy that stands where a move back must go. The rules are in verify.py and
retire.py; this module only reads, writes and waits.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Dict, List, Optional

from kubectl_dlm import errors, inventory, kube, retire, verify
from kubectl_dlm.errors import DlmError
from kubectl_dlm.manage import Sides
from kubectl_dlm.model import ANN_SOURCE, Obj, meta

DISK_KINDS = ("DataVolume", "PersistentVolumeClaim")


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def where(cluster: kube.Cluster, namespace: str) -> str:
    return f"{cluster.context}/{namespace}"


def gather(sides: Sides, vm: str, migration_id: Optional[str] = None) -> verify.Facts:
    sns, tns = sides.source_namespace, sides.target_namespace
    facts = verify.Facts(
        vm=vm, source=where(sides.source, sns), target=where(sides.target, tns),
        source_vm=kube.get(sides.source, "VirtualMachine", sns, vm),
        source_vmi=kube.get(sides.source, "VirtualMachineInstance", sns, vm),
        target_vm=kube.get(sides.target, "VirtualMachine", tns, vm),
        target_vmi=kube.get(sides.target, "VirtualMachineInstance", tns, vm),
        target_vmims=inventory.vmims(sides.target, tns, vm), migration_id=migration_id)
    facts.claims = {c: kube.get(sides.target, "PersistentVolumeClaim", tns, c) for c in verify.target_claims(facts.target_vm)}
    return facts


def verify_vm(sides: Sides, vm: str, migration_id: Optional[str] = None) -> verify.Verdict:
    return verify.verify(gather(sides, vm, migration_id))


def require_verified(verdict: verify.Verdict, action: str) -> None:
    if not verdict.passed:
        failed = "; ".join(f"{r.fact}: {r.evidence}" for r in verdict.rows if r.status != verify.PASS)
        raise errors.Refused(f"will not {action} {verdict.vm}: verify fails ({failed})",
                             f"run `kubectl dlm verify {verdict.vm}` with the same flags and fix what it names first")


def retire_source(sides: Sides, verdict: verify.Verdict, dry_run: bool = False) -> List[str]:
    """Halt the source VM and mark it and its disks with where the VM went. Refuses unless verified."""
    require_verified(verdict, "retire the source of")
    vm, sns = verdict.vm, sides.source_namespace
    marks = retire.marks(f"{sides.target.context}/{sides.target_namespace}/{vm}", verdict.migration_id or "", now())
    done: List[str] = []
    for attempt in range(5):  # KubeVirt writes the VM too: a conflict means read and try again
        source_vm = kube.get(sides.source, "VirtualMachine", sns, vm)
        if source_vm is None:
            return [f"source VirtualMachine {sns}/{vm} is already gone"]
        if not retire.needs_retiring(source_vm):
            done.append(f"VirtualMachine {sns}/{vm} on {sides.source.context} was already retired")
            marks = {k: v for k, v in (meta(source_vm).get("annotations") or {}).items() if k in marks}
            break
        try:
            if not dry_run:
                kube.replace(sides.source, retire.retired_vm(source_vm, marks))
            done.append(f"VirtualMachine {sns}/{vm} on {sides.source.context}: runStrategy Halted, "
                        f"annotated migrated-to {marks[retire.ANN_MIGRATED_TO]}")
            break
        except errors.Conflict:
            if attempt == 4:
                raise
            time.sleep(0.2)
    for claim in retire.claims_of(source_vm):
        for kind in DISK_KINDS:
            disk = kube.get(sides.source, kind, sns, claim)
            if disk is not None and not retire.is_retired(disk):
                kube.merge_patch(sides.source, kind, sns, claim, retire.annotation_patch(marks), dry_run=dry_run)
                done.append(f"{kind} {sns}/{claim}: annotated as the retired copy's disk")
    return done


@dataclass
class Doomed:
    kind: str
    namespace: str
    name: str
    propagation: Optional[str] = None

    def __str__(self) -> str:
        keep = " (its disks are kept: propagationPolicy Orphan)" if self.propagation == "Orphan" else ""
        return f"{self.kind} {self.namespace}/{self.name}{keep}"


def source_deletion(sides: Sides, vm: str, delete_vm: bool, delete_disks: bool) -> List[Doomed]:
    """Exactly what deleting the retired source removes, listed before anything is deleted."""
    sns = sides.source_namespace
    source_vm = kube.get(sides.source, "VirtualMachine", sns, vm)
    doomed: List[Doomed] = []
    if delete_vm and source_vm is not None:
        doomed.append(Doomed("VirtualMachine", sns, vm, None if delete_disks else "Orphan"))
    if delete_disks:
        for claim in retire.claims_of(source_vm):
            for kind in DISK_KINDS:
                if kube.get(sides.source, kind, sns, claim) is not None:
                    doomed.append(Doomed(kind, sns, claim))
    return doomed


def delete(cluster: kube.Cluster, doomed: List[Doomed], wait: float = 0) -> List[str]:
    """Delete in order; with `wait`, until each is gone (KubeVirt and CDI hold finalizers)."""
    done = []
    for d in doomed:
        if kube.delete(cluster, d.kind, d.namespace, d.name, propagation=d.propagation):
            done.append(str(d))
    deadline = time.monotonic() + wait
    for d in doomed if wait else []:
        while kube.get(cluster, d.kind, d.namespace, d.name) is not None:
            if time.monotonic() > deadline:
                raise DlmError(f"{d.kind} {d.namespace}/{d.name} on {cluster.describe()} is still there after "
                               f"{int(wait)}s", "check its finalizers (KubeVirt, CDI); run the command again")
            time.sleep(0.3)
    return done


def stale_on_target(cluster: kube.Cluster, namespace: str, vm: str, claims: List[str]) -> retire.StaleCopy:
    """What an earlier move left where this move goes: the retired VM and the disks it needs the names of."""
    existing = kube.get(cluster, "VirtualMachine", namespace, vm)
    vmi = kube.get(cluster, "VirtualMachineInstance", namespace, vm) if existing is not None else None
    found: Dict[str, Dict[str, dict]] = {kind: {} for kind in DISK_KINDS}
    for claim in claims:
        for kind in DISK_KINDS:
            obj = kube.get(cluster, kind, namespace, claim)
            if obj is not None:
                found[kind][claim] = obj
    phase = ((vmi or {}).get("status") or {}).get("phase")
    return retire.find_stale(vm, claims, existing, phase, found["DataVolume"], found["PersistentVolumeClaim"])


def clear_stale(cluster: kube.Cluster, stale: retire.StaleCopy, keep_disks: bool, wait: float = 120) -> List[str]:
    """Remove the retired copy (and, unless kept, its stale disks) and wait until the names are free."""
    doomed: List[Doomed] = []
    if stale.vm is not None:
        m = meta(stale.vm)
        doomed.append(Doomed("VirtualMachine", m.get("namespace"), m["name"], "Orphan" if keep_disks else None))
    if not keep_disks:
        doomed += [Doomed(kind, meta(obj).get("namespace"), meta(obj)["name"]) for kind, obj in stale.disks]
    return delete(cluster, doomed, wait=wait)


def select(sides: Sides, vms, selector: str) -> List[str]:
    """VMs named, or selected by label on either side (the source VM may be deleted by now)."""
    if vms and selector:
        raise errors.UsageError("name VMs or pass -l, not both")
    if vms:
        return list(vms)
    if not selector:
        raise errors.UsageError("no VM given", "name one or more VMs, or select them with -l app=db")
    names = set()
    for cluster, ns in ((sides.source, sides.source_namespace), (sides.target, sides.target_namespace)):
        names.update(meta(vm)["name"] for vm in kube.list_objects(cluster, "VirtualMachine", ns, selector))
    if not names:
        raise errors.NotFound(f"no VirtualMachine matches -l {selector} in {where(sides.source, sides.source_namespace)} "
                              f"or {where(sides.target, sides.target_namespace)}", "check -n, --to-context and --to-namespace")
    return sorted(names)


def confirm(listing: str, yes: bool) -> None:
    """Ask on a terminal; without one, only --yes may confirm. Nothing is deleted unconfirmed."""
    import sys

    import click

    if yes:
        return
    if not sys.stdin.isatty():
        raise errors.Refused(f"not confirmed: {listing.rstrip()}", "pass --yes to confirm without a terminal")
    if not click.confirm(listing + "Delete these?", default=False, err=True):
        raise errors.Refused("not confirmed: nothing was deleted")


# --- what `migrate` does before and after the move ----------------------------------------------

@dataclass
class AfterOptions:
    retire_source: bool = False
    replace_retired: bool = False
    keep_retired_disks: bool = False
    yes: bool = False
    verify_wait: float = 60  # KubeVirt halts an Always source a moment after the migration ended


def retire_hint(sides: Sides, vm: str) -> str:
    flags = f"-n {sides.source_namespace}"
    if sides.source.context:
        flags += f" --context {sides.source.context}"
    if sides.target is not sides.source:
        flags += f" --to-context {sides.target.context}"
    if sides.target_namespace != sides.source_namespace:
        flags += f" --to-namespace {sides.target_namespace}"
    return f"kubectl dlm retire {vm} {flags}"


def conclude(sides: Sides, vm: str, migration_id: str, source_vm: Optional[Obj], options: AfterOptions,
             say) -> bool:
    """After a successful move: verify (waiting a little for KubeVirt to settle the source), retire
    the source when asked, else warn when KubeVirt left a startable copy. True when verified."""
    deadline = time.monotonic() + options.verify_wait
    pause = 0.25
    while True:
        verdict = verify_vm(sides, vm, migration_id)
        if verdict.settled or time.monotonic() > deadline:
            break
        # The source usually settles within a second: look again soon, then once a second. (A fixed
        # second was most of what verify added to a one-VM migrate.)
        time.sleep(pause)
        pause = min(pause * 2, 1.0)
    for row in verdict.rows:
        say(vm, f"verify {row.status}: {row.fact}: {row.evidence}")
    if not verdict.passed:
        return False
    if options.retire_source:
        for line in retire_source(sides, verdict):
            say(vm, f"retired: {line}")
        return True
    spec = (source_vm or {}).get("spec") or {}
    warning = retire.startable_warning(vm, spec.get("runStrategy"), "running" in spec and not spec.get("runStrategy"),
                                       retire_hint(sides, vm))
    if warning:
        say(vm, f"warning: {warning}")
    return True



def stale_for(request, sides: Sides, vm_plan, options: AfterOptions):
    """(plan, StaleCopy) for a move that may go back where an earlier move left a retired copy.
    With --keep-retired-disks the VM is planned again with other claim names for the taken disks."""
    from dataclasses import replace

    from kubectl_dlm import options as flags
    from kubectl_dlm import pipeline

    claims = [i.name for i in vm_plan.items if i.kind == "DataVolume"]
    stale = stale_on_target(sides.target, sides.target_namespace, vm_plan.vm, claims)
    if not (stale.disks and options.keep_retired_disks):
        return vm_plan, stale
    renamed = retire.renamed_claims(claims, vm_plan.migration_id, [meta(o)["name"] for _, o in stale.disks])
    source_claim = {i.name: i.context["annotations"][ANN_SOURCE].split("/", 1)[1]
                    for i in vm_plan.items if i.kind == "DataVolume"}
    inverse = {dst: src for src, dst in flags.parse_pairs(request.claim_map, "--claim-map").items()}
    pairs = {inverse.get(old, source_claim.get(old, old)): new for old, new in renamed.items()}
    kept = tuple(p for p in request.claim_map if p.partition("=")[0] not in pairs)
    again = replace(request, vms=(vm_plan.vm,), selector="", claim_map=kept + tuple(f"{k}={v}" for k, v in sorted(pairs.items())))
    planned = pipeline.plan_each(again).plans[vm_plan.vm]
    if isinstance(planned, DlmError):
        raise planned
    stale.disks = []  # kept: nothing of them is in the way any more
    return planned, stale


def make_way(sides: Sides, vm: str, stale: retire.StaleCopy, options: AfterOptions, say) -> None:
    """Delete the retired copy in the way of a move back: only ours, only after consent."""
    if stale.problems:
        raise errors.Conflict(f"{'; '.join(stale.problems)} in {where(sides.target, sides.target_namespace)}",
                              "halt it and retire it, or move the VM elsewhere")
    if not stale.found:
        return
    listing = "".join(f"  {line}\n" for line in stale.describe())
    if not options.replace_retired:
        import sys

        if not sys.stdin.isatty():
            raise errors.Conflict(f"the retired copy of an earlier move is where {vm} goes on "
                                  f"{sides.target.context}: " + "; ".join(stale.describe()),
                                  "pass --replace-retired to delete it (add --keep-retired-disks to keep its disks "
                                  "and give the new disks other claim names)")
        confirm(f"{vm}: replace the retired copy on {sides.target.context}:\n{listing}", False)
    for line in clear_stale(sides.target, stale, options.keep_retired_disks):
        say(vm, f"deleted the retired copy's {line} on {sides.target.context}")
