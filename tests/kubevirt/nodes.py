"""The node side of the KubeVirt tier, played: Nodes as virt-handler's node-labeller leaves them, a
kube-scheduler that binds only where the pod fits, and a kubelet that runs (or fails) bound pods.

Sources (Kubernetes at commit 00d375050338df847285c0a12bbd90c328d0e707 unless noted; K8S = kubernetes/kubernetes):
* Node labels: KubeVirt v1.9.0 pkg/virt-handler/node-labeller/node_labeller.go:243-290 prepareLabels
  (cpu-model, cpu-model-migration, cpu-feature, host-model-cpu, host-model-required-features,
  cpu-vendor), cpu_plugin.go:83-131 (which models are "known"/"usable"), the example host of its
  testdata/virsh_domcapabilities.xml; kubevirt.io/schedulable from pkg/virt-handler/heartbeat.
* Filters, in the default profile's order (K8S pkg/scheduler/apis/config/v1/default_plugins.go):
  NodeUnschedulable, TaintToleration, NodeAffinity, InterPodAffinity; each node is rejected for its
  first failing filter, with that plugin's reason (the ErrReason* constants quoted below). NodeName
  needs nothing here: a pod with spec.nodeName is already assigned and never scheduled.
  VolumeBinding's PreFilter and PreBind for PVCs (missing, unbound Immediate, unbound
  WaitForFirstConsumer: the chosen node goes to volume.kubernetes.io/selected-node and the pod waits
  for the PV controller, played in cdi.py); not its PV node affinity.
  Not played: resources (NodeResourcesFit), ports, volume limits, topology spread, scoring (the
  feasible node with the fewest pods is chosen, then by name: deterministic, spreads like LeastAllocated).
* Failure: PodScheduled=False reason Unschedulable with FitError.Error()'s message
  (K8S pkg/scheduler/framework/types.go FitError.Error: "0/N nodes are available: <count reason,
  sorted, ', '>." then DefaultPreemption's PostFilter message "preemption: 0/N nodes are available:
  <count reason>."), written through pods/status as schedule_one.go handleSchedulingFailure ->
  updatePod does.
* Kubelet: pod status as pkg/kubelet/kubelet_pods.go generateAPIPodStatus and pkg/kubelet/status/generate.go
  write it (conditions PodReadyToStartContainers, Initialized, ContainersReady, Ready, PodScheduled;
  a failed pod: phase Failed, containers terminated, Ready/ContainersReady False reason PodFailed).
  virt-launcher pods have restartPolicy Never (KubeVirt pkg/virt-controller/services/template.go:731),
  so a crashed compute container leaves the pod Failed.

API (for tests and fixtures):
    side = NodeSide(cluster); side.start(); ...; side.stop()   # one per cluster; see fixtures.py node_sides
    side.replace_nodes([node(...), ...])   # context manager: these Nodes only, the old ones back after
    with side.failing(predicate, message): ...   # the kubelet fails matching pods (now or when they start)
    side.fail_pod(namespace, name)               # ... this one, now
    side.exits.append(fn)                        # fn(pod) -> exit code or None, asked for each Running pod
"""
from __future__ import annotations

import contextlib
import threading
import time
from datetime import datetime, timezone
from typing import Callable, Iterable

from tests.harness.apiserver import ApiError
from tests.kubevirt.loop import Loop

MERGE = "application/merge-patch+json"
# Pod status is patched as the scheduler (pkg/scheduler/util PatchPodStatus) and the kubelet's status
# manager do: a strategic merge patch, so conditions merge by type and KubeVirt's own
# (kubevirt.io/virtual-machine-unpaused, a readiness gate) stay.
STRATEGIC = "application/strategic-merge-patch+json"
# Machine types from libvirt's guest capabilities (<machine canonical=...>q35</machine>), which
# node-labeller labels machine-type.node.kubevirt.io/<name> (node_labeller.go:263-266); virt-controller
# selects on the VMI's machine type (q35 by default).
MACHINES = ("pc", "pc-i440fx-9.2", "q35", "pc-q35-9.2")
HOSTNAME = "kubernetes.io/hostname"
SCHEDULER = "default-scheduler"
# KubeVirt's install namespace: its component pods (virt-api, virt-controller, ..., virt-handler)
# stand for programs the harness runs or handler.py plays, which write those pods' status themselves.
INSTALL_NAMESPACE = "kubevirt"

# The example host of node-labeller's testdata (virsh_domcapabilities.xml, supported_features.xml).
SKYLAKE = {"model": "Skylake-Client-IBRS", "vendor": "Intel", "required_features": ("ds", "acpi", "ss"),
           "usable_models": ("Penryn", "IvyBridge", "Haswell", "Skylake-Client-IBRS", "Opteron_G2"),
           "known_models": ("EPYC-IBPB", "486", "Conroe", "Penryn", "IvyBridge", "Haswell", "Skylake-Client-IBRS",
                            "Opteron_G2"),
           "features": ("apic", "clflush", "vmx", "xsaves")}
# An AMD host (what a CPU-mismatched target has): EPYC host model, vendor AMD.
EPYC = {"model": "EPYC-Rome", "vendor": "AMD", "required_features": ("x2apic", "stibp"),
        "usable_models": ("Opteron_G2", "EPYC", "EPYC-Rome"), "known_models": ("Opteron_G2", "EPYC", "EPYC-Rome"),
        "features": ("apic", "clflush", "svm")}

# Nodes each test cluster starts with: two per cluster (a same-cluster move needs a second node,
# migration.go:913-935), with names that differ between clusters (the receiving pod may not run
# on a node named like the source node, whatever cluster it is in).
DEFAULT_NODES = {"source": ("node01", "node02"), "target": ("node03", "node04")}


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---- Nodes ----

def node_labels(name: str, cpu: dict = SKYLAKE) -> dict[str, str]:
    """The labels a Node carries once virt-handler's node-labeller and heartbeat ran (prepareLabels)."""
    labels = {HOSTNAME: name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
              "kubevirt.io/schedulable": "true"}
    # Supported features are those of the host's expanded host-model CPU (supported_features.xml,
    # cpu_plugin.go:142-161 loadHostSupportedFeatures), so they include its required features: a target pod selects
    # cpu-feature.node.kubevirt.io/<required feature> (migration.go:2564-2566).
    labels.update({f"cpu-feature.node.kubevirt.io/{f}": "true"
                   for f in (*cpu["features"], *cpu["required_features"])})
    labels.update({f"cpu-model.node.kubevirt.io/{m}": "true" for m in cpu["usable_models"]})
    labels.update({f"cpu-model-migration.node.kubevirt.io/{m}": "true" for m in cpu["known_models"]})
    labels.update({f"host-model-required-features.node.kubevirt.io/{f}": "true" for f in cpu["required_features"]})
    labels.update({f"machine-type.node.kubevirt.io/{m}": "true" for m in MACHINES})
    labels[f"cpu-vendor.node.kubevirt.io/{cpu['vendor']}"] = "true"
    labels[f"host-model-cpu.node.kubevirt.io/{cpu['model']}"] = "true"
    return labels


def node(name: str, cpu: dict = SKYLAKE, *, ip: str = "192.0.2.10", taints: Iterable[dict] = (),
         unschedulable: bool = False, labels: dict | None = None) -> dict:
    """A Node as the kubelet registers it and node-labeller labels it, with a Ready status.
    No kubevirt.io/heartbeat annotation: virt-controller's node controller then treats it as
    responsive (pkg/virt-controller/watch/node/node.go isNodeUnresponsive)."""
    spec: dict = {}
    if taints:
        spec["taints"] = list(taints)
    if unschedulable:
        spec["unschedulable"] = True
    t = now()
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {**node_labels(name, cpu), **(labels or {})}},
            "spec": spec,
            "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                       "message": "kubelet is posting ready status",
                                       "lastHeartbeatTime": t, "lastTransitionTime": t}],
                       "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
                       "capacity": {"cpu": "8", "memory": "32Gi", "pods": "110", "devices.kubevirt.io/kvm": "1k"},
                       "allocatable": {"cpu": "8", "memory": "32Gi", "pods": "110", "devices.kubevirt.io/kvm": "1k"}}}


def nodes(names: Iterable[str], cpu: dict = SKYLAKE, net: int = 0) -> list[dict]:
    """N nodes with one CPU; addresses 192.0.2.<net*16 + i>."""
    return [node(n, cpu, ip=f"192.0.2.{net * 16 + i + 10}") for i, n in enumerate(names)]


# ---- the scheduler's filters (pure) ----

def requirement_matches(req: dict, value: str | None) -> bool:
    """One NodeSelectorRequirement against a label (None: absent); k8s.io/apimachinery labels
    Requirement.Matches as nodeaffinity uses it (Gt/Lt compare integers)."""
    op, values = req["operator"], req.get("values") or []
    if op == "In":
        return value is not None and value in values
    if op == "NotIn":
        return value is None or value not in values
    if op == "Exists":
        return value is not None
    if op == "DoesNotExist":
        return value is None
    if op in ("Gt", "Lt"):
        try:
            have, want = int(value), int(values[0])   # type: ignore[arg-type]
        except (TypeError, ValueError, IndexError):
            return False
        return have > want if op == "Gt" else have < want
    return False


def term_matches(term: dict, node_obj: dict) -> bool:
    """A NodeSelectorTerm: its expressions and fields ANDed; an empty term matches nothing
    (k8s.io/component-helpers scheduling/corev1/nodeaffinity nodeSelectorTerm)."""
    exprs, fields = term.get("matchExpressions") or [], term.get("matchFields") or []
    if not exprs and not fields:
        return False
    labels = node_obj["metadata"].get("labels") or {}
    if not all(requirement_matches(r, labels.get(r["key"])) for r in exprs):
        return False
    # Only metadata.name is a supported field (nodeaffinity.NewNodeSelector).
    return all(r["key"] == "metadata.name" and requirement_matches(r, node_obj["metadata"]["name"]) for r in fields)


def affinity_matches(pod: dict, node_obj: dict) -> bool:
    """NodeAffinity's Filter: spec.nodeSelector AND required node affinity (terms ORed)."""
    labels = node_obj["metadata"].get("labels") or {}
    if any(labels.get(k) != v for k, v in (pod["spec"].get("nodeSelector") or {}).items()):
        return False
    required = (((pod["spec"].get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution"))
    if required is None:
        return True
    return any(term_matches(t, node_obj) for t in required.get("nodeSelectorTerms") or [])


def tolerates(tolerations: list[dict], taint: dict) -> bool:
    """Any toleration's ToleratesTaint (k8s.io/api/core/v1/toleration.go)."""
    for t in tolerations:
        if t.get("effect") and t["effect"] != taint["effect"]:
            continue
        if t.get("key") and t["key"] != taint["key"]:
            continue
        op = t.get("operator") or "Equal"
        if op == "Exists" or (op == "Equal" and (t.get("value") or "") == (taint.get("value") or "")):
            return True
    return False


def selector_matches(selector: dict | None, labels: dict) -> bool:
    """metav1.LabelSelector (matchLabels and matchExpressions ANDed; nil selects nothing)."""
    if selector is None:
        return False
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    return all(requirement_matches(r, labels.get(r["key"])) for r in selector.get("matchExpressions") or [])


def anti_affinity_violated(pod: dict, node_obj: dict, nodes_by_name: dict, placed: list[dict]) -> bool:
    """InterPodAffinity's Filter for the incoming pod's required anti-affinity: no pod it selects may
    run in the same topology domain (a node without the topology label is no domain)."""
    terms = (((pod["spec"].get("affinity") or {}).get("podAntiAffinity") or {})
             .get("requiredDuringSchedulingIgnoredDuringExecution") or [])
    node_labels_ = node_obj["metadata"].get("labels") or {}
    for term in terms:
        key = term["topologyKey"]
        if key not in node_labels_:
            continue
        namespaces = term.get("namespaces") or [pod["metadata"]["namespace"]]
        for other in placed:
            other_node = nodes_by_name.get(other["spec"]["nodeName"])
            if other_node is None or (other_node["metadata"].get("labels") or {}).get(key) != node_labels_[key]:
                continue
            if other["metadata"]["namespace"] in namespaces and \
                    selector_matches(term.get("labelSelector"), other["metadata"].get("labels") or {}):
                return True
    return False


# Reasons: the plugins' ErrReason* constants; "unresolvable" is whether the plugin returns
# UnschedulableAndUnresolvable (preemption cannot help) or Unschedulable.
UNSCHEDULABLE = "node(s) were unschedulable"              # nodeunschedulable.ErrReasonUnschedulable
AFFINITY = "node(s) didn't match Pod's node affinity/selector"   # nodeaffinity.ErrReasonPod
ANTI_AFFINITY = "node(s) didn't match pod anti-affinity rules"   # interpodaffinity.ErrReasonAntiAffinityRulesNotMatch
UNSCHEDULABLE_TAINT = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}


def filter_node(pod: dict, node_obj: dict, nodes_by_name: dict, placed: list[dict]) -> tuple[str, bool] | None:
    """None if the pod fits the node, else (reason, unresolvable) of the first failing filter."""
    tolerations = pod["spec"].get("tolerations") or []
    if (node_obj.get("spec") or {}).get("unschedulable") and not tolerates(tolerations, UNSCHEDULABLE_TAINT):
        return UNSCHEDULABLE, True
    for taint in (node_obj.get("spec") or {}).get("taints") or []:
        if taint["effect"] in ("NoSchedule", "NoExecute") and not tolerates(tolerations, taint):
            # tainttoleration.Filter: fmt "node(s) had untolerated taint {%s: %s}"
            return f"node(s) had untolerated taint {{{taint['key']}: {taint.get('value') or ''}}}", True
    if not affinity_matches(pod, node_obj):
        return AFFINITY, True
    if anti_affinity_violated(pod, node_obj, nodes_by_name, placed):
        return ANTI_AFFINITY, False
    return None


SELECTED_NODE = "volume.kubernetes.io/selected-node"


def claims(pod: dict) -> list[str]:
    return [v["persistentVolumeClaim"]["claimName"] for v in pod["spec"].get("volumes") or []
            if v.get("persistentVolumeClaim")]


def volume_prefilter(pod: dict, pvcs: dict, classes: dict, unbound_wffc: list) -> str:
    """VolumeBinding's PreFilter (K8S pkg/scheduler/framework/plugins/volumebinding/volume_binding.go):
    "" or why no node can take the pod; collects the unbound claims of WaitForFirstConsumer classes."""
    ns = pod["metadata"]["namespace"]
    immediate = False
    for name in claims(pod):
        pvc = pvcs.get((ns, name))
        if pvc is None:
            return f'persistentvolumeclaim "{name}" not found'
        if (pvc.get("status") or {}).get("phase") == "Bound" or pvc["spec"].get("volumeName"):
            continue
        sc = classes.get(pvc["spec"].get("storageClassName") or "")
        if sc is not None and sc.get("volumeBindingMode") == "WaitForFirstConsumer":
            unbound_wffc.append(pvc)
        else:
            immediate = True
    return "pod has unbound immediate PersistentVolumeClaims" if immediate else ""


def prefilter_error(n: int, message: str) -> str:
    """FitError.Error() when a PreFilter rejected the pod (its message instead of the histogram)."""
    return (f"0/{n} nodes are available: {message}. "
            f"preemption: 0/{n} nodes are available: {n} Preemption is not helpful for scheduling.")


def histogram(reasons: Iterable[str]) -> str:
    counts: dict[str, int] = {}
    for r in reasons:
        counts[r] = counts.get(r, 0) + 1
    return ", ".join(sorted(f"{n} {r}" for r, n in counts.items()))


def fit_error(rejections: list[tuple[str, bool]]) -> str:
    """FitError.Error() with DefaultPreemption's PostFilter message (no pod here has a lower
    priority to evict, so a resolvable rejection finds no victims)."""
    n = len(rejections)
    if n == 0:
        return "no nodes available to schedule pods"   # scheduler ErrNoNodesAvailable
    preemption = histogram("Preemption is not helpful for scheduling" if unresolvable
                           else "No preemption victims found for incoming pod" for _, unresolvable in rejections)
    return (f"0/{n} nodes are available: {histogram(r for r, _ in rejections)}. "
            f"preemption: 0/{n} nodes are available: {preemption}.")


def schedule(pod: dict, all_nodes: list[dict], placed: list[dict]) -> tuple[str | None, str]:
    """(node name or None, the FitError message)."""
    by_name = {n["metadata"]["name"]: n for n in all_nodes}
    fits, rejections = [], []
    for n in sorted(all_nodes, key=lambda n: n["metadata"]["name"]):
        verdict = filter_node(pod, n, by_name, placed)
        if verdict is None:
            fits.append(n["metadata"]["name"])
        else:
            rejections.append(verdict)
    if fits:
        load = {name: sum(1 for p in placed if p["spec"]["nodeName"] == name) for name in fits}
        return min(fits, key=lambda name: (load[name], name)), ""
    return None, fit_error(rejections)


def ours(pod: dict) -> bool:
    """A pod this scheduler must place: unassigned, Pending, for the default scheduler. (The
    harness's component pods carry phase Running without a node; they run outside any node.)"""
    return (not pod["spec"].get("nodeName") and (pod.get("status") or {}).get("phase", "Pending") == "Pending"
            and (pod["spec"].get("schedulerName") or SCHEDULER) == SCHEDULER
            and not pod["metadata"].get("deletionTimestamp"))


def terminal(pod: dict) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


# ---- the kubelet's statuses (pure) ----

def running_status(pod: dict, host_ip: str, pod_ip: str) -> dict:
    t = now()
    containers = [{"name": c["name"], "image": c["image"], "imageID": "", "containerID": f"cri-o://{pod['metadata']['uid']}-{i}",
                   "ready": True, "started": True, "restartCount": 0, "state": {"running": {"startedAt": t}}}
                  for i, c in enumerate(pod["spec"]["containers"])]
    return {"phase": "Running", "hostIP": host_ip, "hostIPs": [{"ip": host_ip}], "podIP": pod_ip,
            "podIPs": [{"ip": pod_ip}], "startTime": t, "qosClass": "Burstable", "containerStatuses": containers,
            "conditions": [{"type": c, "status": "True", "lastProbeTime": None, "lastTransitionTime": t}
                           for c in ("PodReadyToStartContainers", "Initialized", "ContainersReady", "Ready",
                                     "PodScheduled")]}


def failed_status(pod: dict, message: str, exit_code: int = 1) -> dict:
    """A crashed virt-launcher as the kubelet reports it (restartPolicy Never: the pod is Failed)."""
    return exited_status(pod, exit_code, message)


def exited_status(pod: dict, exit_code: int, message: str = "") -> dict:
    """Every container terminated with `exit_code`; restartPolicy Never, so the pod is Succeeded (0)
    or Failed (kubelet_pods.go getPhase), Ready/ContainersReady False with reason PodCompleted or
    PodFailed (pkg/kubelet/status/generate.go)."""
    t = now()
    status = pod.get("status") or {}
    started = status.get("startTime") or t
    ok = exit_code == 0
    terminated = {"exitCode": exit_code, "reason": "Completed" if ok else "Error", "startedAt": started,
                  "finishedAt": t}
    if message:
        terminated["message"] = message
    containers = [{"name": c["name"], "image": c["image"], "imageID": "", "ready": False, "started": False,
                   "restartCount": 0, "state": {"terminated": terminated}}
                  for c in pod["spec"]["containers"]]
    reason = "PodCompleted" if ok else "PodFailed"
    conditions = [{"type": "PodReadyToStartContainers", "status": "False", "lastProbeTime": None, "lastTransitionTime": t},
                  {"type": "Initialized", "status": "True", "lastProbeTime": None, "lastTransitionTime": started},
                  {"type": "ContainersReady", "status": "False", "reason": reason, "lastProbeTime": None,
                   "lastTransitionTime": t},
                  {"type": "Ready", "status": "False", "reason": reason, "lastProbeTime": None,
                   "lastTransitionTime": t},
                  {"type": "PodScheduled", "status": "True", "lastProbeTime": None, "lastTransitionTime": started}]
    return {**{k: status[k] for k in ("hostIP", "hostIPs", "podIP", "podIPs", "qosClass") if k in status},
            "phase": "Succeeded" if ok else "Failed", "startTime": started, "containerStatuses": containers,
            "conditions": conditions}


# ---- the loops ----

class NodeSide(Loop):
    """kube-scheduler and one kubelet per Node for one test cluster, as a background loop that
    polls every 0.2 s. Start it with start(), stop with stop()."""
    name = "node-side"

    def __init__(self, cluster, period: float = 0.2):
        super().__init__(cluster, period)
        self._lock = threading.Lock()
        self._doomed: list[tuple[Callable[[dict], bool], str]] = []
        self._next: list[tuple[Callable[[dict], bool], str]] = []   # fail_next's, among _doomed
        # Who knows that a pod's process exited (e.g. the played virt-handler, once the domain is
        # gone): each is asked about every Running pod; an int is the exit code of all its containers.
        self.exits: list[Callable[[dict], int | None]] = []
        self._ips: dict[str, str] = {}     # pod uid -> pod IP
        self._net = {"source": 1, "target": 2}.get(cluster.name, 3)

    # -- the API --

    def ensure_nodes(self, wanted: list[dict]) -> None:
        """Create the Nodes that do not exist yet (and their kubelet's status)."""
        have = {n["metadata"]["name"] for n in self.list_nodes()}
        for n in wanted:
            if n["metadata"]["name"] not in have:
                self.create_node(n)

    def create_node(self, n: dict) -> dict:
        created = self.cluster.request("POST", "/api/v1/nodes", n)
        if n.get("status"):
            created = self.cluster.request("PATCH", f"/api/v1/nodes/{n['metadata']['name']}/status",
                                           {"status": n["status"]}, content_type=MERGE)
        return created

    def list_nodes(self) -> list[dict]:
        return self.cluster.request("GET", "/api/v1/nodes")["items"]

    @contextlib.contextmanager
    def replace_nodes(self, wanted: list[dict]):
        """Within the block the cluster has exactly these Nodes; after it, the Nodes it had before
        (the clusters are shared by the whole session)."""
        before = self.list_nodes()
        for n in before:
            self.cluster.request("DELETE", f"/api/v1/nodes/{n['metadata']['name']}")
        for n in wanted:
            self.create_node(n)
        try:
            yield
        finally:
            for n in self.list_nodes():
                self.cluster.request("DELETE", f"/api/v1/nodes/{n['metadata']['name']}")
            for n in before:
                self.create_node({"apiVersion": "v1", "kind": "Node",
                                  "metadata": {"name": n["metadata"]["name"], "labels": n["metadata"].get("labels"),
                                               "annotations": n["metadata"].get("annotations")},
                                  "spec": n.get("spec") or {}, "status": n.get("status") or {}})

    @contextlib.contextmanager
    def failing(self, predicate: Callable[[dict], bool], message: str = "virt-launcher crashed"):
        """Within the block the kubelet reports every pod matching `predicate` Failed (at once if it
        already runs, instead of Running if it has yet to start)."""
        entry = (predicate, message)
        with self._lock:
            self._doomed.append(entry)
        try:
            yield
        finally:
            with self._lock:
                self._doomed.remove(entry)

    def fail_next(self, predicate: Callable[[dict], bool], message: str = "virt-launcher crashed") -> None:
        """The next pod matching `predicate` that has yet to start is reported Failed instead of
        Running; one shot (see `failing` for a block)."""
        chosen: list[str] = []

        def first(pod: dict) -> bool:
            if not chosen and (pod.get("status") or {}).get("phase", "Pending") == "Pending" and predicate(pod):
                chosen.append(pod["metadata"]["uid"])
            return pod["metadata"]["uid"] in chosen
        with self._lock:
            self._doomed.append((first, message))
            self._next.append((first, message))

    def forget_fail_next(self) -> None:
        """Disarm every `fail_next` (a test's faults end with it)."""
        with self._lock:
            self._doomed[:] = [d for d in self._doomed if d not in self._next]
            self._next.clear()

    def fail_pod(self, namespace: str, name: str, message: str = "virt-launcher crashed", exit_code: int = 1) -> dict:
        """The kubelet reports this pod's containers terminated and the pod Failed, now."""
        pod = self.cluster.request("GET", f"/api/v1/namespaces/{namespace}/pods/{name}")
        return self._patch_status(pod, failed_status(pod, message, exit_code))

    # -- the loop --

    def step(self) -> None:
        all_nodes = self.list_nodes()
        pods = self.cluster.request("GET", "/api/v1/pods")["items"]
        placed = [p for p in pods if p["spec"].get("nodeName") and not terminal(p)]
        volumes = None
        for pod in pods:
            if pod["metadata"]["namespace"] == INSTALL_NAMESPACE:
                continue   # KubeVirt's own pods: the harness and handler.py publish their status
            if ours(pod):
                if claims(pod) and volumes is None:
                    volumes = self._volumes()
                self._schedule(pod, all_nodes, placed, volumes)
            elif pod["spec"].get("nodeName"):
                self._kubelet(pod, all_nodes)

    def _volumes(self) -> tuple[dict, dict]:
        pvcs = {(p["metadata"]["namespace"], p["metadata"]["name"]): p
                for p in self.cluster.request("GET", "/api/v1/persistentvolumeclaims")["items"]}
        classes = {c["metadata"]["name"]: c
                   for c in self.cluster.request("GET", "/apis/storage.k8s.io/v1/storageclasses")["items"]}
        return pvcs, classes

    def _schedule(self, pod: dict, all_nodes: list[dict], placed: list[dict], volumes=None) -> None:
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        unbound_wffc: list[dict] = []
        rejected = volume_prefilter(pod, *(volumes or ({}, {})), unbound_wffc)
        if rejected:
            chosen, message = None, prefilter_error(len(all_nodes), rejected)
        else:
            chosen, message = schedule(pod, all_nodes, placed)
        if chosen and unbound_wffc:
            # VolumeBinding's PreBind: the chosen node goes to the claims, and the pod is bound only
            # once the PV controller bound them (volume_binding.go PreBind, binder.go BindPodVolumes).
            for pvc in unbound_wffc:
                if (pvc["metadata"].get("annotations") or {}).get(SELECTED_NODE) != chosen:
                    self.cluster.request(
                        "PATCH", f"/api/v1/namespaces/{ns}/persistentvolumeclaims/{pvc['metadata']['name']}",
                        {"metadata": {"annotations": {SELECTED_NODE: chosen}}}, content_type=MERGE)
            return
        if chosen:
            try:
                self.cluster.request("POST", f"/api/v1/namespaces/{ns}/pods/{name}/binding", {
                    "apiVersion": "v1", "kind": "Binding", "metadata": {"name": name, "uid": pod["metadata"]["uid"]},
                    "target": {"apiVersion": "v1", "kind": "Node", "name": chosen}})
            except ApiError as e:
                if e.status not in (404, 409):
                    raise
            pod["spec"]["nodeName"] = chosen
            placed.append(pod)
            return
        current = next((c for c in (pod.get("status") or {}).get("conditions") or [] if c["type"] == "PodScheduled"), {})
        if current.get("reason") == "Unschedulable" and current.get("message") == message:
            return   # the scheduler retries with back-off; nothing new to write
        self._patch_status(pod, {"conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                                 "message": message, "lastProbeTime": None,
                                                 "lastTransitionTime": now()}]})

    def _kubelet(self, pod: dict, all_nodes: list[dict]) -> None:
        status = pod.get("status") or {}
        if terminal(pod) or pod["metadata"].get("deletionTimestamp"):
            return
        with self._lock:
            doom = next((msg for pred, msg in self._doomed if pred(pod)), None)
        if doom is not None:
            self._patch_status(pod, failed_status(pod, doom))
            return
        if status.get("phase") == "Running":
            for exited in list(self.exits):
                code = exited(pod)
                if code is not None:
                    self._patch_status(pod, exited_status(pod, code))
                    return
            return
        if status.get("phase", "Pending") != "Pending":
            return
        node_obj = next((n for n in all_nodes if n["metadata"]["name"] == pod["spec"]["nodeName"]), None)
        if node_obj is None:
            return   # no kubelet runs it
        host_ip = next((a["address"] for a in (node_obj.get("status") or {}).get("addresses") or []
                        if a["type"] == "InternalIP"), "192.0.2.1")
        self._patch_status(pod, running_status(pod, host_ip, self._pod_ip(pod)))

    def _pod_ip(self, pod: dict) -> str:
        uid = pod["metadata"]["uid"]
        if uid not in self._ips:
            n = len(self._ips) + 10
            self._ips[uid] = f"10.244.{self._net * 16 + n // 250}.{n % 250 + 1}"
        return self._ips[uid]

    def _patch_status(self, pod: dict, status: dict) -> dict:
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        try:
            return self.cluster.request("PATCH", f"/api/v1/namespaces/{ns}/pods/{name}/status", {"status": status},
                                        content_type=STRATEGIC)
        except ApiError as e:
            if e.status != 404:   # deleted meanwhile
                raise
            return {}


_sides: dict[int, NodeSide] = {}


def node_side(cluster) -> NodeSide:
    """The cluster's running NodeSide, started (with DEFAULT_NODES) on first use."""
    side = _sides.get(id(cluster))
    if side is None:
        side = _sides[id(cluster)] = NodeSide(cluster)
        names = DEFAULT_NODES.get(cluster.name, ("node01", "node02"))
        side.ensure_nodes(nodes(names, net=side._net))
        side.start()
    return side


def stop_all() -> None:
    for side in _sides.values():
        side.stop()
    _sides.clear()
