"""Migration IDs: which existing migrations stand in the way of one. Pure.

KubeVirt pairs the two sides of a decentralized migration by the migration ID alone: each
cluster's synchronization controller indexes every VMIM it sees, in all namespaces and final or
not, by spec.receive.migrationID / spec.sendTo.migrationID, and takes the first one it finds for an
ID ("found multiple migrations for migrationID %s, picking first one";
pkg/synchronization-controller/synchronization-controller.go:144-149, 934-947, 1348-1368 at v1.9.0).
A second VMIM with the same ID for another VMI, on either cluster, makes it pair the wrong sides.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Tuple

from kubectl_dlm.model import Obj, meta

FINAL = ("Succeeded", "Failed")


def migration_id_of(vmim: Obj) -> Tuple[str, str]:
    """(role, ID): ("receive", id) for a target VMIM, ("send", id) for a source one, ("", "") otherwise."""
    spec = vmim.get("spec") or {}
    for role, key in (("receive", "receive"), ("send", "sendTo")):
        if isinstance(spec.get(key), dict) and spec[key].get("migrationID"):
            return role, spec[key]["migrationID"]
    return "", ""


def phase(vmim: Optional[Obj]) -> str:
    return ((vmim or {}).get("status") or {}).get("phase") or ""


@dataclass
class Use:
    cluster: str
    vmim: Obj

    def describe(self) -> str:
        m = meta(self.vmim)
        return (f"VirtualMachineInstanceMigration {m.get('namespace')}/{m.get('name')} "
                f"({phase(self.vmim) or 'Pending'}, VMI {m.get('namespace')}/{(self.vmim.get('spec') or {}).get('vmiName')}) "
                f"on {self.cluster}")


def foreign_uses(seen: Dict[str, Iterable[Obj]], migration_id: str, ours: Iterable[Tuple[str, str, str, str]]) -> List[Use]:
    """VMIMs that use `migration_id` and are not this migration's own sides.

    seen: cluster -> the VMIMs listed there; ours: the (cluster, role, namespace, vmi name) this
    migration may have: ("target", "receive", ns, vm) and ("source", "send", ns, vm)."""
    allowed = set(ours)
    found = []
    for cluster, vmims in seen.items():
        for vmim in vmims:
            role, mid = migration_id_of(vmim)
            if mid != migration_id:
                continue
            key = (cluster, role, meta(vmim).get("namespace"), (vmim.get("spec") or {}).get("vmiName"))
            if key not in allowed:
                found.append(Use(cluster, vmim))
    return found


def stale_attempt(source_vmims: Iterable[Obj], target_vmims: Iterable[Obj]) -> Optional[str]:
    """Why an earlier attempt with this ID must not be resumed, or None.

    A target that fails before the hand-off never fails the source: the source VMIM waits in
    Scheduling for the target pod, with no timeout (MC:789-799, MC:1124-1128: the VMI is marked
    failed only by a patch that tests migrationUid, written at the hand-off). Resuming such a source
    would follow a migration that can never end."""
    source = [v for v in source_vmims if phase(v) not in FINAL]
    targets = list(target_vmims)
    failed = [v for v in targets if phase(v) == "Failed"]
    held = [v for v in source if meta(v).get("deletionTimestamp")]
    if held:
        m = meta(held[0])
        return (f"the source migration {m.get('namespace')}/{m.get('name')} of an earlier attempt was deleted, but "
                f"KubeVirt still holds it ({phase(held[0]) or 'Pending'}, finalizers: "
                f"{', '.join(m.get('finalizers') or []) or 'none'}); KubeVirt admits no new migration of this VM until "
                "it is gone")
    if source and (failed or not targets):
        what = "failed" if failed else "is gone"
        return (f"an earlier attempt left the source migration {meta(source[0]).get('namespace')}/"
                f"{meta(source[0]).get('name')} open ({phase(source[0]) or 'Pending'}) while its target migration "
                f"{what}; KubeVirt never ends it on its own")
    if failed and not source:
        return (f"an earlier attempt with this migration ID failed (target migration "
                f"{meta(failed[0]).get('namespace')}/{meta(failed[0]).get('name')})")
    return None
