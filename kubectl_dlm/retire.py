"""The old copy after a move: stop it for good, say where it went, and later clear it away. Pure.

Retiring sets the source VM to runStrategy Halted (KubeVirt halts only a runStrategy Always source,
pkg/virt-controller/watch/vm/vm.go:987-996) and annotates the VM and its disks with where the VM
went, so a later move back recognises them as the stale copy kubectl-dlm left, by annotation.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Tuple

from kubectl_dlm.model import ANN_MIGRATED_AT, ANN_MIGRATED_TO, ANN_MIGRATION_ID, Obj, meta

# Run strategies after which KubeVirt leaves a startable copy behind (see verify._source_stopped).
STARTABLE_AFTER_MOVE = ("Manual", "Once", "RerunOnFailure")


def marks(migrated_to: str, migration_id: str, at: str) -> Dict[str, str]:
    return {ANN_MIGRATED_TO: migrated_to, ANN_MIGRATION_ID: migration_id, ANN_MIGRATED_AT: at}


def retired_vm(source_vm: Obj, annotations: Mapping[str, str]) -> Obj:
    """The source VM as it is written back: Halted (a legacy `running` field goes, the admitter
    rejects both together: vms-admitter.go:232-235), with the retirement annotations."""
    vm = copy.deepcopy(source_vm)
    spec = vm.setdefault("spec", {})
    spec.pop("running", None)
    spec["runStrategy"] = "Halted"
    vm["metadata"]["annotations"] = {**(vm["metadata"].get("annotations") or {}), **annotations}
    vm.pop("status", None)
    return vm


def annotation_patch(annotations: Mapping[str, str]) -> Obj:
    """A merge patch that adds these annotations and touches nothing else (for the disks)."""
    return {"metadata": {"annotations": dict(annotations)}}


def needs_retiring(source_vm: Optional[Obj]) -> bool:
    """Not yet stopped for good by us or by KubeVirt."""
    if source_vm is None:
        return False
    spec = source_vm.get("spec") or {}
    annotated = ANN_MIGRATED_TO in (meta(source_vm).get("annotations") or {})
    return not (spec.get("runStrategy") == "Halted" and "running" not in spec and annotated)


def startable_warning(vm: str, strategy: Optional[str], legacy_running: bool, retire_command: str) -> Optional[str]:
    """Issue 14 point 9: say so when KubeVirt left a copy that can be started again."""
    if legacy_running:
        kind = "uses the legacy `running:` field"
    elif strategy in STARTABLE_AFTER_MOVE:
        kind = f"has runStrategy {strategy}"
    else:
        return None
    return (f"{vm}: the source VM {kind}, which KubeVirt does not halt after a move: the old copy can be started "
            f"again on the old disks, with the same MAC addresses and firmware UUID as the moved VM. "
            f"Retire it: {retire_command}")


def claims_of(vm: Optional[Obj]) -> List[str]:
    """Claim names a VM's volumes use (a dataVolume volume's claim has the DataVolume's name)."""
    out = []
    for volume in (((vm or {}).get("spec") or {}).get("template") or {}).get("spec", {}).get("volumes") or []:
        claim = (volume.get("dataVolume") or {}).get("name") or (volume.get("persistentVolumeClaim") or {}).get("claimName")
        if claim:
            out.append(claim)
    return sorted(set(out))


def is_retired(obj: Optional[Obj]) -> bool:
    return obj is not None and ANN_MIGRATED_TO in (meta(obj).get("annotations") or {})


@dataclass
class StaleCopy:
    """What an earlier move left on the cluster a VM is now moving to (a move back)."""

    vm: Optional[Obj] = None  # the retired VM of the same name
    disks: List[Tuple[str, Obj]] = field(default_factory=list)  # (kind, object) whose claim names the move needs
    problems: List[str] = field(default_factory=list)  # things in the way that are not a retired copy

    @property
    def found(self) -> bool:
        return self.vm is not None or bool(self.disks)

    def describe(self) -> List[str]:
        out = []
        if self.vm is not None:
            a = meta(self.vm).get("annotations") or {}
            out.append(f"VirtualMachine {meta(self.vm).get('namespace')}/{meta(self.vm)['name']} (retired: migrated to "
                       f"{a.get(ANN_MIGRATED_TO)} by migration {a.get(ANN_MIGRATION_ID)} at {a.get(ANN_MIGRATED_AT)})")
        for kind, obj in self.disks:
            out.append(f"{kind} {meta(obj).get('namespace')}/{meta(obj)['name']}")
        return out


def find_stale(vm_name: str, claims: List[str], existing_vm: Optional[Obj], vmi_phase: Optional[str],
               dvs: Mapping[str, Obj], pvcs: Mapping[str, Obj]) -> StaleCopy:
    """Sort what occupies the names a move needs into "our retired copy" and "someone else's"."""
    stale = StaleCopy()
    if existing_vm is not None:
        if is_retired(existing_vm) and (existing_vm.get("spec") or {}).get("runStrategy") == "Halted" \
                and vmi_phase in (None, "Succeeded", "Failed"):
            stale.vm = existing_vm
        elif is_retired(existing_vm):
            stale.problems.append(f"VirtualMachine {vm_name} is marked as moved away but is not Halted "
                                  f"(VMI {vmi_phase or 'none'}); stop it first")
    for claim in claims:
        for kind, found in (("DataVolume", dvs.get(claim)), ("PersistentVolumeClaim", pvcs.get(claim))):
            if found is None:
                continue
            owners = [stale.vm] if stale.vm is not None else []
            owners += [obj for k, obj in stale.disks if k == "DataVolume"]  # the claim a stale DataVolume made
            if is_retired(found) or any(_owned_by(found, owner) for owner in owners):
                stale.disks.append((kind, found))
    return stale


def _owned_by(obj: Obj, owner: Obj) -> bool:
    return any(ref.get("uid") == meta(owner).get("uid") for ref in meta(obj).get("ownerReferences") or [])


def renamed_claims(claims: List[str], migration_id: str, taken: List[str]) -> Dict[str, str]:
    """New claim names for the blank disks when the stale ones are kept: `<claim>-<id8>`."""
    suffix = migration_id[:8]
    return {claim: f"{claim[:253 - len(suffix) - 1]}-{suffix}" for claim in claims if claim in taken}
