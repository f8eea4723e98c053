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
from kubectl_dlm.refs import BY_NAME_MAX, NAMED_WORKERS, References, lists_named, namespaced_kind, references


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
            asks = [(a.verb, a.resource, a.group, a.namespace, a.name) for a in needed[role]]
            for access, (allowed, why) in zip(needed[role], kube.access_reviews(cluster, asks)):
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
    if namespace is not None:
        facts.target_namespace_labels = dict(meta(namespace).get("labels") or {})
    if settings.tuning is not None:
        _gather_policies(facts, cluster)

    # Names the bundle creates, and the objects it copies: one LIST per kind (Secrets by name, or
    # listed for a big batch: kube.read_named).
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
        if secrets:
            objects, error = _attempt(kube.read_named, cluster, "Secret", tns, secrets)
            if error:
                facts.lookup_errors["Secret"] = error
            for name, obj in (objects or {}).items():
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


def _gather_policies(facts: Facts, cluster: Any) -> None:
    """The target's MigrationPolicies: is the API served at all, and which policy KubeVirt will choose."""
    from kubectl_dlm import kube
    from kubectl_dlm.errors import NotFound

    try:
        facts.policies, facts.policies_served = kube.list_objects(cluster, "MigrationPolicy"), True
    except NotFound as exc:  # 404 on the list: the CRD is not installed
        facts.policies_served, facts.policies_error = False, exc.message
    except ClusterError as exc:
        if exc.message.startswith("cannot reach"):
            raise
        facts.policies_error = exc.message
    except DlmError as exc:
        facts.policies_error = exc.message


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


# What goes without an optional access (check warns; rbac grants it all the same).
PROGRESS = "transfer progress without --prometheus-url (virt-handler's metrics through the pod proxy)"
EVENTS = "Events as evidence: why a migration is stuck, and in `report`"
PLACEMENT = "check's placement row (which nodes may take the receiving VM)"
MACHINES = "check's MAC address and firmware UUID row against every VM of the target cluster"
TAKEN_IDS = "migration IDs taken in other namespaces (without it: those of the VM's namespaces only)"
RETIRE_DELETE = "retire --delete-vm / --delete-disks (deleting the old copy)"
CDI_OVERHEAD = "CDI's filesystem overhead when sizing the target disks (without it: CDI's default)"
NAMED_LIST = ("reading more than {max} {plural} of a batch in one list (without it: a get each, {max_workers} at a "
              "time; slower)")
POLICIES = ("cleanup, cancel and report finding a MigrationPolicy of the tuning flags (--bandwidth ...) "
            "an earlier attempt left (without it: they look for none)")


def _named_list(plural: str) -> str:
    return NAMED_LIST.format(max=BY_NAME_MAX, plural=plural, max_workers=NAMED_WORKERS)


def required_access(facts: Facts, refs: Dict[str, Optional[References]]) -> Dict[str, List[Access]]:
    """Every request the plugin's commands make on each cluster, as RBAC sees it (server-side apply
    is `patch`; replace is `update`). Pure. tests/e2e/test_rbac_audit.py proves it complete and
    minimal against the API servers' audit log."""
    s = facts.settings
    sns, tns = s.source_namespace, s.target_namespace
    kv, cdi, it = "kubevirt.io", "cdi.kubevirt.io", "instancetype.kubevirt.io"
    used = [r for r in refs.values() if r is not None]

    def rows(namespace: str, table, optional: str = "") -> List[Access]:
        return [Access(verb, resource, group, namespace, optional=optional)
                for resource, group, verbs in table for verb in verbs]

    kvns = {role: facts.clusters[role].kubevirt_namespace for role in ("source", "target")}
    # read (get, list), follow (watch), carry out (patch = server-side apply), cancel/cleanup (delete),
    # retire (update the VM, patch the disks' annotations)
    source = rows(sns, [("virtualmachines", kv, ("get", "list", "update")),
                        ("virtualmachineinstances", kv, ("get", "list")),
                        ("virtualmachineinstancemigrations", kv, ("get", "list", "watch", "patch", "delete")),
                        ("datavolumes", cdi, ("get", "list", "patch")),
                        ("persistentvolumeclaims", "", ("get", "list", "patch"))])
    source += rows(sns, [("virtualmachines", kv, ("delete",)), ("datavolumes", cdi, ("delete",)),
                         ("persistentvolumeclaims", "", ("delete",))], RETIRE_DELETE)
    target = [Access("get", "namespaces", "", "", tns)]
    target += rows(tns, [("virtualmachines", kv, ("get", "list", "watch", "patch", "delete")),
                         ("virtualmachineinstances", kv, ("get", "list", "watch")),
                         ("virtualmachineinstancemigrations", kv, ("get", "list", "watch", "patch", "delete")),
                         ("datavolumes", cdi, ("get", "list", "watch", "patch", "delete")),
                         ("persistentvolumeclaims", "", ("get", "list", "delete"))])
    target += [Access("list", "storageclasses", "storage.k8s.io"),
               Access("get", "cdiconfigs", cdi, "", "config", optional=CDI_OVERHEAD),
               Access("list", "nodes", optional=PLACEMENT),
               Access("list", "virtualmachines", kv, optional=MACHINES),
               Access("list", "virtualmachineinstances", kv, optional=MACHINES)]
    source += [Access("get", "nodes", optional=PLACEMENT),
               Access("list", "pods", "", kvns["source"], optional=PROGRESS),
               Access("get", "pods/proxy", "", kvns["source"], optional=PROGRESS)]
    for role, accesses, ns in (("source", source, sns), ("target", target, tns)):
        accesses += [Access("list", "kubevirts", kv), Access("list", "events", "", ns, optional=EVENTS),
                     Access("list", "virtualmachineinstancemigrations", kv, optional=TAKEN_IDS)]
    # What the VMs reference: read on the source by name, copied to the target (check looks for
    # a name taken there: Secrets by name, ConfigMaps in one list).
    # A big batch lists them where it may (kube.read_named, refs.lists_named): optional, the GETs by
    # name remain what goes without it.
    secrets = sorted({n for r in used for n in r.secrets})
    for name in secrets:
        source.append(Access("get", "secrets", "", sns, name))
        target.append(Access("get", "secrets", "", tns, name))
        if s.secrets == "include":
            target.append(Access("patch", "secrets", "", tns, name))
    if lists_named(len(secrets)):
        for namespace, accesses in ((sns, source), (tns, target)):
            accesses.append(Access("list", "secrets", "", namespace, optional=_named_list("Secrets")))
    configmaps = sorted({n for r in used for n in r.configmaps})
    for name in configmaps:
        source.append(Access("get", "configmaps", "", sns, name))
        target += [Access("get", "configmaps", "", tns, name), Access("patch", "configmaps", "", tns, name)]
    if lists_named(len(configmaps)):
        source.append(Access("list", "configmaps", "", sns, optional=_named_list("ConfigMaps")))
    if configmaps:
        target.append(Access("list", "configmaps", "", tns))
    for attribute, plural in (("instancetype", "virtualmachineinstancetypes"), ("preference", "virtualmachinepreferences")):
        matchers = [getattr(r, attribute) for r in used if getattr(r, attribute)]
        if any(namespaced_kind(m[0]) for m in matchers):
            source.append(Access("list", plural, it, sns))
            target += [Access("list", plural, it, tns), Access("patch", plural, it, tns)]
        if any(m[2] for m in matchers):
            source.append(Access("list", "controllerrevisions", "apps", sns))
            target += [Access("list", "controllerrevisions", "apps", tns), Access("patch", "controllerrevisions", "apps", tns)]
        for kind, name in sorted({(m[0].lower(), m[1]) for m in matchers if m[0].lower() in CLUSTER_KINDS}):
            for accesses in (source, target):  # check: does the cluster-wide one exist on both sides?
                accesses.append(Access("get", CLUSTER_KINDS[kind].rsplit("/", 1)[1], it, "", name))
    if s.tuning is not None:  # the MigrationPolicy (cluster-scoped): apply, read back, which policy wins, removal
        target += [Access(verb, "migrationpolicies", "migrations.kubevirt.io") for verb in ("get", "list", "patch", "delete")]
    else:  # cleanup/cancel look for one an earlier, tuned attempt left (inventory.policies)
        target.append(Access("list", "migrationpolicies", "migrations.kubevirt.io", optional=POLICIES))
    if not facts.same_cluster:  # the CA exchange (trust, and migrate re-posts it)
        for role, accesses in (("source", source), ("target", target)):
            accesses += [Access("get", "configmaps", "", kvns[role], trust.CA_CONFIGMAP),
                         Access("watch", "configmaps", "", kvns[role], trust.CA_CONFIGMAP),  # until merged
                         Access("get", "configmaps", "", kvns[role], trust.EXTERNAL_CA_CONFIGMAP),
                         Access("update", "configmaps", "", kvns[role], trust.EXTERNAL_CA_CONFIGMAP)]
    return {"source": source, "target": target}
