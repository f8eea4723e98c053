"""Pre-flight checks: find every reason a migration would fail before anything is created.

    run_checks(request) -> Report        (rows of Check; report.failed)

Two layers. `gather` reads what the checks need from both clusters into `Facts` (each read may
fail on its own: that row then says "could not verify", status unknown, never pass). `evaluate`
is pure: Facts -> rows, one row per condition, so the user sees every problem at once, not the
first one. The plan (plan.plan) is run too, and a refusal becomes a row of its own.

Nothing here opens a connection to a synchronization address or prints a Secret value: Secrets
are compared by the SHA-256 of their data and named by their keys only.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from kubectl_dlm import pem, trust
from kubectl_dlm.errors import ClusterError, DlmError
from kubectl_dlm.model import LABEL_MIGRATION_ID, MANAGED_BY, MANAGER, Obj, Plan, Settings, Source, TargetInfo, meta
from kubectl_dlm.refs import References, namespaced_kind, references, template_spec

PASS, WARN, FAIL, UNKNOWN = "pass", "warn", "fail", "unknown"
STATUSES = (PASS, WARN, FAIL, UNKNOWN)
FEATURE_GATE = "DecentralizedLiveMigration"
MIN_VERSION = (1, 6, 0)  # the DLM API appears in v1.6.0
BLOCKED_CONDITION_VERSION = (1, 8, 0)  # decentralizedMigrationBlocked / DecentralizedLiveMigrationFailure
EXPIRY_WARNING = dt.timedelta(hours=24)
FINAL_PHASES = ("Succeeded", "Failed")
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
    resource: str
    group: str = ""
    namespace: str = ""
    name: str = ""

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
    plan: Optional[Plan] = None
    vm_plans: Dict[str, Any] = field(default_factory=dict)  # vm -> VMPlan or the DlmError that refused it


# --- the entry point ------------------------------------------------------------------------

def run_checks(request: Any, *, now: Optional[dt.datetime] = None, access_reviews: bool = True) -> Report:
    """Every pre-flight check for `request` (a pipeline.Request). Errors that make checking
    impossible (no such VM, bad flags, a cluster that cannot be reached) are raised; anything
    else becomes a row."""
    from kubectl_dlm import pipeline

    source, source_cluster, namespace, names = pipeline.read_source(request)
    target_cluster = pipeline.connect_target(request, source_cluster)
    settings = pipeline.make_settings(request, namespace, source_cluster, target_cluster)
    facts = gather(source, names, settings, source_cluster, target_cluster, access_reviews=access_reviews)
    report = Report(rows=evaluate(facts, now or pem.now()), plan=facts.plan, source=source)
    report.clusters = {k: v for k, v in (("source", source_cluster), ("target", target_cluster)) if v is not None}
    return report


# --- gathering (I/O) ------------------------------------------------------------------------

def _attempt(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Tuple[Any, str]:
    """(result, "") or (None, why): a read that fails becomes an unknown row, except when the
    cluster cannot be reached at all (then checking is pointless: raised)."""
    try:
        return func(*args, **kwargs), ""
    except ClusterError as exc:
        if exc.message.startswith("cannot reach"):
            raise
        return None, exc.message
    except DlmError as exc:
        return None, exc.message


def gather(source: Source, names: List[str], settings: Settings, source_cluster: Any, target_cluster: Any,
           access_reviews: bool = True) -> Facts:
    from kubectl_dlm import kube
    from kubectl_dlm.plan import plan as make_plan

    same = target_cluster is not None and trust.same_cluster(source_cluster, target_cluster)
    facts = Facts(source=source, names=list(names), settings=settings, same_cluster=same,
                  clusters={"source": ClusterFacts("source", settings.source_cluster),
                            "target": ClusterFacts("target", settings.target_cluster)})
    sides = {"source": source_cluster, "target": target_cluster}
    for role, cluster in sides.items():
        cf = facts.clusters[role]
        if cluster is None:
            cf.contacted = False
            cf.kubevirt_error = cf.ca_error = cf.access_error = f"the {role} cluster was not contacted"
            continue
        kubevirts, cf.kubevirt_error = _attempt(kube.list_objects, cluster, "KubeVirt")
        if kubevirts:
            cf.kubevirt = kubevirts[0]
        if not same and cf.kubevirt is not None:
            cm, cf.ca_error = _attempt(kube.get, cluster, "ConfigMap", cf.kubevirt_namespace, trust.CA_CONFIGMAP)
            if cm is None and not cf.ca_error:
                cf.ca_error = f"ConfigMap {cf.kubevirt_namespace}/{trust.CA_CONFIGMAP} not found"
            cf.ca_bundle = ((cm or {}).get("data") or {}).get(trust.BUNDLE_KEY)

    refs = {name: _refs(source, settings, name) for name in names}
    if target_cluster is not None:
        _gather_target(facts, target_cluster, refs)
    else:
        facts.namespace_error = facts.target_machines_error = "the target cluster was not contacted"
    for role, cluster in sides.items():
        if cluster is None:
            continue
        for name, ref in refs.items():
            for matcher in (ref.instancetype, ref.preference) if ref else ():
                if matcher and matcher[0].lower() in CLUSTER_KINDS and (role, matcher[0], matcher[1]) not in facts.cluster_objects:
                    path = f"{CLUSTER_KINDS[matcher[0].lower()]}/{matcher[1]}"
                    facts.cluster_objects[(role, matcher[0], matcher[1])] = _attempt(
                        kube.get_path, cluster, path, f"get {matcher[0]} {matcher[1]}")

    target = facts.target
    try:
        facts.plan = make_plan(source, names, settings, target)
        facts.vm_plans = {vm.vm: vm for vm in facts.plan.vms}
    except DlmError as whole:
        for name in names:  # which VM? plan each alone (pure, cheap)
            try:
                facts.vm_plans[name] = make_plan(source, [name], settings, target).vms[0]
            except DlmError as exc:
                facts.vm_plans[name] = exc
        if all(not isinstance(p, DlmError) for p in facts.vm_plans.values()):
            facts.vm_plans["*"] = whole  # a batch-level refusal (e.g. the target is the source)

    if access_reviews:
        needed = required_access(facts, refs)
        for role, cluster in sides.items():
            if cluster is None:
                continue
            cf = facts.clusters[role]
            for access in needed[role]:
                allowed, why = kube.access_review(cluster, access.verb, access.resource, access.group,
                                                  access.namespace, access.name)
                if allowed is None:
                    cf.access_error = why
                    break
                cf.access.append((access, allowed, why))
    return facts


def _refs(source: Source, settings: Settings, name: str) -> Optional[References]:
    vm = source.get("VirtualMachine", settings.source_namespace, name)
    if vm is None:
        return None
    return references(vm, source.get("VirtualMachineInstance", settings.source_namespace, name))


def _gather_target(facts: Facts, cluster: Any, refs: Dict[str, Optional[References]]) -> None:
    from kubectl_dlm import kube

    settings = facts.settings
    tns = settings.target_namespace
    cf = facts.clusters["target"]
    classes, classes_error = _attempt(kube.list_objects, cluster, "StorageClass")
    addresses = tuple(((cf.kubevirt or {}).get("status") or {}).get("synchronizationAddresses") or ())
    facts.target = TargetInfo(storage_classes=None if classes is None else frozenset(meta(c).get("name") for c in classes),
                              sync_addresses=addresses, kubevirt_found=cf.kubevirt is not None)
    if classes_error:
        facts.lookup_errors["StorageClass"] = classes_error
    namespace, facts.namespace_error = _attempt(kube.get, cluster, "Namespace", None, tns)
    facts.namespace_exists = None if facts.namespace_error else namespace is not None

    # Names the bundle creates, and the objects it copies: one LIST per kind (Secrets: GET by name).
    kinds = set(COLLISION_KINDS)
    secrets: set = set()
    for ref in refs.values():
        if ref is None:
            continue
        secrets.update(ref.secrets)
        if ref.configmaps:
            kinds.add("ConfigMap")
        for matcher in (ref.instancetype, ref.preference):
            if matcher and namespaced_kind(matcher[0]):
                kinds.add(namespaced_kind(matcher[0]))
                if matcher[2]:
                    kinds.add("ControllerRevision")
    if facts.namespace_exists is not False:
        for kind in sorted(kinds):
            objects, error = _attempt(kube.list_objects, cluster, kind, tns)
            if error:
                facts.lookup_errors[kind] = error
            for obj in objects or ():
                facts.found[(kind, tns, meta(obj).get("name", ""))] = obj
        for name in sorted(secrets):
            obj, error = _attempt(kube.get, cluster, "Secret", tns, name)
            if error:
                facts.lookup_errors["Secret"] = error
            elif obj is not None:
                facts.found[("Secret", tns, name)] = obj

    from kubectl_dlm.plan import map_network

    for ref in refs.values():
        for _network, nad in (ref.multus_networks if ref else ()):
            qualified = _qualify(map_network(nad, settings), tns)
            if qualified in facts.nads:
                continue
            nad_ns, _, nad_name = qualified.partition("/")
            obj, error = _attempt(kube.get, cluster, "NetworkAttachmentDefinition", nad_ns, nad_name)
            facts.nads[qualified] = (None if error else obj is not None, error)

    machines: List[Obj] = []
    for kind in ("VirtualMachine", "VirtualMachineInstance"):
        objects, error = _attempt(kube.list_objects, cluster, kind)
        if error:
            facts.target_machines_error = error
            break
        machines.extend(objects)
    else:
        facts.target_machines = machines


def required_access(facts: Facts, refs: Dict[str, Optional[References]]) -> Dict[str, List[Access]]:
    """What the migration does on each cluster (SSA creates are PATCHes). Pure."""
    s = facts.settings
    sns, tns = s.source_namespace, s.target_namespace
    kv, cdi, it = "kubevirt.io", "cdi.kubevirt.io", "instancetype.kubevirt.io"
    used = [r for r in refs.values() if r is not None]
    source = [Access("get", "virtualmachines", kv, sns), Access("watch", "virtualmachineinstances", kv, sns),
              Access("patch", "virtualmachineinstancemigrations", kv, sns),
              Access("watch", "virtualmachineinstancemigrations", kv, sns),
              Access("delete", "virtualmachineinstancemigrations", kv, sns),
              Access("list", "datavolumes", cdi, sns), Access("list", "persistentvolumeclaims", "", sns)]
    target = [Access("get", "namespaces", "", "", tns), Access("patch", "virtualmachines", kv, tns),
              Access("watch", "virtualmachines", kv, tns), Access("watch", "virtualmachineinstances", kv, tns),
              Access("patch", "virtualmachineinstancemigrations", kv, tns),
              Access("delete", "virtualmachineinstancemigrations", kv, tns),
              Access("patch", "datavolumes", cdi, tns), Access("list", "persistentvolumeclaims", "", tns)]
    if any(r.secrets for r in used):
        source.append(Access("get", "secrets", "", sns))
        if s.secrets == "include":
            target.append(Access("patch", "secrets", "", tns))
    if any(r.configmaps for r in used):
        source.append(Access("get", "configmaps", "", sns))
        target.append(Access("patch", "configmaps", "", tns))
    for attribute, plural in (("instancetype", "virtualmachineinstancetypes"), ("preference", "virtualmachinepreferences")):
        matchers = [getattr(r, attribute) for r in used if getattr(r, attribute)]
        if any(namespaced_kind(m[0]) for m in matchers):
            target.append(Access("patch", plural, it, tns))
        if any(m[2] for m in matchers):
            target.append(Access("patch", "controllerrevisions", "apps", tns))
    if not facts.same_cluster:
        for role, accesses in (("source", source), ("target", target)):
            kvns = facts.clusters[role].kubevirt_namespace
            accesses += [Access("list", "kubevirts", kv),
                         Access("get", "configmaps", "", kvns, trust.CA_CONFIGMAP),
                         Access("patch", "configmaps", "", kvns, trust.EXTERNAL_CA_CONFIGMAP)]
    return {"source": source, "target": target}


# --- evaluation (pure) ----------------------------------------------------------------------

def evaluate(facts: Facts, now: dt.datetime) -> List[Check]:
    rows: List[Check] = []
    s = facts.settings
    roles = ("source",) if facts.same_cluster else ("source", "target")
    for role in roles:
        scope = cluster_scope(facts, role)
        rows.append(check_dlm_enabled(facts.clusters[role], scope))
        rows.append(check_version(facts.clusters[role], scope))
    rows.extend(check_sync_addresses(facts))
    rows.extend(check_trust(facts, now))
    for role in ("source", "target"):
        rows.append(check_access(facts.clusters[role], f"{role} namespace "
                                 f"{s.source_namespace if role == 'source' else s.target_namespace} on {facts.clusters[role].label}"))
    rows.append(check_target_namespace(facts))
    for name in facts.names:
        rows.extend(check_vm(facts, name))
    if "*" in facts.vm_plans:
        error = facts.vm_plans["*"]
        rows.append(Check("bundle", FAIL, error.message, error.hint, "all VMs"))
    return rows


def cluster_scope(facts: Facts, role: str) -> str:
    name = facts.clusters[role].name or role
    return f"cluster {name} (source and target)" if facts.same_cluster else f"cluster {name} ({role})"


# cluster rows

def check_dlm_enabled(cf: ClusterFacts, scope: str) -> Check:
    name = "dlm-enabled"
    if cf.kubevirt is None:
        if not cf.contacted:
            return Check(name, UNKNOWN, f"could not verify: {cf.kubevirt_error}", "", scope)
        if cf.kubevirt_error:
            return Check(name, UNKNOWN, f"could not verify: cannot list KubeVirt CRs: {cf.kubevirt_error}",
                         "use a context that may list kubevirts.kubevirt.io", scope)
        return Check(name, FAIL, "no KubeVirt CR: KubeVirt is not installed on this cluster",
                     "install KubeVirt v1.6.0 or later with the DecentralizedLiveMigration feature gate", scope)
    kv_ns, kv_name = cf.kubevirt_namespace, meta(cf.kubevirt).get("name", "kubevirt")
    addresses = ((cf.kubevirt.get("status") or {}).get("synchronizationAddresses")) or []
    if addresses:
        return Check(name, PASS, f"KubeVirt {kv_ns}/{kv_name} publishes synchronization address "
                                 f"{', '.join(addresses)}", "", scope)
    developer = (((cf.kubevirt.get("spec") or {}).get("configuration") or {}).get("developerConfiguration") or {})
    gates = list(developer.get("featureGates") or [])
    disabled = list(developer.get("disabledFeatureGates") or [])
    where = f"KubeVirt {kv_ns}/{kv_name}"
    ctx = f"kubectl --context {cf.name} -n {kv_ns}" if cf.name else f"kubectl -n {kv_ns}"
    if FEATURE_GATE in disabled and FEATURE_GATE not in gates:
        kept = [g for g in disabled if g != FEATURE_GATE]
        return Check(name, FAIL, f"DLM is off: {where} lists {FEATURE_GATE} in "
                                 "spec.configuration.developerConfiguration.disabledFeatureGates",
                     f"remove it from disabledFeatureGates: {ctx} patch kubevirt {kv_name} --type merge -p "
                     f"'{_gates_patch('disabledFeatureGates', kept)}'", scope)
    if FEATURE_GATE in gates:
        return Check(name, FAIL, f"{where} enables {FEATURE_GATE} but status.synchronizationAddresses is empty: "
                                 "virt-synchronization-controller has no leader or no pod IP yet",
                     f"check it: {ctx} get deployment,lease virt-synchronization-controller", scope)
    return Check(name, FAIL, f"DLM is off: {where} has no status.synchronizationAddresses and does not enable "
                             f"{FEATURE_GATE} (KubeVirt v1.6-v1.9: Alpha, off by default)",
                 f"add {FEATURE_GATE} to spec.configuration.developerConfiguration.featureGates: {ctx} patch kubevirt "
                 f"{kv_name} --type merge -p '{_gates_patch('featureGates', gates + [FEATURE_GATE])}' (on KubeVirt "
                 "main the gate is Beta, on by default, unless disabledFeatureGates lists it)", scope)


def _gates_patch(key: str, gates: List[str]) -> str:
    return json.dumps({"spec": {"configuration": {"developerConfiguration": {key: gates}}}}, separators=(",", ":"))


_VERSION = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)")


def parse_version(text: Optional[str]) -> Optional[Tuple[int, int, int]]:
    match = _VERSION.match((text or "").strip())
    return tuple(int(g) for g in match.groups()) if match else None  # type: ignore[return-value]


def check_version(cf: ClusterFacts, scope: str) -> Check:
    name = "kubevirt-version"
    if cf.kubevirt is None:
        return Check(name, UNKNOWN, "could not verify: no KubeVirt CR to read the version from", "", scope)
    text = (cf.kubevirt.get("status") or {}).get("observedKubeVirtVersion")
    version = parse_version(text)
    if version is None:
        return Check(name, UNKNOWN, f"could not verify: status.observedKubeVirtVersion is "
                                    f"{repr(text) if text else 'not set'}", "", scope)
    if version < MIN_VERSION:
        return Check(name, FAIL, f"KubeVirt {text} has no decentralized live migration (it needs v1.6.0 or later)",
                     "upgrade KubeVirt to v1.6.0 or later (v1.8.0 or later recommended)", scope)
    if version < BLOCKED_CONDITION_VERSION:
        return Check(name, WARN, f"KubeVirt {text} supports DLM, but a stalled migration shows no reason before "
                                 "v1.8.0 (no decentralizedMigrationBlocked condition)",
                     "upgrade KubeVirt to v1.8.0 or later to see why a migration is blocked", scope)
    return Check(name, PASS, f"KubeVirt {text} supports decentralized live migration", "", scope)


def classify_address(address: str) -> Tuple[str, str]:
    """(status, why) for a gRPC sync address, from its text only: nothing is resolved or dialled."""
    text = address.strip()
    if text.startswith("dns:///"):
        text = text[len("dns:///"):]
    elif "://" in text:
        return FAIL, f"{address} has a URL scheme; the sync controller dials a gRPC host:port"
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        return FAIL, f"{address} is not host:port"
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        if host.lower() == "localhost" or host.lower().endswith(".localhost"):
            return FAIL, f"{address} is loopback: the other cluster would dial itself"
        if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*\.?", host):
            return FAIL, f"{address}: {host} is neither an IP address nor a host name"
        return PASS, f"{address} (a host name; the other cluster must resolve it, not looked up here)"
    if ip.is_loopback:
        return FAIL, f"{address} is loopback: the other cluster would dial itself"
    if ip.is_unspecified:
        return FAIL, f"{address} is the unspecified address, which no peer can dial"
    if ip.is_link_local:
        return FAIL, f"{address} is link-local: it is not routed beyond its own network segment"
    if ip.is_multicast:
        return FAIL, f"{address} is a multicast address"
    return PASS, address


def check_sync_addresses(facts: Facts) -> List[Check]:
    name = "sync-address"
    if facts.same_cluster:
        return [Check(name, PASS, "same cluster: its synchronization controller connects to itself", "",
                      cluster_scope(facts, "source"))]
    rows = []
    published: Dict[str, List[str]] = {}
    for role, other in (("source", "target"), ("target", "source")):
        cf = facts.clusters[role]
        scope = cluster_scope(facts, role)
        addresses = list(((cf.kubevirt or {}).get("status") or {}).get("synchronizationAddresses") or [])
        if role == "target" and facts.settings.connect_url:
            addresses = [facts.settings.connect_url]
        published[role] = addresses
        if not addresses:
            rows.append(Check(name, UNKNOWN, "could not verify: no synchronization address is published "
                                             "(see dlm-enabled)", "", scope))
            continue
        verdicts = [classify_address(a) for a in addresses]
        bad = [why for status, why in verdicts if status == FAIL]
        if bad:
            fix = ("pass a routable address with --connect-url, or " if role == "target" else "") + \
                  "configure a KubeVirt migration network (spec.configuration.migrations.network) that both clusters route"
            rows.append(Check(name, FAIL, "; ".join(bad), fix, scope))
        else:
            rows.append(Check(name, PASS, f"{facts.clusters[other].label} dials " + ", ".join(why for _, why in verdicts)
                              + ": looks routable (judged by the text only; nothing was dialled)", "", scope))
    shared = set(published["source"]) & set(published["target"])
    if shared:
        rows.append(Check(name, WARN, f"both clusters publish {', '.join(sorted(shared))}: their pod (or migration) "
                                      "networks overlap, so neither can reach the other's sync controller",
                          "use non-overlapping pod CIDRs or a routed migration network",
                          f"clusters {facts.clusters['source'].label} and {facts.clusters['target'].label}"))
    return rows


def check_trust(facts: Facts, now: dt.datetime) -> List[Check]:
    src, tgt = facts.clusters["source"], facts.clusters["target"]
    if facts.same_cluster:
        return [Check("ca-trust", PASS, "same cluster: no CA exchange is needed (one kubevirt-ca)", "",
                      cluster_scope(facts, "source"))]
    bundles: Dict[str, Optional[List[pem.Certificate]]] = {}
    errors: Dict[str, str] = {}
    for cf in (src, tgt):
        if cf.ca_error or cf.kubevirt is None:
            errors[cf.role] = cf.ca_error or "no KubeVirt CR"
            bundles[cf.role] = None
            continue
        try:
            bundles[cf.role] = pem.parse_bundle(cf.ca_bundle, f"{cf.kubevirt_namespace}/{trust.CA_CONFIGMAP}")
        except pem.PemError as exc:
            errors[cf.role] = str(exc)
            bundles[cf.role] = None
    fix = f"kubectl dlm trust --context {src.label} --to-context {tgt.label}"
    rows = []
    for holder, peer in ((tgt, src), (src, tgt)):
        scope = f"{holder.label} trusts {peer.label}"
        if bundles[holder.role] is None or bundles[peer.role] is None:
            which = holder if bundles[holder.role] is None else peer
            rows.append(Check("ca-trust", UNKNOWN, f"could not verify: cannot read {trust.CA_CONFIGMAP} on "
                                                   f"{which.label}: {errors[which.role]}", "", scope))
            continue
        valid = [c for c in pem.unique(bundles[peer.role]) if c.valid_at(now)]
        held = {c.sha256 for c in bundles[holder.role]}
        missing = [c for c in valid if c.sha256 not in held]
        if not valid:
            rows.append(Check("ca-trust", FAIL, f"{peer.label}'s {trust.CA_CONFIGMAP} holds no currently valid "
                                                "certificate", f"check virt-operator on {peer.label}", scope))
        elif missing:
            rows.append(Check("ca-trust", FAIL, f"{holder.label}'s {trust.CA_CONFIGMAP} lacks {len(missing)} of "
                                                f"{peer.label}'s {len(valid)} CA certificate(s): "
                                                + "; ".join(c.describe() for c in missing), fix, scope))
        else:
            rows.append(Check("ca-trust", PASS, f"{holder.label}'s {trust.CA_CONFIGMAP} holds all {len(valid)} of "
                                                f"{peer.label}'s valid CA certificate(s)", "", scope))
    for cf in (src, tgt):
        certs = bundles[cf.role]
        scope = f"{cf.kubevirt_namespace}/{trust.CA_CONFIGMAP} on {cf.label}"
        if certs is None:
            rows.append(Check("ca-expiry", UNKNOWN, f"could not verify: {errors[cf.role]}", "", scope))
            continue
        rows.append(expiry_row(certs, now, scope, fix))
    return rows


def expiry_row(certs: Sequence[pem.Certificate], now: dt.datetime, scope: str, fix: str) -> Check:
    certs = pem.unique(certs)
    valid = [c for c in certs if c.valid_at(now)]
    expired = [c for c in certs if c.state(now) == "expired"]
    if not valid:
        what = ("every certificate in it has expired: " + "; ".join(c.describe() for c in expired)) if expired \
            else "it holds no currently valid certificate"
        return Check("ca-expiry", FAIL, what, "check virt-operator, which renews the KubeVirt CA", scope)
    soon = [c for c in valid if c.not_after - now <= EXPIRY_WARNING]
    note = f" ({len(expired)} expired one(s) ignored)" if expired else ""
    if soon:
        return Check("ca-expiry", WARN, "expires within 24h: " + "; ".join(c.describe() for c in soon) + note,
                     "KubeVirt renews its CA before expiry; run `" + fix + "` again after it has, "
                     "`kubectl dlm migrate` re-posts trust right before it starts", scope)
    first = min(valid, key=lambda c: c.not_after)
    return Check("ca-expiry", PASS, f"{len(valid)} valid certificate(s), the first expires "
                                    f"{pem.format_time(first.not_after)}{note}", "", scope)


def check_access(cf: ClusterFacts, scope: str) -> Check:
    name = "permissions"
    denied = [a for a, allowed, _ in cf.access if allowed is False]
    if denied:
        return Check(name, FAIL, "you may not: " + "; ".join(a.describe() for a in denied),
                     f"ask for these permissions (RBAC) on {cf.label}, or use a context that has them", scope)
    if not cf.contacted:
        return Check(name, UNKNOWN, f"could not verify: {cf.access_error}", "", scope)
    if cf.access_error:
        return Check(name, UNKNOWN, f"could not verify (SelfSubjectAccessReview): {cf.access_error}",
                     "make sure your user has the permissions the README lists", scope)
    if not cf.access:
        return Check(name, UNKNOWN, "could not verify: access was not reviewed", "", scope)
    return Check(name, PASS, f"you may do all {len(cf.access)} things the migration needs here "
                             "(SelfSubjectAccessReview)", "", scope)


def check_target_namespace(facts: Facts) -> Check:
    tns, ctx = facts.settings.target_namespace, facts.clusters["target"].name
    scope = f"cluster {ctx or 'target'} (target)"
    if facts.namespace_error or facts.namespace_exists is None:
        return Check("target-namespace", UNKNOWN, f"could not verify namespace {tns}: "
                                                  f"{facts.namespace_error or 'no access to the target'}", "", scope)
    if not facts.namespace_exists:
        return Check("target-namespace", FAIL, f"namespace {tns} does not exist on the target",
                     f"kubectl{' --context ' + ctx if ctx else ''} create namespace {tns}", scope)
    return Check("target-namespace", PASS, f"namespace {tns} exists", "", scope)


# VM rows

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
    rows.append(check_collisions(facts, name, vm_plan, refs, migration_id, scope))
    rows.append(check_macs(facts, vm, vmi, migration_id, scope))
    rows.append(check_referenced(facts, refs, scope))
    rows.append(check_copies(facts, refs, migration_id, scope))
    rows.append(check_bundle(vm_plan, scope))
    return rows


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


def _qualify(network: str, namespace: str) -> str:
    return network if "/" in network else f"{namespace}/{network}"


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
        qualified = _qualify(mapped, tns)
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


def _created(facts: Facts, name: str, vm_plan: Any, refs: References) -> List[Tuple[str, str, str, str]]:
    """(side, kind, namespace, name) of what the bundle creates and KubeVirt/CDI create for it."""
    from kubectl_dlm.plan import map_claim

    s = facts.settings
    out: List[Tuple[str, str, str, str]] = []
    if vm_plan is not None and not isinstance(vm_plan, DlmError):
        for item in vm_plan.items:
            if item.kind in COLLISION_KINDS:
                out.append((item.side, item.kind, item.namespace, item.name))
            if item.kind == "DataVolume":
                out.append((item.side, "PersistentVolumeClaim", item.namespace, item.name))
        return out
    out.append(("target", "VirtualMachine", s.target_namespace, name))
    for claim in refs.claims:
        for kind in ("DataVolume", "PersistentVolumeClaim"):
            out.append(("target", kind, s.target_namespace, map_claim(claim.claim, s)))
    return out


def _is_ours(obj: Obj, migration_id: str, found: Dict[Tuple[str, str, str], Obj]) -> Optional[bool]:
    """True: this migration's; False: someone else's; None: an earlier attempt of ours."""
    labels = meta(obj).get("labels") or {}
    if labels.get(LABEL_MIGRATION_ID) == migration_id:
        return True
    for ref in meta(obj).get("ownerReferences") or []:  # a PVC its (our) DataVolume made
        owner = found.get((ref.get("kind", ""), meta(obj).get("namespace", ""), ref.get("name", "")))
        if owner is not None and (meta(owner).get("labels") or {}).get(LABEL_MIGRATION_ID) == migration_id:
            return True
    if labels.get(MANAGED_BY) == MANAGER and labels.get(LABEL_MIGRATION_ID):
        return None
    return False


def check_collisions(facts: Facts, name: str, vm_plan: Any, refs: References, migration_id: str, scope: str) -> Check:
    check = "name-collisions"
    s = facts.settings
    taken, reused, leftovers = [], [], []
    if facts.namespace_exists is None:
        return Check(check, UNKNOWN, f"could not verify: {facts.namespace_error or 'the target was not read'}", "", scope)
    for side, kind, ns, obj_name in _created(facts, name, vm_plan, refs):
        if side == "source":
            obj = facts.source.get(kind, ns, obj_name)
        else:
            if kind in facts.lookup_errors:
                return Check(check, UNKNOWN, f"could not verify: cannot list {kind}s in namespace {ns} on the target: "
                                             f"{facts.lookup_errors[kind]}", "", scope)
            obj = facts.found.get((kind, ns, obj_name))
        if obj is None:
            continue
        ours = _is_ours(obj, migration_id, facts.found)
        where = f"{kind} {ns}/{obj_name}" + (" on the source" if side == "source" else "")
        if ours is True:
            reused.append(where)
        elif ours is None:
            leftovers.append((where, (meta(obj).get("labels") or {}).get(LABEL_MIGRATION_ID)))
        else:
            taken.append(where)
    if taken or leftovers:
        reason = "; ".join([f"{w} already exists and is not part of this migration" for w in taken]
                           + [f"{w} is left over from an earlier attempt (migration-id {i})" for w, i in leftovers])
        fix = ("delete or rename what is in the way, or choose another --to-namespace" if taken else "") + \
              ("; " if taken and leftovers else "") + \
              (f"remove the earlier attempt: kubectl dlm cleanup {name} -n {s.source_namespace}" if leftovers else "")
        return Check(check, FAIL, reason, fix, scope)
    if reused:
        return Check(check, PASS, f"nothing in the way; {len(reused)} object(s) of this migration already exist "
                                  f"and will be reused: {', '.join(reused)}", "", scope)
    return Check(check, PASS, "nothing on the target has the names the bundle creates", "", scope)


_MAC = re.compile(r"^([0-9a-f]{2}[:-]){5}[0-9a-f]{2}$")


def _macs(obj: Obj) -> Dict[str, str]:
    """mac (lower case) -> interface name, from a VM's template or a VMI's spec and status."""
    found: Dict[str, str] = {}
    spec = template_spec(obj) if obj.get("kind") == "VirtualMachine" else (obj.get("spec") or {})
    for iface in ((spec.get("domain") or {}).get("devices") or {}).get("interfaces") or []:
        if iface.get("macAddress"):
            found[iface["macAddress"].lower().replace("-", ":")] = iface.get("name", "?")
    if obj.get("kind") == "VirtualMachineInstance":
        for iface in (obj.get("status") or {}).get("interfaces") or []:
            if iface.get("mac"):
                found.setdefault(iface["mac"].lower().replace("-", ":"), iface.get("name", "?"))
    return {mac: n for mac, n in found.items() if _MAC.match(mac)}


def check_macs(facts: Facts, vm: Obj, vmi: Optional[Obj], migration_id: str, scope: str) -> Check:
    check = "mac-addresses"
    mine = _macs(vm)
    if vmi is not None:
        mine.update(_macs(vmi))
    if not mine:
        return Check(check, PASS, "no fixed MAC address (the target assigns its own)", "", scope)
    if facts.target_machines is None:
        return Check(check, UNKNOWN, "could not verify: cannot list VirtualMachines/VirtualMachineInstances in all "
                                     f"namespaces of the target: {facts.target_machines_error or 'no access'}", "", scope)
    s = facts.settings
    skip = set()
    if facts.same_cluster:
        skip.add((s.source_namespace, meta(vm).get("name")))  # the VM itself
    for obj in facts.target_machines:
        if obj.get("kind") == "VirtualMachine" and _is_ours(obj, migration_id, {}) is True:
            skip.add((meta(obj).get("namespace"), meta(obj).get("name")))  # our receiving VM and its VMI
    clashes = []
    for obj in facts.target_machines:
        key = (meta(obj).get("namespace"), meta(obj).get("name"))
        if key in skip:
            continue
        for mac in sorted(set(_macs(obj)) & set(mine)):
            clashes.append(f"{mac} (interface {mine[mac]}) is used by {obj.get('kind')} {key[0]}/{key[1]}")
    if clashes:
        return Check(check, FAIL, "; ".join(dict.fromkeys(clashes)),
                     "give one of the VMs another MAC address (spec.template.spec.domain.devices.interfaces[].macAddress)",
                     scope)
    return Check(check, PASS, f"no VM on the target uses {', '.join(sorted(mine))}", "", scope)


def _wanted_refs(refs: References) -> List[Tuple[str, str, str]]:
    """(kind as referenced, name, where) of everything the VM references by name."""
    out = [("Secret", n, ", ".join(w)) for n, w in sorted(refs.secrets.items())]
    out += [("ConfigMap", n, ", ".join(w)) for n, w in sorted(refs.configmaps.items())]
    for attribute, matcher in (("instancetype", refs.instancetype), ("preference", refs.preference)):
        if matcher:
            kind, name, revision = matcher
            out.append((kind, name, f"spec.{attribute}"))
            if revision:
                out.append(("ControllerRevision", revision, f"spec.{attribute}.revisionName"))
    return out


def check_referenced(facts: Facts, refs: References, scope: str) -> Check:
    check = "referenced-objects"
    ns = facts.settings.source_namespace
    wanted = _wanted_refs(refs)
    if not wanted:
        return Check(check, PASS, "it references no Secret, ConfigMap, instancetype or preference", "", scope)
    missing, unknown = [], []
    for kind, name, where in wanted:
        canonical = namespaced_kind(kind) or kind
        if kind.lower() in CLUSTER_KINDS:
            obj, error = facts.cluster_objects.get(("source", kind, name), (None, "not looked up"))
            if error:
                unknown.append(f"{kind} {name}: {error}")
            elif obj is None:
                missing.append(f"{kind} {name} ({where})")
        elif facts.source.get(canonical, ns, name) is None:
            missing.append(f"{canonical} {ns}/{name} ({where})")
    if missing:
        return Check(check, FAIL, "not found on the source: " + "; ".join(missing),
                     "create them on the source (the VM cannot restart without them either)", scope)
    if unknown:
        return Check(check, UNKNOWN, "could not verify: " + "; ".join(unknown), "", scope)
    return Check(check, PASS, f"all {len(wanted)} referenced object(s) exist on the source", "", scope)


def content_digest(obj: Obj) -> Tuple[str, Dict[str, str]]:
    """(SHA-256 of what a copy carries, per-key SHA-256) — to compare without showing a value."""
    kind = obj.get("kind")
    if kind == "Secret":
        parts = {**{f"data.{k}": v for k, v in (obj.get("data") or {}).items()}, "type": obj.get("type") or "Opaque"}
    elif kind == "ConfigMap":
        parts = {**{f"data.{k}": v for k, v in (obj.get("data") or {}).items()},
                 **{f"binaryData.{k}": v for k, v in (obj.get("binaryData") or {}).items()}}
    elif kind == "ControllerRevision":
        parts = {"data": obj.get("data"), "revision": obj.get("revision")}
    else:
        parts = {f"spec.{k}": v for k, v in (obj.get("spec") or {}).items()}
    keyed = {k: hashlib.sha256(json.dumps(v, sort_keys=True).encode()).hexdigest() for k, v in parts.items()}
    return hashlib.sha256(json.dumps(keyed, sort_keys=True).encode()).hexdigest(), keyed


def _differs(a: Obj, b: Obj) -> List[str]:
    """Names of the fields/keys whose content differs (never the values)."""
    digest_a, keys_a = content_digest(a)
    digest_b, keys_b = content_digest(b)
    if digest_a == digest_b:
        return []
    return sorted(k for k in set(keys_a) | set(keys_b) if keys_a.get(k) != keys_b.get(k))


def check_copies(facts: Facts, refs: References, migration_id: str, scope: str) -> Check:
    check = "copied-objects"
    s = facts.settings
    sns, tns = s.source_namespace, s.target_namespace
    wanted = _wanted_refs(refs)
    if not wanted:
        return Check(check, PASS, "nothing to copy", "", scope)
    if facts.namespace_exists is None:
        return Check(check, UNKNOWN, f"could not verify: {facts.namespace_error or 'the target was not read'}", "", scope)
    fails, warns, notes, unknown = [], [], [], []
    for kind, name, _where in wanted:
        if kind.lower() in CLUSTER_KINDS:
            src, _ = facts.cluster_objects.get(("source", kind, name), (None, ""))
            dst, error = facts.cluster_objects.get(("target", kind, name), (None, "not looked up"))
            if error:
                unknown.append(f"{kind} {name} on the target: {error}")
            elif dst is None:
                fails.append(f"cluster-scoped {kind} {name} does not exist on the target (it is not copied)")
            elif src is not None and _differs(src, dst):
                warns.append(f"cluster-scoped {kind} {name} differs on the target ({', '.join(_differs(src, dst))})")
            continue
        canonical = namespaced_kind(kind) or kind
        src = facts.source.get(canonical, sns, name)
        if src is None:
            continue  # referenced-objects reports it
        if canonical in facts.lookup_errors:
            unknown.append(f"{canonical} {tns}/{name}: {facts.lookup_errors[canonical]}")
            continue
        dst = facts.found.get((canonical, tns, name))
        copied = not (canonical == "Secret" and s.secrets != "include")
        if dst is None:
            if copied:
                notes.append(f"{canonical} {name} will be created")
            else:
                fails.append(f"Secret {tns}/{name} is not in the bundle (--secrets {s.secrets}) and does not exist "
                             "on the target")
            continue
        if (meta(dst).get("labels") or {}).get(LABEL_MIGRATION_ID) == migration_id:
            notes.append(f"{canonical} {name} is already copied")
            continue
        if facts.same_cluster and sns == tns:
            continue
        diff = _differs(src, dst)
        if not diff:
            notes.append(f"{canonical} {tns}/{name} already exists with the same content")
        elif copied:
            fails.append(f"{canonical} {tns}/{name} already exists on the target with different content "
                         f"({', '.join(diff)})")
        else:
            warns.append(f"Secret {tns}/{name} on the target differs from the source's ({', '.join(diff)}); "
                         "the VM will use the target's")
    if fails:
        return Check(check, FAIL, "; ".join(fails + warns),
                     "make the target's copy match or delete it (it is not overwritten); for Secrets you may "
                     "instead keep the target's with --secrets reference", scope)
    if unknown:
        return Check(check, UNKNOWN, "could not verify: " + "; ".join(unknown), "", scope)
    if warns:
        return Check(check, WARN, "; ".join(warns), "check that the target's version is the one you want", scope)
    return Check(check, PASS, "; ".join(notes) or "nothing to copy", "", scope)


def check_bundle(vm_plan: Any, scope: str) -> Check:
    if vm_plan is None:
        return Check("bundle", UNKNOWN, "could not verify: the VM was not planned", "", scope)
    if isinstance(vm_plan, DlmError):
        return Check("bundle", FAIL, f"cannot be planned: {vm_plan.message}", vm_plan.hint, scope)
    planned = f"{len(vm_plan.items)} object(s) planned (migration-id {vm_plan.migration_id})"
    # The persistent-state caveat has a row of its own; a missing send phase shows as dlm-enabled.
    warnings = [w for w in vm_plan.warnings if "state PVC" not in w and "was not rendered" not in w]
    if warnings:
        return Check("bundle", WARN, f"{planned}; " + "; ".join(warnings), "see `kubectl dlm render` for the bundle",
                     scope)
    return Check("bundle", PASS, planned, "", scope)


# --- presentation ---------------------------------------------------------------------------

def format_table(report: Report, width: Optional[int] = None) -> str:
    """One row per check; the fix on an indented line below the row it belongs to."""
    import shutil
    import textwrap

    width = width or max(100, shutil.get_terminal_size((120, 24)).columns)

    rows = report.rows
    name_w = max([len("CHECK")] + [len(r.name) for r in rows])
    scope_w = min(max([len("FOR")] + [len(r.scope) for r in rows]), 36)
    indent = 8 + name_w + 2 + scope_w + 2
    reason_w = max(30, width - indent)
    lines = [f"{'STATUS':<8}{'CHECK':<{name_w + 2}}{'FOR':<{scope_w + 2}}REASON"]
    for row in rows:
        scope = row.scope if len(row.scope) <= scope_w else row.scope[:scope_w - 1] + "…"
        wrapped = textwrap.wrap(row.reason, reason_w) or [""]
        lines.append(f"{row.status:<8}{row.name:<{name_w + 2}}{scope:<{scope_w + 2}}{wrapped[0]}")
        lines.extend(" " * indent + more for more in wrapped[1:])
        if row.fix and row.status != PASS:
            lines.append(" " * indent + "fix: " + row.fix)  # not wrapped: it often holds a command to copy
    counts = report.counts()
    lines.append("")
    lines.append(f"{counts[FAIL]} failed, {counts[WARN]} warning(s), {counts[UNKNOWN]} could not be verified, "
                 f"{counts[PASS]} passed")
    return "\n".join(lines) + "\n"
