"""What kubectl-dlm created for a VM, found by its labels (never by name alone)."""

from __future__ import annotations

from typing import Dict, List, Optional

from kubectl_dlm import kube
from kubectl_dlm.model import LABEL_MIGRATION_ID, LABEL_VM, MANAGED_BY, MANAGER, Obj, meta
from kubectl_dlm.plan import label_value

FINAL = ("Succeeded", "Failed")


def selector(vm: str) -> str:
    return f"{MANAGED_BY}={MANAGER},{LABEL_VM}={label_value(vm)}"


def vmims(cluster: kube.Cluster, namespace: str, vm: str) -> List[Obj]:
    found = kube.list_objects(cluster, "VirtualMachineInstanceMigration", namespace, selector(vm))
    return sorted(found, key=lambda o: (meta(o).get("creationTimestamp") or "", meta(o).get("name")))


def latest_migration_id(*groups: List[Obj]) -> Optional[str]:
    """The migration to report on: a running one if any, else the newest."""
    every = [o for group in groups for o in group]
    running = [o for o in every if ((o.get("status") or {}).get("phase") or "") not in FINAL]
    pick = (running or every)
    if not pick:
        return None
    pick = sorted(pick, key=lambda o: meta(o).get("creationTimestamp") or "")
    return (meta(pick[-1]).get("labels") or {}).get(LABEL_MIGRATION_ID)


def created_on_target(cluster: kube.Cluster, namespace: str, vm: str) -> Dict[str, List[Obj]]:
    """The objects `cleanup` may remove: target VMIMs, the receiving VM, the blank DataVolumes."""
    return {kind: kube.list_objects(cluster, kind, namespace, selector(vm))
            for kind in ("VirtualMachineInstanceMigration", "VirtualMachine", "DataVolume")}
