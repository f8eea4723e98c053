"""What the checks know: the rows they produce (Check, Report) and the facts they judge (Facts).

A module of its own so gather (which fills Facts), the rules (which read them) and the table
share these without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from kubectl_dlm.model import Obj, Plan, Settings, Source, TargetInfo, meta

PASS, WARN, FAIL, UNKNOWN = "pass", "warn", "fail", "unknown"
STATUSES = (PASS, WARN, FAIL, UNKNOWN)
COLLISION_KINDS = ("VirtualMachine", "DataVolume", "PersistentVolumeClaim", "VirtualMachineInstanceMigration")
COPY_KINDS = ("Secret", "ConfigMap", "VirtualMachineInstancetype", "VirtualMachinePreference", "ControllerRevision")
CLUSTER_KINDS = {  # cluster-scoped instancetypes and preferences: kind -> API path prefix
    "virtualmachineclusterinstancetype": "/apis/instancetype.kubevirt.io/v1beta1/virtualmachineclusterinstancetypes",
    "virtualmachineclusterpreference": "/apis/instancetype.kubevirt.io/v1beta1/virtualmachineclusterpreferences",
}


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # pass | warn | fail | unknown
    reason: str
    fix: str = ""
    scope: str = ""  # what the row is about: "cluster east (target)", "vm prod/db"

    def to_dict(self) -> Dict[str, str]:
        return {"name": self.name, "scope": self.scope, "status": self.status, "reason": self.reason, "fix": self.fix}


@dataclass
class Report:
    rows: List[Check] = field(default_factory=list)
    plan: Optional[Plan] = None  # the bundle, when it could be planned
    source: Optional[Source] = None
    clusters: Dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return any(row.status == FAIL for row in self.rows)

    def counts(self) -> Dict[str, int]:
        return {status: sum(1 for row in self.rows if row.status == status) for status in STATUSES}

    def to_dict(self) -> Dict[str, Any]:
        return {"failed": self.failed, "counts": self.counts(), "checks": [row.to_dict() for row in self.rows]}


@dataclass(frozen=True)
class Access:
    """One thing the migration does on a cluster, as a SelfSubjectAccessReview asks it."""

    verb: str
    resource: str  # "resource" or "resource/subresource"
    group: str = ""
    namespace: str = ""
    name: str = ""
    optional: str = ""  # "": the migration needs it; else what goes without it (check warns, rbac grants it)

    def describe(self) -> str:
        what = f"{self.resource}.{self.group}" if self.group else self.resource
        if self.name:
            what += f" {self.name}"
        return f"{self.verb} {what}" + (f" in namespace {self.namespace}" if self.namespace else " (cluster-wide)")


@dataclass
class ClusterFacts:
    role: str  # source | target
    name: str  # kubeconfig context
    kubevirt: Optional[Obj] = None
    kubevirt_error: str = ""  # could not list KubeVirt CRs
    ca_bundle: Optional[str] = None
    ca_error: str = ""
    access: List[Tuple[Access, Optional[bool], str]] = field(default_factory=list)
    access_error: str = ""  # the server could not answer access reviews
    contacted: bool = True  # False: no cluster to ask (the source was read from a file)

    @property
    def label(self) -> str:
        return self.name or self.role

    @property
    def kubevirt_namespace(self) -> str:
        return meta(self.kubevirt or {}).get("namespace") or "kubevirt"


@dataclass
class Facts:
    source: Source
    names: List[str]
    settings: Settings
    same_cluster: bool
    clusters: Dict[str, ClusterFacts]  # "source", "target"
    target: TargetInfo = field(default_factory=TargetInfo)
    namespace_exists: Optional[bool] = None
    namespace_error: str = ""
    found: Dict[Tuple[str, str, str], Obj] = field(default_factory=dict)  # on the target, by (kind, ns, name)
    lookup_errors: Dict[str, str] = field(default_factory=dict)  # kind -> why it could not be read on the target
    nads: Dict[str, Tuple[Optional[bool], str]] = field(default_factory=dict)  # "ns/name" on the target
    cluster_objects: Dict[Tuple[str, str, str], Tuple[Optional[Obj], str]] = field(default_factory=dict)  # (side, kind, name)
    target_machines: Optional[List[Obj]] = None  # VMs and VMIs of the whole target cluster (MAC check)
    target_machines_error: str = ""
    target_nodes: Optional[List[Obj]] = None  # Nodes of the target cluster (placement); None: not readable
    target_nodes_error: str = ""
    source_nodes: Dict[str, Tuple[Optional[Obj], str]] = field(default_factory=dict)  # node name -> (Node, why not read)
    plan: Optional[Plan] = None
    vm_plans: Dict[str, Any] = field(default_factory=dict)  # vm -> VMPlan or the DlmError that refused it
    required: Dict[str, List[Access]] = field(default_factory=dict)  # side -> what the migration does there (rbac)
    target_namespace_labels: Optional[Dict[str, str]] = None  # the target Namespace's labels (policy matching)
    policies: Optional[List[Obj]] = None  # the target's MigrationPolicies (only read with the tuning flags)
    policies_error: str = ""
    policies_served: Optional[bool] = None  # False: the target serves no migrationpolicies (no such CRD)


def qualify(network: str, namespace: str) -> str:
    """The "ns/name" key of Facts.nads."""
    return network if "/" in network else f"{namespace}/{network}"
