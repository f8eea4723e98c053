"""The parts of a node that cannot run here, played on the KubeVirt tier: virt-handler's VMI status
(kube-scheduler and the kubelet: nodes.py). Each does only what the named code does and
only when the real controllers have done their part first (virt-controller made the Pod; the VMI is
Scheduled by virt-controller before the played virt-handler reports it Running).
"""
from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest

from tests.harness.apiserver import ApiError
from tests.kubevirt.nodes import node_side

MERGE = "application/merge-patch+json"


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


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


def handler_reports_running(install, vmi: dict) -> None:
    """virt-handler, once the domain runs: phase Running and the conditions it owns (Ready from the
    launcher's readiness, LiveMigratable from pkg/virt-handler/... calculateLiveMigrationCondition).
    As virt-handler's service account: virt-api lets only KubeVirt's accounts change VMI status."""
    ns, name = vmi["metadata"]["namespace"], vmi["metadata"]["name"]
    t = now()
    install.request_as("kubevirt-handler", node=vmi["status"]["nodeName"])("PATCH", f"/apis/kubevirt.io/v1/namespaces/{ns}/virtualmachineinstances/{name}", {
        # selinuxContext "none" where SELinux is absent (pkg/virt-handler/vm.go:1043-1045); the
        # migration controller refuses to build a target pod without it (migration.go:858-868).
        "status": {"phase": "Running", "selinuxContext": "none", "conditions": [
            {"type": "Ready", "status": "True", "lastProbeTime": None, "lastTransitionTime": t},
            {"type": "LiveMigratable", "status": "True", "lastProbeTime": None, "lastTransitionTime": t},
            {"type": "StorageLiveMigratable", "status": "True", "lastProbeTime": None, "lastTransitionTime": t}]}},
        content_type=MERGE)


def run_vm(install, namespace: str, vm: dict) -> dict:
    """Create the VM; the real virt-controller makes its VMI and launcher Pod; the played scheduler,
    kubelet and virt-handler take it to Running. Returns the Running VMI.
    `install`: the cluster's KubeVirtInstall (tests/harness/kubevirt.py)."""
    cluster = install.cluster
    node_side(cluster)   # the played scheduler and kubelet (nodes.py)
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
    wait_for("the played scheduler and kubelet to run the launcher Pod",
             lambda: cluster.request("GET", f"/api/v1/namespaces/{namespace}/pods/{pod['metadata']['name']}")
             .get("status", {}).get("phase") == "Running")
    vmi = wait_for("virt-controller to hand the VMI over (Scheduled)",
                   lambda: (v := get_vmi()) and v.get("status", {}).get("phase") == "Scheduled" and v)
    handler_reports_running(install, vmi)
    return wait_for("the VMI to be Running",
                    lambda: (v := get_vmi()) and v.get("status", {}).get("phase") == "Running" and v)
