"""What kubectl-dlm created for a VM, found by its labels (never by name alone)."""

from __future__ import annotations

from typing import Dict, List, Optional

from kubectl_dlm import kube
from kubectl_dlm.errors import ClusterError, NotFound, UsageError
from kubectl_dlm.model import LABEL_MIGRATION_ID, LABEL_VM, MANAGED_BY, MANAGER, Obj, meta
from kubectl_dlm.plan import label_value
from kubectl_dlm.tuning import NAMESPACE_NAME_LABEL

FINAL = ("Succeeded", "Failed")


def selector(vm: str) -> str:
    return f"{MANAGED_BY}={MANAGER},{LABEL_VM}={label_value(vm)}"


def vmims(cluster: kube.Cluster, namespace: str, vm: str) -> List[Obj]:
    """Our VMIMs of `vm`: by our labels AND by the VMI they name (a label value may be a hash)."""
    found = [o for o in kube.list_objects(cluster, "VirtualMachineInstanceMigration", namespace, selector(vm))
             if (o.get("spec") or {}).get("vmiName") == vm]
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


def policies(cluster: kube.Cluster, namespace: str, vm: str, migration_id: Optional[str] = None) -> List[Obj]:
    """Our MigrationPolicies (cluster-scoped) for `vm` received in `namespace`: by our labels AND by the
    namespace they select. None of them where the cluster serves no MigrationPolicy at all."""
    try:
        found = kube.list_objects(cluster, "MigrationPolicy", None, selector(vm))
    except NotFound:
        return []  # no migrations.kubevirt.io API: no policy of ours either
    except ClusterError as exc:
        if exc.message.startswith("cannot reach"):
            raise
        return []  # not allowed to list them: then this user could not have created one either
    return [p for p in found
            if (((p.get("spec") or {}).get("selectors") or {}).get("namespaceSelector") or {}).get(NAMESPACE_NAME_LABEL) == namespace
            and (migration_id is None or (meta(p).get("labels") or {}).get(LABEL_MIGRATION_ID) == migration_id)]


def every_vmim(cluster: kube.Cluster, namespaces: List[str]) -> List[Obj]:
    """Every VMIM KubeVirt's sync controller sees on this cluster (all namespaces), or, where listing
    across namespaces is forbidden, those of `namespaces` (the caller says it could not look further)."""
    try:
        return kube.list_objects(cluster, "VirtualMachineInstanceMigration", None)
    except ClusterError:
        found: List[Obj] = []
        for namespace in dict.fromkeys(namespaces):
            found.extend(kube.list_objects(cluster, "VirtualMachineInstanceMigration", namespace))
        return found


def events_of(cluster: kube.Cluster, namespace: str, uid: str) -> List[Obj]:
    """The Events about one object (KubeVirt records a migration's failure cause there)."""
    try:
        try:
            return kube.list_objects(cluster, "Event", namespace, field_selector=f"involvedObject.uid={uid}")
        except UsageError:  # a server without that field selector: filter here
            return [e for e in kube.list_objects(cluster, "Event", namespace)
                    if (e.get("involvedObject") or {}).get("uid") == uid]
    except (ClusterError, UsageError):
        return []  # events are evidence, not a requirement: no permission, no evidence
