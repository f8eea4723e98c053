"""The fidelity review's findings (issue 9), on KubeVirt's own code. A finding's test fails with the
plugin before its fix, for the reason the review names (expected-to-fail until the fix lands), and
is a plain test after."""
from __future__ import annotations

import pytest

from kubectl_dlm import cli, errors
from tests.harness.apiserver import ApiError
from tests.kubevirt import nodes, played
from tests.kubevirt.test_live import vm_manifest


@pytest.fixture
def dlm(kubevirt_clusters, capsys):
    def run(*args: str):
        code = cli.run(list(args) + ["--kubeconfig", str(kubevirt_clusters.kubeconfig)])
        out = capsys.readouterr()
        return code, out.out, out.err
    return run


def test_dry_run_server_passes_on_real_kubevirt(kubevirt_clusters, kv_namespace, dlm):
    # Finding 1: KubeVirt's migration webhook has sideEffects None, so the API server calls it on a
    # server-side dry-run too; it looks up the receiving VMI, which a dry-run never created, and
    # denies (pkg/virt-api/webhooks/validating-webhook/admitters/migration-create-admitter.go:124-127).
    # Before the plugin's fix (16fd2ec) this failed with that denial; now the receiving migration is
    # reported as validated at run time, and everything else is judged by the real webhooks.
    played.run_vm(kubevirt_clusters.kubevirt["source"], kv_namespace, vm_manifest("vm1", "Always"))
    code, out, err = dlm("migrate", "vm1", "--context", "source", "-n", kv_namespace, "--to-context", "target",
                         "--dry-run=server", "-o", "plain")
    assert code == errors.OK, out + err
    assert "vm1: checked VirtualMachine" in out and "validated at run time: needs the receiving VMI" in out
    assert "vm1: dry run" in out
    for cluster, kind in (("target", "virtualmachines"), ("target", "virtualmachineinstancemigrations"),
                          ("source", "virtualmachineinstancemigrations")):
        assert kubevirt_clusters.by_name(cluster).request(
            "GET", f"/apis/kubevirt.io/v1/namespaces/{kv_namespace}/{kind}")["items"] == [], (cluster, kind)


# ---- finding 2: the receiving launcher pod can be unschedulable ----

KINDS = {"Secret": "/api/v1/namespaces/{ns}/secrets", "ConfigMap": "/api/v1/namespaces/{ns}/configmaps",
         "DataVolume": "/apis/cdi.kubevirt.io/v1beta1/namespaces/{ns}/datavolumes",
         "VirtualMachine": "/apis/kubevirt.io/v1/namespaces/{ns}/virtualmachines",
         "VirtualMachineInstanceMigration": "/apis/kubevirt.io/v1/namespaces/{ns}/virtualmachineinstancemigrations"}


def create_bundle(kubevirt_clusters, bundle: str, source: str, target: str) -> None:
    """The rendered objects, created on their side's cluster in the bundle's order (as `apply` does,
    without following), so KubeVirt's controllers build the receiving pod."""
    from ruamel.yaml import YAML
    for doc in YAML(typ="safe").load_all(bundle):
        if not doc:
            continue
        side = doc["metadata"]["annotations"]["dlm.kubevirt-tools.io/side"]
        cluster = kubevirt_clusters.by_name(target if side == "target" else source)
        ns = doc["metadata"]["namespace"]
        if doc["kind"] == "VirtualMachineInstanceMigration":
            # KubeVirt's migration webhook wants the VMI first (migration-create-admitter.go:124-127);
            # the receiving one is made by the VM controller for runStrategy WaitAsReceiver.
            path = f"/apis/kubevirt.io/v1/namespaces/{ns}/virtualmachineinstances/{doc['spec']['vmiName']}"
            played.wait_for(f"VMI {ns}/{doc['spec']['vmiName']}", lambda: vmi_exists(cluster, path))
        cluster.request("POST", KINDS[doc["kind"]].format(ns=doc["metadata"]["namespace"]), doc)


def vmi_exists(cluster, path: str) -> bool:
    try:
        cluster.request("GET", path)
    except ApiError as e:
        if e.status == 404:
            return False
        raise
    return True


def check_rows(out: str) -> dict:
    import json
    doc = json.loads(out)
    rows = [r for vm in doc.get("vms", []) for r in vm.get("checks", [])] + doc.get("checks", [])
    return {r["name"]: r for r in rows}


def receiving_pod_unschedulable(cluster, namespace: str):
    """The receiving VMI's migration target pod (label kubevirt.io/migrationJobUID, set by
    createTargetPod, migration.go:946) once the scheduler gave up on it."""
    for p in cluster.request("GET", f"/api/v1/namespaces/{namespace}/pods?labelSelector=kubevirt.io/migrationJobUID"
                             )["items"]:
        cond = [c for c in p["status"].get("conditions") or [] if c["type"] == "PodScheduled"]
        if cond and cond[0]["status"] == "False" and cond[0]["reason"] == "Unschedulable":
            return p, cond[0]
    return None


def test_one_node_cluster_same_cluster_move_is_unschedulable_and_check_fails(kubevirt_clusters, kv_namespace,
                                                                            node_sides, dlm):
    # Finding 2a. KubeVirt's receiving pod must avoid the source node: required node affinity
    # kubernetes.io/hostname NotIn [source node] (migration.go:913-936). On a one-node cluster
    # kube-scheduler cannot place it.
    src = kubevirt_clusters.source
    dst_ns = f"{kv_namespace}-to"
    src.create_namespace(dst_ns)
    try:
        with node_sides["source"].replace_nodes([nodes.node("node01")]):
            played.run_vm(kubevirt_clusters.kubevirt["source"], kv_namespace, vm_manifest("vm1", "Always"))
            code, out, err = dlm("check", "vm1", "--context", "source", "-n", kv_namespace, "--to-namespace", dst_ns,
                                 "-o", "json")
            assert code != errors.OK, out + err
            placement = check_rows(out)["placement"]
            assert placement["status"] == "fail", placement
            assert "no target node can take the receiving pod (same cluster" in placement["reason"]
            code, bundle, err = dlm("render", "vm1", "--context", "source", "-n", kv_namespace,
                                    "--to-namespace", dst_ns)
            assert code == errors.OK, err
            create_bundle(kubevirt_clusters, bundle, "source", "source")
            pod, cond = played.wait_for("the receiving pod Unschedulable",
                                        lambda: receiving_pod_unschedulable(src, dst_ns), timeout=90)
            terms = pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
                "nodeSelectorTerms"]
            assert {"key": "kubernetes.io/hostname", "operator": "NotIn", "values": ["node01"]} in \
                terms[0]["matchExpressions"]
            assert pod["status"]["phase"] == "Pending" and not pod["spec"].get("nodeName")
            assert cond["message"] == ("0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector. "
                                       "preemption: 0/1 nodes are available: 1 Preemption is not helpful for "
                                       "scheduling.")
    finally:
        src.delete_namespace(dst_ns)


def test_cpu_mismatched_target_is_unschedulable_and_check_fails(kubevirt_clusters, kv_namespace, node_sides, dlm):
    # Finding 2b. For a host-model CPU (the VMI default) the receiving pod selects the source node's
    # host model (cpu-model-migration.node.kubevirt.io/<model>), required features and CPU vendor,
    # copied into sourceState.nodeSelectors (migration.go:965-1004); an AMD target cannot take an
    # Intel source's VM.
    dst = kubevirt_clusters.target
    with node_sides["target"].replace_nodes(nodes.nodes(("node03", "node04"), nodes.EPYC, net=2)):
        played.run_vm(kubevirt_clusters.kubevirt["source"], kv_namespace, vm_manifest("vm1", "Always"))
        code, out, err = dlm("check", "vm1", "--context", "source", "-n", kv_namespace, "--to-context", "target",
                             "-o", "json")
        assert code != errors.OK, out + err
        placement = check_rows(out)["placement"]
        assert placement["status"] == "fail", placement
        assert placement["reason"].startswith("no target node can take the receiving pod; ")
        assert "cpu-model-migration.node.kubevirt.io/Skylake-Client-IBRS=true" in placement["reason"]
        assert "cpu-vendor.node.kubevirt.io/Intel=true" in placement["reason"]
        code, bundle, err = dlm("render", "vm1", "--context", "source", "-n", kv_namespace, "--to-context", "target")
        assert code == errors.OK, err
        create_bundle(kubevirt_clusters, bundle, "source", "target")
        pod, cond = played.wait_for("the receiving pod Unschedulable",
                                    lambda: receiving_pod_unschedulable(dst, kv_namespace), timeout=90)
        selector = pod["spec"]["nodeSelector"]
        assert selector["cpu-model-migration.node.kubevirt.io/Skylake-Client-IBRS"] == "true"
        assert selector["cpu-vendor.node.kubevirt.io/Intel"] == "true"
        assert selector["cpu-feature.node.kubevirt.io/acpi"] == "true"   # a required feature of the host model
        assert cond["message"] == ("0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector. "
                                   "preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling.")
