"""The parts of a node that cannot run here, played on the KubeVirt tier: kube-scheduler's binding,
the kubelet's pod status and virt-handler's VMI status. Each does only what the named code does and
only when the real controllers have done their part first (virt-controller made the Pod; the VMI is
Scheduled by virt-controller before the played virt-handler reports it Running).
"""
from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest

from tests.harness.apiserver import ApiError

NODE = "node01"
MERGE = "application/merge-patch+json"


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def ensure_node(cluster, name: str = NODE) -> None:
    """A schedulable KubeVirt node as virt-handler leaves it (kubevirt.io/schedulable, set by
    pkg/virt-handler/heartbeat). No heartbeat annotation: virt-controller's node controller then
    treats it as responsive (pkg/virt-controller/watch/node/node.go isNodeUnresponsive)."""
    try:
        cluster.request("POST", "/api/v1/nodes", {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                                                  "kubernetes.io/arch": "amd64", "kubevirt.io/schedulable": "true"}}})
    except ApiError as e:
        if e.status != 409:
            raise


def wait_for(what: str, get, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while True:
        got = get()
        if got:
            return got
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.2)


def launcher_pods(cluster, namespace: str, vmi_uid: str) -> list[dict]:
    return cluster.request("GET", f"/api/v1/namespaces/{namespace}/pods"
                                  f"?labelSelector=kubevirt.io/created-by={vmi_uid}")["items"]


def bind_and_run(cluster, pod: dict, node: str = NODE) -> None:
    """kube-scheduler binds (pods/binding), then the kubelet starts every container and reports the
    pod Running and Ready (what controller.IsPodReady in pkg/controller/controller.go reads)."""
    ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
    cluster.request("POST", f"/api/v1/namespaces/{ns}/pods/{name}/binding", {
        "apiVersion": "v1", "kind": "Binding", "metadata": {"name": name},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node}})
    t = now()
    running = [{"name": c["name"], "image": c["image"], "imageID": "", "ready": True, "started": True,
                "restartCount": 0, "state": {"running": {"startedAt": t}}} for c in pod["spec"]["containers"]]
    cluster.request("PATCH", f"/api/v1/namespaces/{ns}/pods/{name}/status", {"status": {
        "phase": "Running", "hostIP": "192.0.2.100", "podIP": "10.244.0.10", "podIPs": [{"ip": "10.244.0.10"}],
        "startTime": t, "qosClass": "Burstable", "containerStatuses": running,
        "conditions": [{"type": t_, "status": "True", "lastTransitionTime": t}
                       for t_ in ("PodScheduled", "Initialized", "ContainersReady", "Ready")]}},
        content_type=MERGE)


def handler_reports_running(install, vmi: dict) -> None:
    """virt-handler, once the domain runs: phase Running and the conditions it owns (Ready from the
    launcher's readiness, LiveMigratable from pkg/virt-handler/... calculateLiveMigrationCondition).
    As virt-handler's service account: virt-api lets only KubeVirt's accounts change VMI status."""
    ns, name = vmi["metadata"]["namespace"], vmi["metadata"]["name"]
    t = now()
    install.request_as("kubevirt-handler", node=vmi["status"]["nodeName"])("PATCH", f"/apis/kubevirt.io/v1/namespaces/{ns}/virtualmachineinstances/{name}", {
        "status": {"phase": "Running", "conditions": [
            {"type": "Ready", "status": "True", "lastProbeTime": None, "lastTransitionTime": t},
            {"type": "LiveMigratable", "status": "True", "lastProbeTime": None, "lastTransitionTime": t},
            {"type": "StorageLiveMigratable", "status": "True", "lastProbeTime": None, "lastTransitionTime": t}]}},
        content_type=MERGE)


def run_vm(install, namespace: str, vm: dict) -> dict:
    """Create the VM; the real virt-controller makes its VMI and launcher Pod; the played scheduler,
    kubelet and virt-handler take it to Running. Returns the Running VMI.
    `install`: the cluster's KubeVirtInstall (tests/harness/kubevirt.py)."""
    cluster = install.cluster
    ensure_node(cluster)
    cluster.request("POST", f"/apis/kubevirt.io/v1/namespaces/{namespace}/virtualmachines", vm)
    name = vm["metadata"]["name"]
    vmi_path = f"/apis/kubevirt.io/v1/namespaces/{namespace}/virtualmachineinstances/{name}"

    def get_vmi():
        try:
            return cluster.request("GET", vmi_path)
        except ApiError as e:
            if e.status == 404:
                return None
            raise
    vmi = wait_for("virt-controller to create the VMI", get_vmi)
    pod = wait_for("virt-controller to create the launcher Pod",
                   lambda: launcher_pods(cluster, namespace, vmi["metadata"]["uid"]))[0]
    bind_and_run(cluster, pod)
    vmi = wait_for("virt-controller to hand the VMI over (Scheduled)",
                   lambda: (v := get_vmi()) and v.get("status", {}).get("phase") == "Scheduled" and v)
    handler_reports_running(install, vmi)
    return wait_for("the VMI to be Running",
                    lambda: (v := get_vmi()) and v.get("status", {}).get("phase") == "Running" and v)
