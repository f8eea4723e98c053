"""Transfer progress exists only as virt-handler's Prometheus metrics (dlm-state-machine.md §0)."""
from __future__ import annotations

import re
import time

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
