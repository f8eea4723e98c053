"""The data that flows through kubectl-dlm: what was read, what to do, and how. No I/O here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

Obj = Dict[str, Any]

# kind -> (group, version, plural, namespaced). The one table every reader and writer uses.
KINDS: Dict[str, Tuple[str, str, str, bool]] = {
    "VirtualMachine": ("kubevirt.io", "v1", "virtualmachines", True),
    "VirtualMachineInstance": ("kubevirt.io", "v1", "virtualmachineinstances", True),
    "VirtualMachineInstanceMigration": ("kubevirt.io", "v1", "virtualmachineinstancemigrations", True),
    "KubeVirt": ("kubevirt.io", "v1", "kubevirts", True),
    "DataVolume": ("cdi.kubevirt.io", "v1beta1", "datavolumes", True),
    "PersistentVolumeClaim": ("", "v1", "persistentvolumeclaims", True),
    "Secret": ("", "v1", "secrets", True),
    "ConfigMap": ("", "v1", "configmaps", True),
    "VirtualMachineInstancetype": ("instancetype.kubevirt.io", "v1beta1", "virtualmachineinstancetypes", True),
    "VirtualMachinePreference": ("instancetype.kubevirt.io", "v1beta1", "virtualmachinepreferences", True),
    "ControllerRevision": ("apps", "v1", "controllerrevisions", True),
    "StorageClass": ("storage.k8s.io", "v1", "storageclasses", False),
    "Namespace": ("", "v1", "namespaces", False),
    "Node": ("", "v1", "nodes", False),
    "CDIConfig": ("cdi.kubevirt.io", "v1beta1", "cdiconfigs", False),
    "Event": ("", "v1", "events", True),
    "Pod": ("", "v1", "pods", True),
    "NetworkAttachmentDefinition": ("k8s.cni.cncf.io", "v1", "network-attachment-definitions", True),
    "MigrationPolicy": ("migrations.kubevirt.io", "v1alpha1", "migrationpolicies", False),
}

# What `render -f` needs from a namespace, as one `kubectl get` (README "Rendering from an export").
EXPORT_RESOURCES = ("vm,vmi,dv,pvc,secret,cm,virtualmachineinstancetypes,virtualmachinepreferences,"
                    "controllerrevisions")
# The kubectl resource to add to an export for each kind a VM may reference.
EXPORT_RESOURCE_OF = {"VirtualMachineInstancetype": "virtualmachineinstancetypes",
                      "VirtualMachinePreference": "virtualmachinepreferences",
                      "ControllerRevision": "controllerrevisions", "Secret": "secrets", "ConfigMap": "configmaps",
                      "PersistentVolumeClaim": "pvc", "DataVolume": "dv", "VirtualMachineInstance": "vmi"}


def export_command(namespace: str) -> str:
    return f"kubectl get {EXPORT_RESOURCES} -n {namespace} -o yaml"


# Phases in the order they must be applied, and the cluster each one goes to.
PHASES: Tuple[str, ...] = ("prepare", "receive", "send")
PHASE_SIDE = {"prepare": "target", "receive": "target", "send": "source"}

# Labels and annotations that tie every object to its migration (see CONTRIBUTING.md).
PREFIX = "dlm.kubevirt-tools.io"
MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "kubectl-dlm"
LABEL_MIGRATION_ID = f"{PREFIX}/migration-id"
LABEL_VM = f"{PREFIX}/vm"
ANN_SOURCE = f"{PREFIX}/source"
ANN_SOURCE_CLUSTER = f"{PREFIX}/source-cluster"
ANN_PHASE = f"{PREFIX}/phase"
ANN_SIDE = f"{PREFIX}/side"
ANN_COPY_OF = f"{PREFIX}/copy-of"
# On a source VM (and its disks) retired after a move: where it went, by which migration, when.
ANN_MIGRATED_TO = f"{PREFIX}/migrated-to"
ANN_MIGRATION_ID = f"{PREFIX}/migration-id"
ANN_MIGRATED_AT = f"{PREFIX}/migrated-at"

# CDI's default filesystemOverhead.global since CDI v1.64.0 (pkg/common/common.go:226, DefaultGlobalOverhead).
CDI_DEFAULT_OVERHEAD = 0.06

# The one-shot objects of a move (the migrations, the receiving VM, the blank disks) carry what Argo CD
# and Flux document for "never prune this, never apply it again", so a reconciler watching the
# namespace (or the bundle's folder in Git) cannot undo a move half-way. Doc pages: README,
# "With Argo CD or Flux". The after-state (`after-move/`) carries none of them.
HANDS_OFF: Dict[str, str] = {
    "argocd.argoproj.io/sync-options": "Prune=false",
    "argocd.argoproj.io/compare-options": "IgnoreExtraneous",
    "kustomize.toolkit.fluxcd.io/prune": "disabled",
    "kustomize.toolkit.fluxcd.io/reconcile": "disabled",
}
ONE_SHOT_KINDS = ("VirtualMachineInstanceMigration", "VirtualMachine", "DataVolume", "MigrationPolicy")
AFTER_DIR = "after-move"

SECRET_MODES = ("include", "omit", "reference")
# Objects copied from the source rather than made for one VM: shared by the VMs of a namespace,
# so any copy kubectl-dlm made may be reused, and cleanup never removes them.
COPIED_KINDS = ("Secret", "ConfigMap", "VirtualMachineInstancetype", "VirtualMachinePreference", "ControllerRevision")


def api_version(kind: str) -> str:
    group, version, _, _ = KINDS[kind]
    return f"{group}/{version}" if group else version


def meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def display_name(namespace: Optional[str], name: str) -> str:
    """`namespace/name`, or the bare name of a cluster-scoped object (the MigrationPolicy)."""
    return f"{namespace}/{name}" if namespace else name


@dataclass
class Source:
    """Objects read from the source side (a live cluster or an exported file)."""

    objects: Dict[Tuple[str, str, str], Obj] = field(default_factory=dict)
    # True when read from a live cluster: absent objects are known to be absent.
    live: bool = False
    # of_kind's answers, kept until the next add: planning asks once per VM, and a scan of every
    # object each time made a batch cost grow with the square of its size.
    _of_kind: Dict[Tuple[str, Optional[str]], List[Obj]] = field(default_factory=dict, repr=False, compare=False)

    def add(self, obj: Obj) -> None:
        m = meta(obj)
        self.objects[(obj.get("kind", ""), m.get("namespace", ""), m.get("name", ""))] = obj
        self._of_kind.clear()

    def get(self, kind: str, namespace: str, name: str) -> Optional[Obj]:
        return self.objects.get((kind, namespace, name))

    def of_kind(self, kind: str, namespace: Optional[str] = None) -> List[Obj]:
        found = self._of_kind.get((kind, namespace))
        if found is None:
            found = [o for (k, ns, _), o in self.objects.items() if k == kind and (namespace is None or ns == namespace)]
            found = self._of_kind[(kind, namespace)] = sorted(
                found, key=lambda o: (meta(o).get("namespace", ""), meta(o).get("name", "")))
        return list(found)


@dataclass(frozen=True)
class TargetInfo:
    """What is known about the target cluster. None means unknown (no access)."""

    storage_classes: Optional[frozenset] = None
    sync_addresses: Tuple[str, ...] = ()
    kubevirt_found: bool = False
    default_storage_class: Optional[str] = None
    # CDIConfig status.filesystemOverhead: global and per storage class (None: not read, why in cdi_error)
    fs_overhead_global: Optional[float] = None
    fs_overhead_classes: Tuple[Tuple[str, float], ...] = ()
    cdi_error: str = "the target cluster was not contacted"


@dataclass(frozen=True)
class StorageMapping:
    storage_class: Optional[str]
    volume_mode: Optional[str] = None
    access_modes: Optional[Tuple[str, ...]] = None


@dataclass(frozen=True)
class Tuning:
    """Per-migration settings (--bandwidth, ...), carried out as a MigrationPolicy (tuning.py).
    None: not given, the cluster's configuration applies."""

    bandwidth: Optional[str] = None  # a quantity per second; "0" = no limit
    allow_post_copy: Optional[bool] = None
    completion_timeout_per_gib: Optional[int] = None  # seconds
    allow_auto_converge: Optional[bool] = None
    max_downtime_ms: Optional[int] = None


@dataclass(frozen=True)
class Settings:
    source_namespace: str
    target_namespace: str
    source_cluster: str = ""
    target_cluster: str = ""
    storage_map: Mapping[str, StorageMapping] = field(default_factory=dict)
    network_map: Mapping[str, str] = field(default_factory=dict)
    claim_map: Mapping[str, str] = field(default_factory=dict)
    migration_id: Optional[str] = None
    connect_url: Optional[str] = None
    secrets: str = "include"
    fs_overhead: Optional[float] = None  # --fs-overhead; None: the target CDIConfig's, else CDI_DEFAULT_OVERHEAD
    tuning: Optional[Tuning] = None  # None: no MigrationPolicy of ours


@dataclass(frozen=True)
class Item:
    """One object to create: where, when, and from which template with which context."""

    side: str
    phase: str
    kind: str
    namespace: str
    name: str
    template: str
    context: Mapping[str, Any]
    vm: str


@dataclass(frozen=True)
class SecretRef:
    """A Secret the target needs but the bundle does not carry (its data stays on the source)."""

    name: str
    source_namespace: str
    target_namespace: str
    type: str
    keys: Tuple[str, ...]
    used_by: Tuple[str, ...]
    vm: str


@dataclass
class VMPlan:
    vm: str
    migration_id: str
    items: List[Item] = field(default_factory=list)
    secret_refs: List[SecretRef] = field(default_factory=list)
    prerequisites: List[str] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)  # how something was decided (disk sizes), for the summary
    connect_url: Optional[str] = None
    after: List[Item] = field(default_factory=list)  # how the application's repository declares it afterwards


@dataclass
class Plan:
    settings: Settings
    vms: List[VMPlan] = field(default_factory=list)

    def items(self, phases: Iterable[str] = PHASES, sides: Iterable[str] = ("source", "target")) -> List[Item]:
        """Items in apply order: by phase, then by VM, then in each VM's own order."""
        phases, sides = tuple(phases), tuple(sides)
        return [i for p in PHASES if p in phases for v in self.vms for i in v.items if i.phase == p and i.side in sides]
