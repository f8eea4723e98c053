"""The played node side (nodes.py): its filters against Kubernetes' semantics (pure tables), and the
loops on the KubeVirt tier with the pods KubeVirt's own virt-controller makes."""
from __future__ import annotations

import pytest

from tests.kubevirt import nodes
from tests.kubevirt.played import launcher_pods, wait_for
from tests.kubevirt.test_live import VMIS, VMS, get_or_none, vm_manifest


def pod(node_selector=None, affinity=None, tolerations=None, labels=None, ns="ns", node_name=None):
    spec = {"containers": [{"name": "compute", "image": "x"}]}
    if node_selector:
        spec["nodeSelector"] = node_selector
    if affinity:
        spec["affinity"] = affinity
    if tolerations:
        spec["tolerations"] = tolerations
    if node_name:
        spec["nodeName"] = node_name
    return {"metadata": {"name": "p", "namespace": ns, "uid": "u", "labels": labels or {}}, "spec": spec}


def required(*terms):
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": list(terms)}}}


def expr(key, op, *values):
    return {"key": key, "operator": op, "values": list(values)} if values else {"key": key, "operator": op}


N1 = nodes.node("n1", labels={"size": "10"})
N2 = nodes.node("n2", nodes.EPYC, labels={"size": "3"})


@pytest.mark.parametrize("affinity, fits", [
    (required({"matchExpressions": [expr("kubernetes.io/hostname", "NotIn", "n1")]}), ["n2"]),
    (required({"matchExpressions": [expr("kubernetes.io/hostname", "In", "n1")]}), ["n1"]),
    (required({"matchExpressions": [expr("cpu-vendor.node.kubevirt.io/AMD", "Exists")]}), ["n2"]),
    (required({"matchExpressions": [expr("cpu-vendor.node.kubevirt.io/AMD", "DoesNotExist")]}), ["n1"]),
    (required({"matchExpressions": [expr("size", "Gt", "5")]}), ["n1"]),
    (required({"matchExpressions": [expr("size", "Lt", "5")]}), ["n2"]),
    (required({"matchExpressions": [expr("size", "Gt", "x")]}), []),
    (required({"matchFields": [expr("metadata.name", "In", "n2")]}), ["n2"]),
    (required({"matchFields": [expr("metadata.name", "NotIn", "n2")]}), ["n1"]),
    # terms are ORed, a term's requirements ANDed, an empty term matches nothing
    (required({"matchExpressions": [expr("size", "In", "3")]}, {"matchFields": [expr("metadata.name", "In", "n1")]}),
     ["n1", "n2"]),
    (required({"matchExpressions": [expr("size", "In", "3"), expr("kubernetes.io/hostname", "In", "n1")]}), []),
    (required({}), []),
    (required(), []),
])
def test_required_node_affinity(affinity, fits):
    assert [n["metadata"]["name"] for n in (N1, N2) if nodes.affinity_matches(pod(affinity=affinity), n)] == fits


def test_node_selector_and_affinity_are_anded():
    p = pod(node_selector={"host-model-cpu.node.kubevirt.io/Skylake-Client-IBRS": "true"},
            affinity=required({"matchExpressions": [expr("kubernetes.io/hostname", "NotIn", "n1")]}))
    assert nodes.schedule(p, [N1, N2], [])[0] is None


@pytest.mark.parametrize("taint, tolerations, ok", [
    ({"key": "k", "value": "v", "effect": "NoSchedule"}, [], False),
    ({"key": "k", "value": "v", "effect": "NoSchedule"}, [{"key": "k", "value": "v", "effect": "NoSchedule"}], True),
    ({"key": "k", "value": "v", "effect": "NoSchedule"}, [{"key": "k", "value": "w"}], False),
    ({"key": "k", "value": "v", "effect": "NoSchedule"}, [{"key": "k", "operator": "Exists"}], True),
    ({"key": "k", "value": "v", "effect": "NoSchedule"}, [{"operator": "Exists"}], True),
    ({"key": "k", "value": "v", "effect": "NoExecute"}, [{"key": "k", "operator": "Exists", "effect": "NoSchedule"}],
     False),
    ({"key": "k", "value": "v", "effect": "PreferNoSchedule"}, [], True),   # only NoSchedule/NoExecute filter
])
def test_taints_and_tolerations(taint, tolerations, ok):
    n = nodes.node("t", taints=[taint])
    assert (nodes.filter_node(pod(tolerations=tolerations), n, {}, []) is None) is ok


def test_messages_are_the_schedulers():
    cordoned = nodes.node("c", unschedulable=True)
    tainted = nodes.node("t", taints=[{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}])
    p = pod(affinity=required({"matchExpressions": [expr("kubernetes.io/hostname", "NotIn", "n1", "n2")]}))
    assert nodes.schedule(p, [N1, N2, cordoned, tainted], []) == (None, (
        "0/4 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, "
        "1 node(s) were unschedulable, 2 node(s) didn't match Pod's node affinity/selector. "
        "preemption: 0/4 nodes are available: 4 Preemption is not helpful for scheduling."))
    # a cordoned node tolerated by the unschedulable taint is a candidate (nodeunschedulable.Filter)
    tolerant = pod(tolerations=[{"key": "node.kubernetes.io/unschedulable", "operator": "Exists",
                                 "effect": "NoSchedule"}])
    assert nodes.schedule(tolerant, [cordoned], [])[0] == "c"


def test_pod_anti_affinity_by_hostname():
    # KubeVirt's same-cluster migration target (migration.go:889 createMigrationPodAntiAffinityRule)
    anti = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"kubevirt.io/created-by": "vmi-uid"}},
         "topologyKey": "kubernetes.io/hostname"}]}}
    source = pod(labels={"kubevirt.io/created-by": "vmi-uid"}, node_name="n1")
    other_ns = pod(labels={"kubevirt.io/created-by": "vmi-uid"}, node_name="n2", ns="elsewhere")
    target = pod(affinity=anti)
    assert nodes.schedule(target, [N1, N2], [source, other_ns])[0] == "n2"
    assert nodes.schedule(target, [N1], [source]) == (None, (
        "0/1 nodes are available: 1 node(s) didn't match pod anti-affinity rules. "
        "preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."))


def test_the_least_loaded_fitting_node_is_chosen():
    busy = pod(node_name="n1")
    assert nodes.schedule(pod(), [N1, N2], [busy])[0] == "n2"
    assert nodes.schedule(pod(), [N1, N2], [])[0] == "n1"


def test_node_labels_are_node_labellers():
    labels = nodes.node_labels("n", nodes.SKYLAKE)
    assert labels["host-model-cpu.node.kubevirt.io/Skylake-Client-IBRS"] == "true"
    assert labels["cpu-vendor.node.kubevirt.io/Intel"] == "true"
    assert labels["host-model-required-features.node.kubevirt.io/ds"] == "true"
    assert labels["cpu-feature.node.kubevirt.io/ds"] == "true"   # a required feature is a supported one
    assert labels["machine-type.node.kubevirt.io/q35"] == "true"
    assert labels["cpu-model-migration.node.kubevirt.io/Skylake-Client-IBRS"] == "true"
    assert "cpu-model.node.kubevirt.io/EPYC-IBPB" not in labels   # known, not usable
    assert labels["kubevirt.io/schedulable"] == "true"


@pytest.mark.parametrize("code, phase, reason, ready_reason", [
    (0, "Succeeded", "Completed", "PodCompleted"), (137, "Failed", "Error", "PodFailed")])
def test_an_exited_pod_is_terminal(code, phase, reason, ready_reason):
    running = {**pod(node_name="n1"), "status": nodes.running_status(pod(), "192.0.2.10", "10.244.16.11")}
    status = nodes.exited_status(running, code)
    assert status["phase"] == phase and status["podIP"] == "10.244.16.11"
    assert {s["state"]["terminated"]["reason"] for s in status["containerStatuses"]} == {reason}
    assert {c["type"]: c.get("reason") for c in status["conditions"]}["Ready"] == ready_reason


# ---- on the KubeVirt tier ----

def test_launcher_pod_is_bound_to_a_fitting_node_and_runs(kubevirt_clusters, kv_namespace, node_sides):
    c = kubevirt_clusters.source
    c.request("POST", VMS.format(ns=kv_namespace), vm_manifest("vm1", "Always"))
    vmi = wait_for("the VMI", lambda: get_or_none(c, VMIS.format(ns=kv_namespace) + "/vm1"))
    pod_ = wait_for("the launcher Pod Running", lambda: [
        p for p in launcher_pods(c, kv_namespace, vmi["metadata"]["uid"]) if p["status"].get("phase") == "Running"])[0]
    assert pod_["spec"]["nodeName"] in nodes.DEFAULT_NODES["source"]
    assert pod_["spec"]["nodeSelector"]["kubevirt.io/schedulable"] == "true"   # what virt-controller asks for
    assert pod_["status"]["podIP"].startswith("10.244.")
    assert {x["type"]: x["status"] for x in pod_["status"]["conditions"]}["Ready"] == "True"
    # virt-controller sees the pod run and hands the VMI to virt-handler on that node (watch/vmi/vmi.go);
    # the played virt-handler (handler.py) may take it on to Running at once
    vmi = wait_for("the VMI Scheduled", lambda: (v := get_or_none(c, VMIS.format(ns=kv_namespace) + "/vm1"))
                   and v["status"].get("phase") in ("Scheduled", "Running") and v)
    assert vmi["status"]["nodeName"] == pod_["spec"]["nodeName"]
    # whoever knows the launcher exited (the played virt-handler) tells the kubelet
    exit_zero = lambda p: 0 if p["metadata"]["uid"] == pod_["metadata"]["uid"] else None  # noqa: E731
    node_sides["source"].exits.append(exit_zero)
    try:
        wait_for("the launcher Pod Succeeded", lambda: c.request(
            "GET", f"/api/v1/namespaces/{kv_namespace}/pods/{pod_['metadata']['name']}")["status"]["phase"] == "Succeeded")
    finally:
        node_sides["source"].exits.remove(exit_zero)


def test_unschedulable_launcher_pod_stays_pending_with_the_schedulers_condition(kubevirt_clusters, kv_namespace,
                                                                                 node_sides):
    c = kubevirt_clusters.source
    vm = vm_manifest("vm1", "Always")
    vm["spec"]["template"]["spec"]["nodeSelector"] = {"example.invalid/gpu": "yes"}
    c.request("POST", VMS.format(ns=kv_namespace), vm)
    vmi = wait_for("the VMI", lambda: get_or_none(c, VMIS.format(ns=kv_namespace) + "/vm1"))

    def unschedulable():
        for p in launcher_pods(c, kv_namespace, vmi["metadata"]["uid"]):
            cond = [x for x in p["status"].get("conditions") or [] if x["type"] == "PodScheduled"]
            if cond and cond[0]["reason"] == "Unschedulable":
                return p, cond[0]
    p, cond = wait_for("the PodScheduled=False condition", unschedulable)
    n = len(node_sides["source"].list_nodes())
    assert cond["status"] == "False" and not p["spec"].get("nodeName") and p["status"]["phase"] == "Pending"
    assert cond["message"] == (f"0/{n} nodes are available: {n} node(s) didn't match Pod's node affinity/selector. "
                               f"preemption: 0/{n} nodes are available: {n} Preemption is not helpful for scheduling.")
    # virt-controller copies the pod's PodScheduled=False condition to the VMI (watch/vmi/lifecycle.go:383-385)
    wait_for("virt-controller to copy the condition to the VMI", lambda: any(
        x["type"] == "PodScheduled" and x.get("reason") == "Unschedulable"
        for x in (get_or_none(c, VMIS.format(ns=kv_namespace) + "/vm1")["status"].get("conditions") or [])))


def test_a_test_can_replace_the_nodes_and_fail_a_pod(kubevirt_clusters, kv_namespace, node_sides):
    side = node_sides["target"]
    c = kubevirt_clusters.target
    before = sorted(n["metadata"]["name"] for n in side.list_nodes())
    with side.replace_nodes([nodes.node("only", nodes.EPYC)]):
        assert [n["metadata"]["name"] for n in side.list_nodes()] == ["only"]
        with side.failing(lambda p: p["metadata"]["namespace"] == kv_namespace, "virt-launcher crashed"):
            c.request("POST", VMS.format(ns=kv_namespace), vm_manifest("vm1", "Once"))
            vmi = wait_for("the VMI", lambda: get_or_none(c, VMIS.format(ns=kv_namespace) + "/vm1"))
            failed = wait_for("the launcher Pod Failed", lambda: [
                p for p in launcher_pods(c, kv_namespace, vmi["metadata"]["uid"])
                if p["status"].get("phase") == "Failed"])[0]
    assert failed["spec"]["nodeName"] == "only"
    compute = next(s for s in failed["status"]["containerStatuses"] if s["name"] == "compute")
    assert compute["state"]["terminated"]["exitCode"] == 1
    # virt-controller sees the launcher fail and fails the VMI (pkg/controller/controller.go:525
    # IsPodFailedOrGoingDown); runStrategy Once: the VM controller does not start another
    wait_for("the VMI Failed", lambda: get_or_none(c, VMIS.format(ns=kv_namespace) + "/vm1")["status"]
             .get("phase") == "Failed")
    assert sorted(n["metadata"]["name"] for n in side.list_nodes()) == before
