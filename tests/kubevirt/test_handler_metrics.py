"""virt-handler's Pods and metrics endpoint on the KubeVirt tier (tests/kubevirt/handler_pods.py):
the Pods virt-operator's DaemonSet makes, and `kubectl dlm migrate` reading transfer progress from
the source node's one through the API server's pod proxy when no --prometheus-url is given."""
from __future__ import annotations

import json

import pytest

from kubectl_dlm import errors
from tests.harness.apiserver import pod_address
from tests.kubevirt import handler
from tests.kubevirt.played import wait_for
from tests.kubevirt.test_dlm_e2e import assert_moved, dlm, dump, start_vm  # noqa: F401 - dlm is a fixture

pytestmark = pytest.mark.skipif(pod_address() is None, reason="no global unicast address for virt-handler's pod IP "
                                                                 "(the pod proxy refuses loopback)")
ARGS = ("--sync-timeout", "60", "--timeout", "60", "-o", "json")


def handler_pods(cluster) -> list[dict]:
    return cluster.request("GET", "/api/v1/namespaces/kubevirt/pods?labelSelector=kubevirt.io%3Dvirt-handler")["items"]


def test_a_running_virt_handler_pod_per_node_serves_metrics_through_the_pod_proxy(kubevirt_clusters, handlers):
    for c in kubevirt_clusters:
        nodes = sorted(n["metadata"]["name"] for n in c.request("GET", "/api/v1/nodes")["items"])
        pods = wait_for(f"{c.name}: a virt-handler pod per node",
                        lambda: (p := handler_pods(c)) and len(p) == len(nodes) and p)
        assert sorted(p["spec"]["nodeName"] for p in pods) == nodes
        for pod in pods:
            labels = pod["metadata"]["labels"]
            assert labels["kubevirt.io"] == "virt-handler" and labels["prometheus.kubevirt.io"] == "true"
            assert pod["metadata"]["name"].startswith("virt-handler-")
            assert pod["status"]["phase"] == "Running" and pod["status"]["podIP"] == pod_address()
            [container] = pod["spec"]["containers"]
            assert container["name"] == "virt-handler"
            assert [p["name"] for p in container["ports"]] == ["metrics", "vmstats"]
        name, port = pods[0]["metadata"]["name"], pods[0]["spec"]["containers"][0]["ports"][0]["containerPort"]
        text = c.request("GET", f"/api/v1/namespaces/kubevirt/pods/https:{name}:{port}/proxy/metrics")
        assert "# TYPE kubevirt_vmi_migration_data_bytes_total counter" in text
        assert "# HELP kubevirt_vmi_migration_memory_transfer_rate_bytes The rate at which the memory is being " \
               "transferred." in text


@pytest.fixture
def network():
    """handler.NETWORK, its knobs put back after the test."""
    saved = (handler.NETWORK.transfer_seconds, handler.NETWORK.transfer_bytes, handler.NETWORK.dirty_rate)
    yield handler.NETWORK
    handler.NETWORK.transfer_seconds, handler.NETWORK.transfer_bytes, handler.NETWORK.dirty_rate = saved


def test_migrate_without_prometheus_shows_the_figures_the_source_handler_served(kubevirt_clusters, kv_namespace,
                                                                                  dlm, network):
    """Also in tests/e2e/test_survive.py::
    test_without_prometheus_progress_is_read_from_virt_handler_through_the_pod_proxy."""
    ns = kv_namespace
    start_vm(kubevirt_clusters, ns)
    network.transfer_seconds = 8
    network.transfer_bytes = total = 3 * 2**30 + 12345   # a figure only the played libvirt knows
    code, out, err = dlm("migrate", "vm1", "--context", "source", "-n", ns, "--to-context", "target", *ARGS)
    assert code == errors.OK, out + err + dump(kubevirt_clusters, ns)
    events = [json.loads(line) for line in out.splitlines()]
    assert not [e for e in events if e.get("event") == "notice" and "transfer progress" in e["message"]], out
    progress = [e["progress"] for e in events if e.get("event") == "status" and e.get("progress")]
    assert progress, out
    for p in progress:   # one consistent reading of this VMI's job each time
        assert p["total"] == total and p["processed"] + p["remaining"] == total, p
        assert p["rate"] == int(total / 8) and p["dirty_rate"] == 0, p
    processed = [p["processed"] for p in progress]
    assert processed == sorted(processed) and 0 < processed[-1] <= total, processed
    assert [e["outcome"] for e in events if e.get("event") == "finished"] == ["succeeded"], out
    assert_moved(kubevirt_clusters, "source", ns, "target", ns)


def test_migrate_says_once_when_the_handler_metrics_port_does_not_answer(kubevirt_clusters, kv_namespace, dlm,
                                                                         handlers, network):
    """Also in tests/e2e/test_survive.py::
    test_without_prometheus_it_says_once_why_progress_is_unavailable."""
    ns = kv_namespace
    start_vm(kubevirt_clusters, ns)
    network.transfer_seconds = 6
    handlers["source"].stop_metrics()
    try:
        code, out, err = dlm("migrate", "vm1", "--context", "source", "-n", ns, "--to-context", "target", *ARGS)
    finally:
        handlers["source"].serve_metrics()
    assert code == errors.OK, out + err + dump(kubevirt_clusters, ns)
    events = [json.loads(line) for line in out.splitlines()]
    notices = [e["message"] for e in events if e.get("event") == "notice" and "transfer progress" in e["message"]]
    assert len(notices) == 1, out
    assert "get pods/proxy kubevirt/virt-handler-" in notices[0] and "error trying to reach service" in notices[0]
    assert not [e for e in events if e.get("event") == "status" and e.get("progress")], out
    assert [e["outcome"] for e in events if e.get("event") == "finished"] == ["succeeded"], out
