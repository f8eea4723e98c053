"""The pure core: which objects a migration needs, where, in which order, with which content.

plan(source, vm_names, settings, target) -> Plan, or raises Refused / UsageError / NotFound.
No I/O: everything it needs was read into `Source` and `TargetInfo` beforehand.
"""

from __future__ import annotations

import copy
import hashlib
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

from kubectl_dlm import clean, quantity, tuning
from kubectl_dlm.errors import NotFound, Refused, UsageError
from kubectl_dlm.model import (
    ANN_PHASE,
    HANDS_OFF,
    ONE_SHOT_KINDS,
    CDI_DEFAULT_OVERHEAD,
    EXPORT_RESOURCE_OF,
    export_command,
    COPIED_KINDS,
    ANN_SIDE,
    ANN_SOURCE,
    ANN_SOURCE_CLUSTER,
    LABEL_MIGRATION_ID,
    LABEL_VM,
    KINDS,
    MANAGED_BY,
    MANAGER,
    PHASE_SIDE,
    Item,
    Obj,
    Plan,
    SecretRef,
    Settings,
    Source,
    StorageMapping,
    TargetInfo,
    VMPlan,
    meta,
)
from kubectl_dlm.refs import Claim, References, namespaced_kind, references, vmi_only_hotplug_volumes

FINAL_PHASES = ("Succeeded", "Failed")
RUN_STRATEGIES = ("Always", "Halted", "Manual", "RerunOnFailure", "Once")
RESTORE_RUN_STRATEGY = "kubevirt.io/restore-run-strategy"


def plan(source: Source, vm_names: Iterable[str], settings: Settings, target: TargetInfo) -> Plan:
    if settings.source_cluster == settings.target_cluster and settings.source_namespace == settings.target_namespace:
        raise UsageError(
            f"the target is the source ({settings.target_cluster or 'same cluster'}, namespace {settings.target_namespace})",
            "choose another namespace with --to-namespace, or another cluster with --to-context",
        )
    names = sorted(set(vm_names))
    result = Plan(settings=settings)
    seen_copies: Dict[Tuple[str, str], str] = {}
    for name in names:
        vm_plan = plan_vm(source, name, settings, target, batch=len(names) > 1)
        # A Secret or instancetype shared by several VMs is copied once, by the first VM.
        kept = []
        for item in vm_plan.items:
            key = (item.kind, item.name)
            if item.kind in COPIED_KINDS and key in seen_copies:
                continue
            seen_copies.setdefault(key, name)
            kept.append(item)
        vm_plan.items = kept
        result.vms.append(vm_plan)
    return result




def plan_vm(source: Source, name: str, settings: Settings, target: TargetInfo, batch: bool = False) -> VMPlan:
    ns = settings.source_namespace
    vm = source.get("VirtualMachine", ns, name)
    if vm is None:
        raise NotFound(
            f"VirtualMachine {ns}/{name} not found" + ("" if source.live else " in the input"),
            "check the name and the namespace (-n)" + ("" if source.live else f"; export it with {export_command(ns)}"),
        )
    vmi = source.get("VirtualMachineInstance", ns, name)
    refs = references(vm, vmi)
    warnings = check_migratable(vm, vmi, refs, source, ns, live=source.live)
    migration_id = choose_migration_id(vm, vmi, source, settings, batch)
    out = VMPlan(vm=name, migration_id=migration_id, warnings=warnings)
    ctx = _Ctx(settings, name, migration_id)

    copy_items, secret_refs, prerequisites = plan_copies(source, vm, refs, ctx)
    out.items.extend(copy_items)
    out.secret_refs.extend(secret_refs)
    out.prerequisites.extend(prerequisites)
    disks = [plan_datavolume(source, vm, claim, ctx, target) for claim in refs.claims]
    out.items.extend(disks)
    out.notes.extend(d.context["storage"]["sizing"] for d in disks if d.context["storage"]["sizing"])
    if settings.tuning is not None:
        out.items.append(plan_policy(ctx))
    target_vm = plan_target_vm(vm, vmi, ctx, refs, {d.name: d.context["storage"] for d in disks})
    out.items.append(target_vm)
    out.after.append(plan_after_vm(vm, target_vm))
    out.items.append(ctx.item("receive", "VirtualMachineInstanceMigration", f"{name}-receive-{migration_id[:8]}",
                              "vmim-receive.yaml.j2", ctx.source_ref(ns, name), {"vmi_name": name, "migration_id": migration_id}))
    connect_url = settings.connect_url or (target.sync_addresses[0] if target.sync_addresses else None)
    out.connect_url = connect_url
    if connect_url:
        out.items.append(send_item(settings, name, migration_id, connect_url))
    else:
        out.warnings.append(
            "the source VirtualMachineInstanceMigration (phase send) was not rendered: the target's synchronization "
            "address is unknown. Render with --to-context so it is read from the target KubeVirt CR, or pass "
            "--connect-url with the value of `kubectl get kubevirt -A -o jsonpath='{.items[0].status.synchronizationAddresses[0]}'` "
            "run against the target cluster"
        )
    for network, nad in refs.multus_networks:
        mapped = map_network(nad, settings)
        out.prerequisites.append(f"NetworkAttachmentDefinition {_qualify(mapped, settings.target_namespace)} (network {network}) on the target")
    for sa in refs.service_accounts:
        out.prerequisites.append(f"ServiceAccount {settings.target_namespace}/{sa} on the target")
    return out


def plan_policy(ctx: "_Ctx") -> Item:
    """The MigrationPolicy of --bandwidth and friends: on the target (where KubeVirt matches it, at
    the hand-off: tuning.py), selecting the receiving VMI by the labels plan_target_vm gives its template."""
    settings = ctx.settings
    return ctx.item("prepare", "MigrationPolicy", tuning.policy_name(ctx.migration_id), "migrationpolicy.yaml.j2",
                    ctx.source_ref(settings.source_namespace, ctx.vm),
                    {"selectors": tuning.selectors(ctx.migration_id, label_value(ctx.vm), settings.target_namespace),
                     "spec": tuning.spec_fields(settings.tuning)})


def send_item(settings: Settings, vm: str, migration_id: str, connect_url: str) -> Item:
    """The source VMIM; `migrate` builds it late when the sync address is only known from the target VMIM."""
    ctx = _Ctx(settings, vm, migration_id)
    return ctx.item("send", "VirtualMachineInstanceMigration", f"{vm}-send-{migration_id[:8]}", "vmim-send.yaml.j2",
                    ctx.source_ref(settings.source_namespace, vm),
                    {"vmi_name": vm, "migration_id": migration_id, "connect_url": connect_url})


class _Ctx:
    """Builds Items with the labels and annotations that tie them to one VM's migration."""

    def __init__(self, settings: Settings, vm: str, migration_id: str):
        self.settings, self.vm, self.migration_id = settings, vm, migration_id

    def source_ref(self, namespace: str, name: str) -> str:
        return f"{namespace}/{name}"

    def item(self, phase: str, kind: str, name: str, template: str, source_ref: str, context: Mapping[str, Any],
             labels: Optional[Mapping[str, str]] = None, annotations: Optional[Mapping[str, str]] = None) -> Item:
        side = PHASE_SIDE[phase]
        namespace = self.settings.target_namespace if side == "target" else self.settings.source_namespace
        if not KINDS[kind][3]:
            namespace = ""  # cluster-scoped (the MigrationPolicy)
        all_labels = dict(labels or {})
        all_labels.update({MANAGED_BY: MANAGER, LABEL_MIGRATION_ID: self.migration_id, LABEL_VM: label_value(self.vm)})
        all_annotations = dict(annotations or {})
        all_annotations.update({ANN_SOURCE: source_ref, ANN_PHASE: phase, ANN_SIDE: side})
        if kind in ONE_SHOT_KINDS:
            all_annotations.update(HANDS_OFF)
        if self.settings.source_cluster:
            all_annotations[ANN_SOURCE_CLUSTER] = self.settings.source_cluster
        full = {"name": name, "namespace": namespace, "labels": all_labels, "annotations": all_annotations}
        full.update(context)
        return Item(side=side, phase=phase, kind=kind, namespace=namespace, name=name, template=template,
                    context=full, vm=self.vm)


def label_value(value: str) -> str:
    """Label values are at most 63 characters; longer names keep a recognisable prefix and a hash."""
    if len(value) <= 63:
        return value
    return value[:54] + "-" + hashlib.sha256(value.encode()).hexdigest()[:8]


def check_migratable(vm: Obj, vmi: Optional[Obj], refs: References, source: Source, ns: str, live: bool) -> List[str]:
    """Raise Refused with every reason DLM cannot move this VM; return warnings."""
    name = meta(vm).get("name")
    problems: List[str] = []
    warnings: List[str] = []
    spec = vm.get("spec") or {}
    if spec.get("runStrategy") == "WaitAsReceiver":
        problems.append("it is itself waiting to receive a migration (runStrategy WaitAsReceiver)")
    if vmi is None:
        if live:
            problems.append("it is not running (no VirtualMachineInstance); DLM moves running VMs only")
        else:
            warnings.append(f"the input has no VirtualMachineInstance for {ns}/{name}, so it cannot be checked that "
                            f"the VM is running and live-migratable; export with {export_command(ns)}")
    else:
        phase = (vmi.get("status") or {}).get("phase")
        if phase != "Running":
            problems.append(f"its VirtualMachineInstance is {phase or 'not started'}, not Running")
        for cond in (vmi.get("status") or {}).get("conditions") or []:
            if cond.get("status") != "False":
                continue
            if cond.get("type") == "LiveMigratable" and cond.get("reason") != "DisksNotLiveMigratable":
                problems.append(f"it is not live-migratable ({cond.get('reason')}: {cond.get('message', '').strip()})")
            if cond.get("type") == "StorageLiveMigratable":
                problems.append(f"its storage is not live-migratable ({cond.get('reason')}: {cond.get('message', '').strip()})")
    problems.extend(refs.unsupported)
    for vmim in source.of_kind("VirtualMachineInstanceMigration", ns):
        if (vmim.get("spec") or {}).get("vmiName") != name:
            continue
        phase = (vmim.get("status") or {}).get("phase") or "Pending"
        if phase in FINAL_PHASES or (meta(vmim).get("labels") or {}).get(MANAGED_BY) == MANAGER:
            continue  # our own in-flight migration is resumed, not refused
        problems.append(f"migration {meta(vmim).get('name')} is already {phase} for it; wait for it to finish or delete it")
    if problems:
        raise Refused(f"cannot migrate VirtualMachine {ns}/{name}: " + "; ".join(dict.fromkeys(problems)),
                      "see `kubectl dlm check` and the README's troubleshooting section")
    if refs.persistent_state:
        warnings.append(f"{ns}/{name} has {' and '.join(refs.persistent_state)} state: KubeVirt creates the state PVC on "
                        "the target itself (it is not rendered). If that storage is RWX on both sides, KubeVirt does not "
                        "copy the vTPM data (known upstream bug); use RWO backend storage on one side")
    for claim in refs.claims:
        if claim.hotplugged and vmi and claim.volume in {v.get("name") for v in vmi_only_hotplug_volumes(vm, vmi)}:
            warnings.append(f"volume {claim.volume} is hotplugged into the running VM but not in its spec; "
                            "the target VM gets it as a persisted hotplug volume")
    return warnings


def choose_migration_id(vm: Obj, vmi: Optional[Obj], source: Source, settings: Settings, batch: bool) -> str:
    """Unique per attempt, yet the same on every render of one attempt.

    An in-flight migration of ours keeps its ID (so a re-run resumes it). Otherwise the ID is
    derived from the VMI's uid and the uid of the VMI's last migration: a new attempt after a
    failed one gets a new ID, and KubeVirt's sync controller never sees two VMIMs with one ID.
    """
    name = meta(vm).get("name", "")
    if settings.migration_id:
        return batch_migration_id(settings.migration_id, name) if batch else settings.migration_id
    for vmim in source.of_kind("VirtualMachineInstanceMigration", settings.source_namespace):
        labels = meta(vmim).get("labels") or {}
        phase = (vmim.get("status") or {}).get("phase")
        if (vmim.get("spec") or {}).get("vmiName") == name and labels.get(MANAGED_BY) == MANAGER \
                and labels.get(LABEL_MIGRATION_ID) and phase not in FINAL_PHASES:
            return labels[LABEL_MIGRATION_ID]
    anchor = meta(vmi).get("uid") if vmi else None
    anchor = anchor or meta(vm).get("uid") or f"{settings.source_namespace}/{name}"
    state = ((vmi or {}).get("status") or {}).get("migrationState") or {}
    last = (state.get("sourceState") or {}).get("migrationUID") or state.get("migrationUid") or ""
    seed = "|".join([anchor, last, settings.target_cluster, settings.target_namespace])
    return hashlib.sha256(seed.encode()).hexdigest()[:16]


def batch_migration_id(given: str, vm: str) -> str:
    """One --migration-id for several VMs: each VM gets its own (KubeVirt pairs the two sides by the ID
    alone), `<id>-<vm>` while that is a valid label value, else `<id>-<hash of vm>`."""
    candidate = f"{given}-{vm}"
    if len(candidate) <= 63 and candidate[-1].isalnum():
        return candidate
    return f"{given[:54]}-{hashlib.sha256(vm.encode()).hexdigest()[:8]}"


def restore_run_strategy(vm: Obj) -> str:
    """VirtualMachine.RunStrategy() (staging/src/kubevirt.io/api/core/v1/types.go:1957-1970 @v1.9.0)."""
    spec = vm.get("spec") or {}
    if spec.get("runStrategy"):
        return spec["runStrategy"]
    if "running" in spec:
        return "Always" if spec["running"] else "Halted"
    return "Halted"


def plan_target_vm(vm: Obj, vmi: Optional[Obj], ctx: _Ctx, refs: References,
                   disks: Optional[Mapping[str, Mapping[str, Any]]] = None) -> Item:
    settings = ctx.settings
    spec = copy.deepcopy(vm.get("spec") or {})
    spec.pop("running", None)
    spec.pop("runStrategy", None)
    # Pin the copied ControllerRevision, so the target VMI gets exactly the source's domain even
    # if the instancetype changed since (kubevirt-dlm-api.md §6).
    for key, matcher in (("instancetype", refs.instancetype), ("preference", refs.preference)):
        if matcher and matcher[2] and key in spec:
            spec[key]["revisionName"] = matcher[2]
    template = spec.setdefault("template", {})
    template["metadata"] = clean.template_metadata(template.get("metadata") or {})
    _label_template(template["metadata"], ctx)
    if not template["metadata"]:
        del template["metadata"]
    tspec = template.setdefault("spec", {})
    _add_vmi_only_hotplug(tspec, vm, vmi)
    for volume in tspec.get("volumes") or []:
        if "dataVolume" in volume:
            volume["dataVolume"]["name"] = map_claim(volume["dataVolume"].get("name", ""), settings)
        if "persistentVolumeClaim" in volume:
            volume["persistentVolumeClaim"]["claimName"] = map_claim(volume["persistentVolumeClaim"].get("claimName", ""), settings)
    for network in tspec.get("networks") or []:
        if "multus" in network:
            network["multus"]["networkName"] = map_network(network["multus"].get("networkName", ""), settings)
    _pin_identity(tspec, vmi)
    for dvt in spec.get("dataVolumeTemplates") or []:
        dvt_meta = dvt.setdefault("metadata", {})
        dvt_meta.pop("creationTimestamp", None)
        dvt_meta["name"] = map_claim(dvt_meta.get("name", ""), settings)
        if "namespace" in dvt_meta:
            dvt_meta["namespace"] = settings.target_namespace
        _match_template_to_disk(dvt, (disks or {}).get(dvt_meta["name"]))
    annotations = clean.annotations(vm)
    annotations[RESTORE_RUN_STRATEGY] = restore_run_strategy(vm)
    name = meta(vm)["name"]
    return ctx.item("prepare", "VirtualMachine", name, "virtualmachine.yaml.j2", ctx.source_ref(settings.source_namespace, name),
                    {"spec": spec}, labels=clean.labels(vm), annotations=annotations)


def _label_template(metadata: Dict[str, Any], ctx: _Ctx) -> None:
    """Our selector labels on the VMI template: those of this migration when it is tuned (the policy
    selects the VMI by them), never those an earlier move left on the VM we move (a move back)."""
    labels = {k: v for k, v in (metadata.get("labels") or {}).items() if k not in (LABEL_MIGRATION_ID, LABEL_VM)}
    if ctx.settings.tuning is not None:
        labels.update(tuning.vmi_labels(ctx.migration_id, label_value(ctx.vm)))
    if labels:
        metadata["labels"] = labels
    else:
        metadata.pop("labels", None)


def _without_our_template_labels(spec: Mapping[str, Any]) -> Dict[str, Any]:
    spec = copy.deepcopy(dict(spec))
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels")
    if labels:
        for key in (LABEL_MIGRATION_ID, LABEL_VM):
            labels.pop(key, None)
        if not labels:
            del spec["template"]["metadata"]["labels"]
        if not spec["template"]["metadata"]:
            del spec["template"]["metadata"]
    return spec


def plan_after_vm(vm: Obj, target_vm: Item) -> Item:
    """The target VM as the application's repository declares it once the move is done: the run
    strategy KubeVirt restores from the annotation (vm.go:1149-1166), the receiving VM's spec, the
    source's own labels and annotations; no WaitAsReceiver, no restore annotation, nothing of
    kubectl-dlm's (a move back may read our hand-off annotations from the live VM: dropped too)."""
    annotations = {k: v for k, v in clean.annotations(vm).items() if HANDS_OFF.get(k) != v}
    labels = {k: v for k, v in clean.labels(vm).items() if not (k == MANAGED_BY and v == MANAGER)}
    context = {"name": target_vm.name, "namespace": target_vm.namespace, "labels": labels, "annotations": annotations,
               "spec": _without_our_template_labels(target_vm.context["spec"]), "run_strategy": restore_run_strategy(vm)}
    return Item(side="target", phase="after", kind="VirtualMachine", namespace=target_vm.namespace,
                name=target_vm.name, template="virtualmachine-after.yaml.j2", context=context, vm=target_vm.vm)


def _match_template_to_disk(dvt: Dict[str, Any], disk: Optional[Mapping[str, Any]]) -> None:
    """A mapped storage class / volume mode also goes into the VM's dataVolumeTemplate, so the
    target VM's spec agrees with the blank disk it runs on (and with what it would re-create)."""
    claim_spec = (dvt.get("spec") or {}).get("storage") or (dvt.get("spec") or {}).get("pvc")
    if not disk or claim_spec is None:
        return
    if disk.get("storage_class") and claim_spec.get("storageClassName") not in (None, disk["storage_class"]):
        claim_spec["storageClassName"] = disk["storage_class"]
    if claim_spec.get("volumeMode") and claim_spec["volumeMode"] != disk.get("volume_mode"):
        claim_spec["volumeMode"] = disk["volume_mode"]


def _add_vmi_only_hotplug(tspec: Dict[str, Any], vm: Obj, vmi: Optional[Obj]) -> None:
    extra = vmi_only_hotplug_volumes(vm, vmi)
    if not extra:
        return
    vmi_disks = {d.get("name"): d for d in ((((vmi or {}).get("spec") or {}).get("domain") or {}).get("devices") or {}).get("disks") or []}
    devices = tspec.setdefault("domain", {}).setdefault("devices", {})
    for volume in extra:
        tspec.setdefault("volumes", []).append(copy.deepcopy(volume))
        if volume.get("name") in vmi_disks:
            devices.setdefault("disks", []).append(copy.deepcopy(vmi_disks[volume["name"]]))


def _pin_identity(tspec: Dict[str, Any], vmi: Optional[Obj]) -> None:
    """Keep what the guest sees: firmware UUID/serial and MACs the source cluster assigned."""
    if not vmi:
        return
    vmi_firmware = (((vmi.get("spec") or {}).get("domain") or {}).get("firmware") or {})
    firmware = tspec.setdefault("domain", {}).get("firmware")
    for key in ("uuid", "serial"):
        if vmi_firmware.get(key) and not (firmware or {}).get(key):
            firmware = tspec["domain"].setdefault("firmware", {})
            firmware[key] = vmi_firmware[key]
    macs = {i.get("name"): i.get("mac") for i in (vmi.get("status") or {}).get("interfaces") or [] if i.get("name")}
    for interface in ((tspec.get("domain") or {}).get("devices") or {}).get("interfaces") or []:
        if not interface.get("macAddress") and macs.get(interface.get("name")):
            interface["macAddress"] = macs[interface["name"]]


def map_claim(claim: str, settings: Settings) -> str:
    return settings.claim_map.get(claim, claim)


def map_network(network_name: str, settings: Settings) -> str:
    if network_name in settings.network_map:
        return settings.network_map[network_name]
    qualified = _qualify(network_name, settings.source_namespace)
    return settings.network_map.get(qualified, network_name)


def _qualify(network_name: str, namespace: str) -> str:
    return network_name if "/" in network_name else f"{namespace}/{network_name}"


def plan_datavolume(source: Source, vm: Obj, claim: Claim, ctx: _Ctx, target: TargetInfo) -> Item:
    settings = ctx.settings
    ns = settings.source_namespace
    dv = source.get("DataVolume", ns, claim.claim) if claim.via == "dataVolume" else None
    pvc_name = ((dv or {}).get("status") or {}).get("claimName") or claim.claim
    pvc = source.get("PersistentVolumeClaim", ns, pvc_name)
    found = _claim_facts(pvc, dv, _dv_template(vm, claim.claim))
    if found is None:
        raise NotFound(
            f"PersistentVolumeClaim {ns}/{pvc_name} (volume {claim.volume} of VirtualMachine {ns}/{meta(vm).get('name')}) not found",
            "the blank target disk is sized from it" + ("" if source.live else f"; include PVCs in the export: {export_command(ns)}"),
        )
    volume_mode, access_modes, storage_class, size = found
    mapping = settings.storage_map.get(storage_class or "")
    if mapping is None:
        mapping = StorageMapping(storage_class=storage_class)
        if storage_class and target.storage_classes is not None and storage_class not in target.storage_classes:
            raise UsageError(
                f"storage class {storage_class} (claim {pvc_name}) does not exist on the target",
                f"map it with --storage-class-map {storage_class}=<class on the target>; the target has: "
                + (", ".join(sorted(target.storage_classes)) or "none"),
            )
    elif mapping.storage_class and target.storage_classes is not None and mapping.storage_class not in target.storage_classes:
        raise UsageError(
            f"storage class {mapping.storage_class} (mapped from {storage_class}) does not exist on the target",
            "fix --storage-class-map; the target has: " + (", ".join(sorted(target.storage_classes)) or "none"),
        )
    target_mode = mapping.volume_mode or volume_mode
    target_access = list(mapping.access_modes) if mapping.access_modes else access_modes
    sizing = ""
    if volume_mode == "Block" and target_mode == "Filesystem":
        overhead, where = filesystem_overhead(settings, target, mapping.storage_class)
        source_size, size = size, filesystem_size(quantity.to_bytes(size), overhead)
        sizing = (f"disk {map_claim(claim.claim, settings)}: Block {quantity.readable(source_size)} onto Filesystem, requested as {size} "
                  f"with filesystem overhead {overhead:g} ({where})")
    storage = {"size": size, "volume_mode": target_mode, "source_volume_mode": volume_mode,
               "access_modes": target_access, "storage_class": mapping.storage_class, "sizing": sizing}
    name = map_claim(claim.claim, settings)
    return ctx.item("prepare", "DataVolume", name, "datavolume.yaml.j2", ctx.source_ref(ns, pvc_name),
                    {"storage": storage, "volume": claim.volume})


def filesystem_overhead(settings: Settings, target: TargetInfo, storage_class: Optional[str]) -> Tuple[float, str]:
    """(overhead, where it came from): --fs-overhead, else the target CDIConfig's value for the class
    (per class, else global; CDI pkg/controller/common/util.go:628-675), else CDI's default."""
    if settings.fs_overhead is not None:
        return settings.fs_overhead, "--fs-overhead"
    if target.fs_overhead_global is not None:
        klass = storage_class or target.default_storage_class
        per_class = dict(target.fs_overhead_classes)
        if klass in per_class:
            return per_class[klass], f"the target CDIConfig's status.filesystemOverhead.storageClass[{klass}]"
        return target.fs_overhead_global, "the target CDIConfig's status.filesystemOverhead.global"
    return CDI_DEFAULT_OVERHEAD, f"CDI's default since v1.64.0; the target CDIConfig was not read: {target.cdi_error}"


def filesystem_size(source_bytes: int, overhead: float) -> str:
    """The DataVolume size of a Filesystem disk whose blank image must hold `source_bytes`.

    CDI inflates a Filesystem `storage` request by (1 + overhead) (GetRequiredSpace, via
    InflateSizeWithOverhead, CDI pkg/controller/common/util.go:1572-1590) and makes the blank image
    the available space divided by (1 + overhead) (GetUsableSpace, cmd/cdi-importer/importer.go:342-356),
    so the two cancel: the image is the request minus what the file system itself takes (statfs
    Bavail: metadata, the journal, reserved blocks). That takes more than the overhead on small
    disks (ext4's journal is a fixed 16-64 MiB; KubeVirt's own DLM e2e needed 564Mi for a 512Mi Block
    disk), so twice the overhead is kept free: 512Mi at 0.06 -> 582Mi.
    """
    return quantity.mebibytes(int(source_bytes / (1 - min(2 * overhead, 0.9))) + 1)


def _dv_template(vm: Obj, name: str) -> Optional[Obj]:
    for dvt in (vm.get("spec") or {}).get("dataVolumeTemplates") or []:
        if (dvt.get("metadata") or {}).get("name") == name:
            return dvt
    return None


def _claim_facts(pvc: Optional[Obj], dv: Optional[Obj], dvt: Optional[Obj]) -> Optional[Tuple[str, List[str], Optional[str], str]]:
    """(volumeMode, accessModes, storageClassName, size) of the source disk, from the best evidence.

    The PVC is the truth (Block: its status.capacity, Filesystem: its request); a DataVolume or
    dataVolumeTemplate spec is the fallback for exports that lack the PVC.
    """
    if pvc is not None:
        spec = pvc.get("spec") or {}
        mode = spec.get("volumeMode") or "Filesystem"
        request = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
        capacity = ((pvc.get("status") or {}).get("capacity") or {}).get("storage")
        size = (capacity or request) if mode == "Block" else (request or capacity)
        if size:
            return mode, list(spec.get("accessModes") or []), spec.get("storageClassName"), str(size)
    for owner in (dv, dvt):
        spec = (owner or {}).get("spec") or {}
        claim_spec = spec.get("storage") or spec.get("pvc")
        if claim_spec:
            size = ((claim_spec.get("resources") or {}).get("requests") or {}).get("storage")
            if size:
                return (claim_spec.get("volumeMode") or "Filesystem", list(claim_spec.get("accessModes") or []),
                        claim_spec.get("storageClassName"), str(size))
    return None


def plan_copies(source: Source, vm: Obj, refs: References, ctx: _Ctx) -> Tuple[List[Item], List[SecretRef], List[str]]:
    settings = ctx.settings
    ns = settings.source_namespace
    vm_name = meta(vm).get("name", "")
    items: List[Item] = []
    secret_refs: List[SecretRef] = []
    prerequisites: List[str] = []
    for name, used_by in sorted(refs.secrets.items()):
        secret = _required(source, "Secret", ns, name, vm_name, used_by)
        if settings.secrets == "include":
            items.append(ctx.item("prepare", "Secret", name, "secret.yaml.j2", ctx.source_ref(ns, name),
                                  {"type": secret.get("type") or "Opaque", "immutable": secret.get("immutable"),
                                   "data": secret.get("data") or {}},
                                  labels=clean.labels(secret), annotations=clean.annotations(secret)))
        else:
            secret_refs.append(SecretRef(name=name, source_namespace=ns, target_namespace=settings.target_namespace,
                                         type=secret.get("type") or "Opaque", keys=tuple(sorted(secret.get("data") or {})),
                                         used_by=tuple(used_by), vm=vm_name))
    for name, used_by in sorted(refs.configmaps.items()):
        cm = _required(source, "ConfigMap", ns, name, vm_name, used_by)
        items.append(ctx.item("prepare", "ConfigMap", name, "configmap.yaml.j2", ctx.source_ref(ns, name),
                              {"immutable": cm.get("immutable"), "data": cm.get("data") or {},
                               "binary_data": cm.get("binaryData") or {}},
                              labels=clean.labels(cm), annotations=clean.annotations(cm)))
    for matcher in (refs.instancetype, refs.preference):
        if not matcher:
            continue
        kind, name, revision = matcher
        canonical = namespaced_kind(kind)
        if canonical is None:
            prerequisites.append(f"{kind} {name} (cluster-scoped) on the target")
        else:
            obj = _required(source, canonical, ns, name, vm_name, ["spec.instancetype/preference"])
            items.append(ctx.item("prepare", canonical, name, "instancetype.yaml.j2", ctx.source_ref(ns, name),
                                  {"api_version": obj.get("apiVersion") or "instancetype.kubevirt.io/v1beta1",
                                   "kind": canonical, "spec": obj.get("spec") or {}},
                                  labels=clean.labels(obj), annotations=clean.annotations(obj)))
        if revision:
            rev = _required(source, "ControllerRevision", ns, revision, vm_name, [f"{kind} {name} revisionName"])
            items.append(ctx.item("prepare", "ControllerRevision", revision, "controllerrevision.yaml.j2",
                                  ctx.source_ref(ns, revision),
                                  {"data": rev.get("data") or {}, "revision": rev.get("revision") or 0},
                                  labels=clean.labels(rev), annotations=clean.annotations(rev)))
    return items, secret_refs, prerequisites


def _required(source: Source, kind: str, ns: str, name: str, vm: str, used_by: List[str]) -> Obj:
    obj = source.get(kind, ns, name)
    if obj is None:
        raise NotFound(
            f"{kind} {ns}/{name}, used by VirtualMachine {ns}/{vm} ({', '.join(used_by)}), not found",
            (f"add {EXPORT_RESOURCE_OF.get(kind, kind)} to the export; the complete recipe: {export_command(ns)}"
             if not source.live else "create it on the source first"),
        )
    return obj
