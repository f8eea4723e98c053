"""tier.Tier, the facade tests/e2e drive the KubeVirt tier through: what it returns is what the real
controllers and the played parts left on the API servers."""
from __future__ import annotations

import pytest

from tests.kubevirt import handler
from tests.kubevirt.tier import Faults, Tier, live_migratable, vm_manifest


def test_run_vm_returns_the_running_vmi_and_get_says_none_for_what_is_absent(kubevirt):
    ns = kubevirt.namespaces("source", "target")
    vmi = kubevirt.run_vm("source", ns, vm_manifest("vm1"))
    assert live_migratable(vmi) and vmi["status"]["nodeName"] in ("node01", "node02")
    assert kubevirt.get("source", "vm", ns, "vm1")["spec"]["runStrategy"] == "Always"
    assert kubevirt.get("target", "vm", ns, "vm1") is None   # same name on target, nothing there
    assert [v["metadata"]["name"] for v in kubevirt.list("source", "vmi", ns)] == ["vm1"]
    assert kubevirt.get("source", "kubevirt", "kubevirt", "kubevirt")["status"]["phase"] == "Deployed"
    # stopping: the real VM controller deletes the VMI (vm.go, runStrategy Halted)
    kubevirt.request("source", "PATCH", f"/apis/kubevirt.io/v1/namespaces/{ns}/virtualmachines/vm1",
                     {"spec": {"runStrategy": "Halted"}}, "application/merge-patch+json")
    kubevirt.wait_gone("source", "vmi", ns, "vm1")
    with pytest.raises(TimeoutError, match="VMI back on source vmi"):
        kubevirt.wait_for("source", "vmi", ns, "vm1", timeout=0.3, what="VMI back")


def test_knobs_are_put_back_and_namespaces_deleted(kubevirt_clusters, node_sides, cdis, handlers):
    before = handler.NETWORK.transfer_seconds
    tier = Tier(kubevirt_clusters, node_sides, cdis, handlers, stem="tier-close")
    ns = tier.namespaces("source", "target")
    tier.faults.transfer_seconds = before + 7
    tier.faults.fail_next_transfer("broken")
    tier.faults.transfer_bytes, tier.faults.dirty_rate = 2**30, 2**20
    tier.faults.fail_target_at = tier.faults.fail_source_at = 0.5
    tier.faults.target_pod_never_ready = True
    tier.faults.stop_handler_metrics("source")
    assert handler.NETWORK.transfer_seconds == before + 7 and handler.NETWORK.dirty_rate == 2**20
    assert all(side._next for side in node_sides.values()) and handlers["source"].pods.silent
    tier.close()
    assert handler.NETWORK.transfer_seconds == before and not handler.NETWORK._fail_next
    assert handler.NETWORK.transfer_bytes is None and handler.NETWORK.dirty_rate == 0
    assert handler.NETWORK.fail_target_at is None and handler.NETWORK.fail_source_at is None
    assert not any(side._next for side in node_sides.values()) and not handlers["source"].pods.silent
    for c in kubevirt_clusters:
        assert tier.get(c.name, "vm", ns, "x") is None
        assert all(n["metadata"]["name"] != ns for n in c.request("GET", "/api/v1/namespaces")["items"]
                   if not n["metadata"].get("deletionTimestamp"))
    assert isinstance(tier.faults, Faults)
