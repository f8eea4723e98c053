"""Helpers for tests on the KubeVirt tier: waiting, and a VM taken to Running by the real
controllers with the played node side (kube-scheduler and the kubelet: nodes.py; virt-handler:
handler.py), each doing only what the named code does once the real controllers did their part.
"""
from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest

from tests.harness.apiserver import ApiError
from tests.kubevirt.handler import handler_for
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


def run_vm(install, namespace: str, vm: dict) -> dict:
    """Create the VM; the real virt-controller makes its VMI and launcher Pod; the played scheduler,
    kubelet and virt-handler take it to Running. Returns the Running VMI.
    `install`: the cluster's KubeVirtInstall (tests/harness/kubevirt.py)."""
    cluster = install.cluster
    node_side(cluster)   # the played scheduler and kubelet (nodes.py)
    handler_for(install)   # the played virt-handler (handler.py)
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
    return wait_for("the VMI to be Running",
                    lambda: (v := get_vmi()) and v.get("status", {}).get("phase") == "Running" and v)
