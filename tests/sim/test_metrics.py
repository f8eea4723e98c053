"""Transfer progress exists only as virt-handler's Prometheus metrics (dlm-state-machine.md §0)."""
from __future__ import annotations

import re
import time

import pytest

from .scenario import Migration, trust_each_other


def samples(text: str, name: str) -> dict[str, float]:
    out = {}
    for m in re.finditer(rf"^{name}\{{([^}}]*)\}} (\S+)$", text, re.M):
        out[m.group(1)] = float(m.group(2))
    return out


def test_metrics_during_a_slow_transfer(kubevirt_sim, namespaces):
    sim = kubevirt_sim
    sim.faults.transfer_seconds = 1.5
    sim.faults.transfer_bytes = 1000 * 2**20
    ns = namespaces("source", "target")
    trust_each_other(sim)
    m = Migration(sim, ns)
    m.prepare()
    idle = sim.scrape()
    assert "# TYPE kubevirt_vmi_migration_data_processed_bytes gauge" in idle
    assert not samples(idle, "kubevirt_vmi_migration_data_processed_bytes")
    m.create_target_vmim()
    m.create_source_vmim()
    m.wait_phase("source", "Running")
    t0 = time.monotonic()
    first = sim.scrape()
    time.sleep(0.3)
    second = sim.scrape()
    labels = f'name="vm1",namespace="{ns}",node="source-node01"'
    p1 = samples(first, "kubevirt_vmi_migration_data_processed_bytes")[labels]
    p2 = samples(second, "kubevirt_vmi_migration_data_processed_bytes")[labels]
    r2 = samples(second, "kubevirt_vmi_migration_data_remaining_bytes")[labels]
    assert 0 <= p1 < p2 < 1000 * 2**20 and p2 + r2 == 1000 * 2**20
    assert samples(second, "kubevirt_vmi_migration_memory_transfer_rate_bytes")[labels] == int(1000 * 2**20 / 1.5)
    assert samples(second, "kubevirt_vmi_migration_data_bytes_total")[labels] == 1000 * 2**20
    assert "# HELP kubevirt_vmi_migration_data_remaining_bytes The remaining guest OS data to be migrated" in second
    assert not samples(sim.scrape("target"), "kubevirt_vmi_migration_data_processed_bytes")  # source node only
    m.wait_phase("target", "Succeeded")
    assert time.monotonic() - t0 > 1.0  # the transfer took its time
    assert not samples(sim.scrape(), "kubevirt_vmi_migration_data_processed_bytes")
    assert sim.metrics_url.startswith("http://127.0.0.1:") and sim.metrics_url.endswith("/metrics")


def test_each_virt_handler_pod_serves_its_own_node_through_the_pod_proxy(kubevirt_sim, namespaces, clusters):
    """A Running pod per node, labelled as virt-handler's DaemonSet labels its pods, whose "metrics"
    port answers through the API server's pod proxy with the series of that node's VMIs only."""
    sim = kubevirt_sim
    if not sim.handler_pods.pods:
        pytest.skip("no virt-handler pods: this machine has no global unicast address for them")
    sim.faults.transfer_seconds = 3
    ns = namespaces("source", "target")
    trust_each_other(sim)
    m = Migration(sim, ns)
    m.prepare()
    pods = clusters.source.request("GET", "/api/v1/namespaces/kubevirt/pods?labelSelector=kubevirt.io%3Dvirt-handler")
    by_node = {p["spec"]["nodeName"]: p for p in pods["items"]}
    assert sorted(by_node) == ["source-node01", "source-node02", "source-node03"]
    assert all(p["status"]["phase"] == "Running" for p in by_node.values())

    def through_proxy(node: str) -> str:
        pod = by_node[node]
        port = next(p["containerPort"] for p in pod["spec"]["containers"][0]["ports"] if p["name"] == "metrics")
        return clusters.source.request(
            "GET", f"/api/v1/namespaces/kubevirt/pods/https:{pod['metadata']['name']}:{port}/proxy/metrics")
    m.create_target_vmim()
    m.create_source_vmim()
    m.wait_phase("source", "Running")
    labels = f'name="vm1",namespace="{ns}",node="source-node01"'
    assert labels in samples(through_proxy("source-node01"), "kubevirt_vmi_migration_data_processed_bytes")
    for other in ("source-node02", "source-node03"):
        text = through_proxy(other)
        assert "# TYPE kubevirt_vmi_migration_data_processed_bytes gauge" in text
        assert not samples(text, "kubevirt_vmi_migration_data_processed_bytes")
    m.wait_phase("target", "Succeeded")
