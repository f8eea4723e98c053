"""read -> plan -> render, shared by `render`, `migrate` and `check`.

This is the one place that decides what to contact: with -f nothing on the source side, and the
target only when --to-context/--to-kubeconfig is given. The kubernetes client is imported only
when a cluster is actually contacted.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from kubectl_dlm import load, options, tuning
from kubectl_dlm import names as naming
from kubectl_dlm.errors import NotFound, UsageError
from kubectl_dlm.model import Plan, Settings, Source, StorageMapping, TargetInfo, meta
from kubectl_dlm.plan import plan as make_plan
from kubectl_dlm.render import Document, Renderer


@dataclass
class Request:
    """Everything the user asked for, as parsed flags."""

    vms: Tuple[str, ...] = ()
    selector: str = ""
    filename: Optional[str] = None
    kubeconfig: Optional[str] = None
    context: Optional[str] = None
    namespace: Optional[str] = None
    to_context: Optional[str] = None
    to_kubeconfig: Optional[str] = None
    to_namespace: Optional[str] = None
    storage_class_map: Tuple[str, ...] = ()
    network_map: Tuple[str, ...] = ()
    claim_map: Tuple[str, ...] = ()
    mapping_file: Optional[Path] = None
    migration_id: Optional[str] = None
    connect_url: Optional[str] = None
    secrets: str = "include"
    fs_overhead: Optional[float] = None
    template_dir: Optional[Path] = None
    bandwidth: Optional[str] = None
    allow_post_copy: Optional[bool] = None
    completion_timeout_per_gib: Optional[int] = None
    allow_auto_converge: Optional[bool] = None
    max_downtime: Optional[str] = None

    def tuning(self):
        return tuning.parse(self.bandwidth, self.allow_post_copy, self.completion_timeout_per_gib,
                            self.allow_auto_converge, self.max_downtime)

    @classmethod
    def from_flags(cls, flags: Dict[str, Any], **overrides: Any) -> "Request":
        """A Request from a command's click flags: the shared source/target/mapping options."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in {**flags, **overrides}.items() if k in known}
        values["vms"] = tuple(values.get("vms") or ())
        return cls(**values)


@dataclass
class Result:
    plan: Plan
    docs: List[Document]
    source: Source
    target: TargetInfo
    clusters: Dict[str, Any] = field(default_factory=dict)  # "source"/"target" -> kube.Cluster, when contacted
    after: List[Document] = field(default_factory=list)  # the VMs as declared after the move


@dataclass
class Inputs:
    """Everything read for a request, before planning."""

    source: Source
    names: List[str]
    settings: Settings
    target: TargetInfo
    clusters: Dict[str, Any]  # "source"/"target" -> kube.Cluster, when contacted


def validate(request: Request) -> None:
    """Every name the user gave, by Kubernetes' rules, before anything is read or contacted."""
    naming.check("-n", request.namespace, naming.dns_label_problem, "namespace name (RFC 1123 label)")
    naming.check("--to-namespace", request.to_namespace, naming.dns_label_problem, "namespace name (RFC 1123 label)")
    naming.check("--migration-id", request.migration_id, naming.migration_id_problem, "migration ID")
    naming.check_vm_names(request.vms)
    request.tuning()
    storage, networks, claims = options.load_mapping_file(request.mapping_file)
    for src, dst in options.parse_pairs(request.storage_class_map, "--storage-class-map").items():
        naming.check("", dst, naming.dns_subdomain_problem, "storage class name", f"--storage-class-map {src}={dst}")
    for src, mapping in storage.items():
        naming.check("", mapping.storage_class, naming.dns_subdomain_problem, "storage class name",
                     f"--mapping-file storageClasses.{src}")
    for flag, pairs in (("--network-map", options.parse_pairs(request.network_map, "--network-map")),
                        ("--mapping-file networks", networks)):
        for src, dst in pairs.items():
            ns, _, name = dst.rpartition("/")
            if ns:
                naming.check("", ns, naming.dns_label_problem, "namespace name", f"{flag} {src}={dst}")
            naming.check("", name, naming.dns_subdomain_problem, "network attachment name", f"{flag} {src}={dst}")
    for flag, pairs in (("--claim-map", options.parse_pairs(request.claim_map, "--claim-map")),
                        ("--mapping-file claims", claims)):
        for src, dst in pairs.items():
            naming.check("", dst, naming.dns_subdomain_problem, "claim name", f"{flag} {src}={dst}")


def read(request: Request) -> Inputs:
    validate(request)
    source, source_cluster, namespace, names = read_source(request)
    target_cluster = connect_target(request, source_cluster)
    target = TargetInfo()
    if target_cluster is not None:
        from kubectl_dlm import kube

        target = kube.read_target(target_cluster)
    settings = make_settings(request, namespace, source_cluster, target_cluster)
    clusters = {k: v for k, v in (("source", source_cluster), ("target", target_cluster)) if v is not None}
    return Inputs(source, names, settings, target, clusters)


def run(request: Request, phases=None, sides=None, after: bool = False) -> Result:
    """`after`: also render how each VM is declared once moved (for `--output-dir`)."""
    inputs = read(request)
    the_plan = make_plan(inputs.source, inputs.names, inputs.settings, inputs.target)
    renderer = Renderer(request.template_dir)
    docs = renderer.render(the_plan, phases=phases, sides=sides)
    result = Result(the_plan, docs, inputs.source, inputs.target, inputs.clusters)
    if after:
        result.after = [renderer.render_item(item) for vm in the_plan.vms for item in vm.after]
    return result


def read_source(request: Request):
    if request.filename:
        if request.vms and request.selector:
            raise UsageError("name VMs or pass -l, not both")
        text, where = _read_input(request.filename)
        source = load.read_text(text, where, request.namespace or "default")
        namespace = request.namespace or _single_namespace(source, where)
        names = _select(source, namespace, request.vms, request.selector, where)
        return source, None, namespace, names
    if not request.vms and not request.selector:
        raise UsageError("no VM given", "name one or more VMs, select them with -l app=db, or read a file with -f")
    if request.vms and request.selector:
        raise UsageError("name VMs or pass -l, not both")
    from kubectl_dlm import kube

    cluster = kube.connect(request.kubeconfig, request.context)
    namespace = request.namespace or cluster.namespace
    source = kube.read_source(cluster, namespace, list(request.vms), request.selector)
    names = _select(source, namespace, request.vms, request.selector, f"namespace {namespace} on {cluster.describe()}")
    return source, cluster, namespace, names


def connect_target(request: Request, source_cluster):
    if request.to_context or request.to_kubeconfig:
        from kubectl_dlm import kube

        return kube.connect(request.to_kubeconfig or request.kubeconfig, request.to_context)
    return source_cluster


def make_settings(request: Request, namespace: str, source_cluster, target_cluster) -> Settings:
    storage, networks, claims = options.load_mapping_file(request.mapping_file)
    storage.update({k: StorageMapping(v) for k, v in options.parse_pairs(request.storage_class_map, "--storage-class-map").items()})
    networks.update(options.parse_pairs(request.network_map, "--network-map"))
    claims.update(options.parse_pairs(request.claim_map, "--claim-map"))
    source_name = source_cluster.name if source_cluster is not None else (request.context or "")
    if target_cluster is not None:
        target_name = target_cluster.name
    else:
        target_name = request.to_context or source_name
    return Settings(
        source_namespace=namespace,
        target_namespace=request.to_namespace or namespace,
        source_cluster=source_name,
        target_cluster=target_name,
        storage_map=storage,
        network_map=networks,
        claim_map=claims,
        migration_id=request.migration_id,
        connect_url=options.check_connect_url(request.connect_url),
        secrets=request.secrets,
        fs_overhead=request.fs_overhead,
        tuning=request.tuning(),
    )


def _read_input(filename: str) -> Tuple[str, str]:
    if filename == "-":
        return sys.stdin.read(), "stdin"
    try:
        return Path(filename).read_text(encoding="utf-8"), filename
    except OSError as exc:
        raise UsageError(f"cannot read -f {filename}: {exc.strerror}") from None


def _single_namespace(source: Source, where: str) -> str:
    namespaces = sorted({meta(vm).get("namespace", "default") for vm in source.of_kind("VirtualMachine")})
    if len(namespaces) > 1:
        raise UsageError(f"{where} has VMs in several namespaces ({', '.join(namespaces)})", "choose one with -n")
    return namespaces[0] if namespaces else "default"


def _select(source: Source, namespace: str, names, selector: str, where: str) -> List[str]:
    vms = source.of_kind("VirtualMachine", namespace)
    if names:
        present = {meta(vm).get("name") for vm in vms}
        missing = [n for n in names if n not in present]
        if missing:
            raise NotFound(f"VirtualMachine {namespace}/{missing[0]} not found in {where}",
                           "check the name and the namespace (-n)")
        return list(names)
    if selector:
        vms = [vm for vm in vms if _matches(meta(vm).get("labels") or {}, selector)]
        if not vms:
            raise NotFound(f"no VirtualMachine in {where} matches -l {selector}")
    if not vms:
        raise NotFound(f"no VirtualMachine in namespace {namespace} of {where}", "check -n")
    return [meta(vm)["name"] for vm in vms]


def _matches(labels: Dict[str, str], selector: str) -> bool:
    """Equality-based selectors (a=b, a!=b, a) for file input; live input is filtered by the server."""
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, value = term.split("=", 1)
            if labels.get(key.strip().rstrip("=")) != value.strip().lstrip("="):
                return False
        elif labels.get(term) is None:
            return False
    return True


@dataclass
class PerVM:
    """Planning one VM at a time, so that one refusal does not stop a batch (`migrate`)."""

    settings: Settings
    source: Source
    target: TargetInfo
    clusters: Dict[str, Any]
    plans: Dict[str, Any]  # vm name -> VMPlan, or the DlmError that refused it


def plan_each(request: Request) -> PerVM:
    from kubectl_dlm.errors import DlmError

    inputs = read(request)
    plans: Dict[str, Any] = {}
    for name in inputs.names:
        try:
            plans[name] = make_plan(inputs.source, [name], inputs.settings, inputs.target).vms[0]
        except DlmError as exc:
            plans[name] = exc
    return PerVM(inputs.settings, inputs.source, inputs.target, inputs.clusters, plans)
