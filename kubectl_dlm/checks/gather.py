"""The I/O of the checks: read from both clusters, into Facts, what the rules judge.

Kept apart so the rules stay pure. A read that fails becomes an unknown row, not an error; only
an unreachable cluster stops checking. required_access is pure: it is the list gather asks about.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Tuple

from kubectl_dlm import trust
from kubectl_dlm.checks.facts import CLUSTER_KINDS, COLLISION_KINDS, Access, ClusterFacts, Facts, qualify
from kubectl_dlm.errors import ClusterError, DlmError
from kubectl_dlm.model import Obj, Settings, Source, TargetInfo, meta
from kubectl_dlm.refs import References, namespaced_kind, references


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

    _gather_nodes(facts, source, names, source_cluster, target_cluster)

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

    facts.required = needed = required_access(facts, refs)
    if access_reviews:
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
    overhead, per_class, cdi_error = kube.read_cdi_overhead(cluster)
    facts.target = TargetInfo(storage_classes=None if classes is None else frozenset(meta(c).get("name") for c in classes),
                              sync_addresses=addresses, kubevirt_found=cf.kubevirt is not None,
                              default_storage_class=kube.default_storage_class(classes or []),
                              fs_overhead_global=overhead, fs_overhead_classes=per_class, cdi_error=cdi_error)
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
            qualified = qualify(map_network(nad, settings), tns)
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


def _gather_nodes(facts: Facts, source: Source, names: List[str], source_cluster: Any, target_cluster: Any) -> None:
    """The target's Nodes and each source VMI's node, for the placement row (placement_rules)."""
    from kubectl_dlm import kube

    if target_cluster is None:
        facts.target_nodes_error = "the target cluster was not contacted"
    else:
        facts.target_nodes, facts.target_nodes_error = _attempt(kube.list_objects, target_cluster, "Node")
    for name in names:
        vmi = source.get("VirtualMachineInstance", facts.settings.source_namespace, name)
        node = ((vmi or {}).get("status") or {}).get("nodeName")
        if not node or node in facts.source_nodes:
            continue
        if source_cluster is None:
            facts.source_nodes[node] = (None, "the source was read from a file")
            continue
        obj, error = _attempt(kube.get, source_cluster, "Node", None, node)
        facts.source_nodes[node] = (obj, error or ("" if obj is not None else "not found"))


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
              Access("patch", "datavolumes", cdi, tns), Access("watch", "datavolumes", cdi, tns),
              Access("list", "persistentvolumeclaims", "", tns)]
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
