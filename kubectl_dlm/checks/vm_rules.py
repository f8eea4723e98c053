"""The per-VM rows (pure) about the VM itself: running, migratable, alone, with volumes, storage
classes and networks the target can take.

check_vm lists every row for one VM in order; the rows about what its bundle creates and copies
are in bundle_rules.
"""

from __future__ import annotations

from typing import Any, List, Optional, Tuple

from kubectl_dlm.checks.bundle_rules import check_bundle, check_collisions, check_copies, check_macs, check_referenced
from kubectl_dlm.checks.facts import FAIL, PASS, UNKNOWN, WARN, Check, Facts, qualify
from kubectl_dlm.errors import DlmError
from kubectl_dlm.checks import kubevirt_fixes
from kubectl_dlm.checks.placement_rules import check_placement
from kubectl_dlm.checks.tuning_rules import check_policy_choice
from kubectl_dlm.model import LABEL_MIGRATION_ID, MANAGED_BY, MANAGER, Obj, Source, meta
from kubectl_dlm.refs import References, references, template_spec

FINAL_PHASES = ("Succeeded", "Failed")


def check_vm(facts: Facts, name: str) -> List[Check]:
    s = facts.settings
    ns = s.source_namespace
    scope = f"vm {ns}/{name}"
    vm = facts.source.get("VirtualMachine", ns, name)
    if vm is None:
        return [Check("vm-running", FAIL, f"VirtualMachine {ns}/{name} not found", "check the name and -n", scope)]
    vmi = facts.source.get("VirtualMachineInstance", ns, name)
    refs = references(vm, vmi)
    vm_plan = facts.vm_plans.get(name)
    migration_id = vm_plan.migration_id if vm_plan is not None and not isinstance(vm_plan, DlmError) else None
    if migration_id is None:
        from kubectl_dlm.plan import choose_migration_id

        migration_id = choose_migration_id(vm, vmi, facts.source, s, len(facts.names) > 1)
    rows = [check_running(vm, vmi, scope, live=facts.source.live)]
    rows += check_migratable_conditions(vmi, scope)
    rows.append(check_other_migrations(facts.source, ns, name, scope))
    rows.append(check_volumes(refs, scope))
    rows.append(check_persistent_state(refs, scope))
    rows.append(check_storage_classes(facts, vm, refs, scope))
    rows.append(check_networks(facts, refs, scope))
    rows.append(check_placement(facts, vmi, template_spec(vm), scope))
    rows.append(check_kubevirt_fixes(facts, refs, vm_plan, scope))
    rows.append(check_collisions(facts, name, vm_plan, refs, migration_id, scope))
    rows.append(check_macs(facts, vm, vmi, migration_id, scope))
    rows.append(check_referenced(facts, refs, scope))
    rows.append(check_copies(facts, refs, migration_id, scope))
    rows.append(check_bundle(vm_plan, scope))
    choice = check_policy_choice(facts, vm_plan, scope)
    if choice is not None:
        rows.append(choice)
    return rows


def check_kubevirt_fixes(facts: Facts, refs: References, vm_plan: Any, scope: str) -> Check:
    """Which DLM fixes this VM and this move need, on each cluster's KubeVirt (kubevirt_fixes.FIXES)."""
    from kubectl_dlm.checks.cluster_rules import parse_version

    changes: Tuple[str, ...] = ()
    if vm_plan is not None and not isinstance(vm_plan, DlmError):
        changes = tuple(i.name for i in vm_plan.items if i.kind == "DataVolume"
                        and i.context["storage"].get("source_volume_mode") not in (None, i.context["storage"]["volume_mode"]))
    s = facts.settings
    versions, moves = {}, {}
    for role in ("source",) if facts.same_cluster else ("source", "target"):
        cf = facts.clusters[role]
        status = (cf.kubevirt or {}).get("status") or {}
        text = status.get("observedKubeVirtVersion") or ""
        versions[cf.label] = (text, parse_version(text))
        ipv6 = tuple(a for a in status.get("synchronizationAddresses") or [] if a.count(":") > 1)
        moves[cf.label] = kubevirt_fixes.Move(tuple(refs.persistent_state), changes,
                                              s.source_namespace != s.target_namespace, ipv6)
    return kubevirt_fixes.check_fixes(versions, moves, scope)


def check_running(vm: Obj, vmi: Optional[Obj], scope: str, live: bool = True) -> Check:
    name = "vm-running"
    vm_name, ns = meta(vm).get("name"), meta(vm).get("namespace")
    if (vm.get("spec") or {}).get("runStrategy") == "WaitAsReceiver":
        return Check(name, FAIL, "it is itself waiting to receive a migration (runStrategy WaitAsReceiver)",
                     "migrate the VM that is running, not a receiver", scope)
    if vmi is None:
        if not live:
            return Check(name, UNKNOWN, "could not verify: the input has no VirtualMachineInstance", "", scope)
        return Check(name, FAIL, "it is not running (no VirtualMachineInstance); DLM moves running VMs only",
                     f"start it: virtctl start {vm_name} -n {ns}", scope)
    phase = (vmi.get("status") or {}).get("phase")
    if phase != "Running":
        return Check(name, FAIL, f"its VirtualMachineInstance is {phase or 'not started'}, not Running",
                     "wait until it runs, then check again", scope)
    return Check(name, PASS, "its VirtualMachineInstance is Running", "", scope)


def _condition(vmi: Optional[Obj], kind: str) -> Optional[Obj]:
    for cond in ((vmi or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return cond
    return None


def check_migratable_conditions(vmi: Optional[Obj], scope: str) -> List[Check]:
    rows = []
    for name, kind in (("live-migratable", "LiveMigratable"), ("storage-live-migratable", "StorageLiveMigratable")):
        if vmi is None:
            rows.append(Check(name, UNKNOWN, "could not verify: the VM is not running", "", scope))
            continue
        cond = _condition(vmi, kind)
        if cond is None:
            rows.append(Check(name, UNKNOWN, f"could not verify: the VMI has no {kind} condition yet", "", scope))
            continue
        detail = f"{cond.get('reason') or 'no reason'}: {(cond.get('message') or '').strip()}".rstrip(": ")
        if cond.get("status") == "True":
            rows.append(Check(name, PASS, f"{kind} is True", "", scope))
        elif kind == "LiveMigratable" and cond.get("reason") == "DisksNotLiveMigratable":
            rows.append(Check(name, PASS, "LiveMigratable is False only because of its disks "
                                          "(DisksNotLiveMigratable), which DLM copies", "", scope))
        elif cond.get("status") == "False":
            rows.append(Check(name, FAIL, f"{kind} is False ({detail})",
                              "remove what blocks live migration (see the condition message), then check again", scope))
        else:
            rows.append(Check(name, UNKNOWN, f"could not verify: {kind} is {cond.get('status')} ({detail})", "", scope))
    return rows


def check_other_migrations(source: Source, ns: str, name: str, scope: str) -> Check:
    ours, theirs = [], []
    for vmim in source.of_kind("VirtualMachineInstanceMigration", ns):
        if (vmim.get("spec") or {}).get("vmiName") != name:
            continue
        phase = (vmim.get("status") or {}).get("phase") or "Pending"
        if phase in FINAL_PHASES:
            continue
        labels = meta(vmim).get("labels") or {}
        entry = (meta(vmim).get("name"), phase, labels.get(LABEL_MIGRATION_ID, ""))
        (ours if labels.get(MANAGED_BY) == MANAGER else theirs).append(entry)
    if theirs:
        return Check("no-other-migration", FAIL, "; ".join(f"migration {n} is already {p} for it" for n, p, _ in theirs),
                     "wait for it to finish, or cancel it: kubectl delete vmim " + " ".join(n for n, _, _ in theirs)
                     + f" -n {ns}", scope)
    if ours:
        return Check("no-other-migration", PASS, "; ".join(f"our migration {n} (migration-id {i}) is {p}: "
                                                           "migrate resumes it" for n, p, i in ours), "", scope)
    return Check("no-other-migration", PASS, "no migration in progress for it", "", scope)


def check_volumes(refs: References, scope: str) -> Check:
    if refs.unsupported:
        return Check("supported-volumes", FAIL, "; ".join(refs.unsupported),
                     "remove or replace these volumes; DLM cannot move them", scope)
    return Check("supported-volumes", PASS, "no shareable, LUN, hostDisk, virtiofs or ephemeral volume", "", scope)


def check_persistent_state(refs: References, scope: str) -> Check:
    if refs.persistent_state:
        return Check("persistent-state", WARN,
                     f"it has {' and '.join(refs.persistent_state)} state: KubeVirt creates the state PVC on the "
                     "target itself; if its storage is RWX on both sides, the vTPM data is not copied (upstream bug)",
                     "use RWO backend storage (spec.configuration.vmStateStorageClass) on at least one side", scope)
    return Check("persistent-state", PASS, "no persistent TPM or EFI state", "", scope)


def _source_class(source: Source, vm: Obj, claim: Any, ns: str) -> Tuple[bool, Optional[str], str]:
    """(found, storage class, PVC name) of a source disk: the PVC, else its DataVolume or template."""
    dv = source.get("DataVolume", ns, claim.claim) if claim.via == "dataVolume" else None
    pvc_name = ((dv or {}).get("status") or {}).get("claimName") or claim.claim
    pvc = source.get("PersistentVolumeClaim", ns, pvc_name)
    if pvc is not None:
        return True, (pvc.get("spec") or {}).get("storageClassName"), pvc_name
    templates = [t for t in (vm.get("spec") or {}).get("dataVolumeTemplates") or []
                 if (t.get("metadata") or {}).get("name") == claim.claim]
    for owner in [dv] + templates:
        spec = (owner or {}).get("spec") or {}
        claim_spec = spec.get("storage") or spec.get("pvc")
        if claim_spec:
            return True, claim_spec.get("storageClassName"), pvc_name
    return False, None, pvc_name


def check_storage_classes(facts: Facts, vm: Obj, refs: References, scope: str) -> Check:
    name = "storage-classes"
    s, ns = facts.settings, facts.settings.source_namespace
    classes = facts.target.storage_classes
    if not refs.claims:
        return Check(name, PASS, "no disks to copy", "", scope)
    problems, fixes, notes = [], [], []
    for claim in refs.claims:
        found, cls, pvc_name = _source_class(facts.source, vm, claim, ns)
        if not found:
            problems.append(f"PersistentVolumeClaim {ns}/{pvc_name} (volume {claim.volume}) not found on the source")
            fixes.append("the blank target disk is sized from it: restore it or remove the volume")
            continue
        mapping = s.storage_map.get(cls or "")
        dest = mapping.storage_class if mapping else cls
        if dest is None:
            notes.append(f"{claim.claim}: no storage class (the target's default)")
            continue
        if classes is None:
            return Check(name, UNKNOWN, "could not verify: cannot list storage classes on the target: "
                                        + facts.lookup_errors.get("StorageClass", "no access"), "", scope)
        have = ", ".join(sorted(classes)) or "none"
        if dest in classes:
            notes.append(f"{claim.claim}: {cls} -> {dest}" if mapping else f"{claim.claim}: {dest}")
        elif mapping:
            problems.append(f"storage class {dest} (mapped from {cls}, claim {pvc_name}) does not exist on the target")
            fixes.append(f"fix --storage-class-map {cls}=<class on the target>; the target has: {have}")
        else:
            problems.append(f"storage class {cls} (claim {pvc_name}) does not exist on the target and is not mapped")
            fixes.append(f"map it with --storage-class-map {cls}=<class on the target>; the target has: {have}")
    if problems:
        return Check(name, FAIL, "; ".join(problems), "; ".join(dict.fromkeys(fixes)), scope)
    return Check(name, PASS, "every disk has a storage class on the target (" + ", ".join(notes) + ")", "", scope)


def check_networks(facts: Facts, refs: References, scope: str) -> Check:
    from kubectl_dlm.plan import map_network

    name = "networks"
    tns = facts.settings.target_namespace
    if not refs.multus_networks:
        return Check(name, PASS, "no Multus network (pod network only)", "", scope)
    problems, fixes, good = [], [], []
    for network, nad in refs.multus_networks:
        mapped = map_network(nad, facts.settings)
        qualified = qualify(mapped, tns)
        exists, error = facts.nads.get(qualified, (None, "not looked up"))
        how = f"mapped from {nad}" if mapped != nad else "not mapped"
        if exists is None:
            return Check(name, UNKNOWN, f"could not verify NetworkAttachmentDefinition {qualified}: {error}", "", scope)
        if exists:
            good.append(f"{network}: {qualified}")
        else:
            problems.append(f"network {network}: NetworkAttachmentDefinition {qualified} ({how}) does not exist on the target")
            fixes.append(f"create it on the target, or map it with --network-map {nad}=<namespace>/<name on the target>")
    if problems:
        return Check(name, FAIL, "; ".join(problems), "; ".join(dict.fromkeys(fixes)), scope)
    return Check(name, PASS, "every Multus network exists on the target (" + ", ".join(good) + ")", "", scope)
