"""Cancel by deleting a VMIM, exactly as KubeVirt handles it (dlm-state-machine.md §2.3-§2.6)."""
from __future__ import annotations

import time

from .scenario import Migration, condition, delete, phase, trust_each_other


def ms(obj):
    return ((obj or {}).get("status") or {}).get("migrationState") or {}


def running(sim, namespaces, same_cluster: bool, seconds: float = 2.0) -> Migration:
    """A migration whose transfer is under way (both VMIMs Running)."""
    sim.faults.transfer_seconds = seconds
    if same_cluster:
        m = Migration(sim, namespaces("source"), src="source", tgt="source", tgt_namespace=namespaces("source"))
    else:
        trust_each_other(sim)
        m = Migration(sim, namespaces("source", "target"))
    m.prepare()
    src = m.create_source_vmim()
    m.create_target_vmim()
    m.wait_phase("target", "Running")
    m.src_uid = src["metadata"]["uid"]
    return m


def assert_cancelled_end_state(sim, m: Migration) -> None:
    """§2.3 step 7 (LM:450-488, NS:641-654)."""
    sim.wait_gone(m.src, "vmim", m.ns, m.src_vmim)
    sim.wait_gone(m.tgt, "vmim", m.tgt_ns, m.tgt_vmim)
    src = sim.get(m.src, "vmi", m.ns, "vm1")
    state = ms(src)
    assert phase(src) == "Running"
    assert state["abortRequested"] is True and state["abortStatus"] == "Succeeded"
    assert state["failed"] is True and state["completed"] is True
    assert state["migrationUid"] == m.src_uid
    sim.wait_for(m.tgt, "vmi", m.tgt_ns, "vm1", lambda o: phase(o) == "WaitingForSync")


def test_delete_source_vmim_same_cluster(kubevirt_sim, namespaces):
    sim = kubevirt_sim
    m = running(sim, namespaces, same_cluster=True)
    delete(sim, m.src, "vmim", m.ns, m.src_vmim)
    aborting = m.wait_vmim("source", lambda o: o is None or condition(o, "migrationAbortRequested") is not None)
    if aborting is not None:  # the condition has no reason and no message (MC:577-583)
        cond = condition(aborting, "migrationAbortRequested")
        assert cond["status"] == "True" and "reason" not in cond and "message" not in cond
    assert_cancelled_end_state(sim, m)
    # the target went through the abort too (HT:237-276)
    tgt = ms(sim.get(m.tgt, "vmi", m.tgt_ns, "vm1"))
    assert tgt["failed"] and tgt["completed"] and tgt["abortStatus"] == "Succeeded"


def test_delete_target_vmim_same_cluster(kubevirt_sim, namespaces):
    """§2.4: the target's sync controller cancels the source VMIM; same end state."""
    sim = kubevirt_sim
    m = running(sim, namespaces, same_cluster=True)
    delete(sim, m.tgt, "vmim", m.tgt_ns, m.tgt_vmim)
    assert_cancelled_end_state(sim, m)


def test_delete_source_vmim_across_clusters(kubevirt_sim, namespaces):
    """§2.5: no CancelMigration across clusters; the pushed abort state still fails the target VMIM,
    which is left Failed, not deleted."""
    sim = kubevirt_sim
    m = running(sim, namespaces, same_cluster=False)
    delete(sim, m.src, "vmim", m.ns, m.src_vmim)
    sim.wait_gone(m.src, "vmim", m.ns, m.src_vmim)
    tgt = m.wait_phase("target", "Failed")
    assert condition(tgt, "migrationAbortRequested") is None
    sim.wait_for(m.tgt, "vmi", m.tgt_ns, "vm1", lambda o: phase(o) == "WaitingForSync")
    time.sleep(0.5)
    assert phase(sim.get(m.tgt, "vmim", m.tgt_ns, m.tgt_vmim)) == "Failed"


def test_delete_target_vmim_across_clusters_is_not_propagated(kubevirt_sim, namespaces):
    """§2.5: the source is never told. The transfer finishes, the target ignores the abort once its
    domain is active; the source VMIM is not cancelled (orchestrators must delete both)."""
    sim = kubevirt_sim
    m = running(sim, namespaces, same_cluster=False, seconds=1.0)
    delete(sim, m.tgt, "vmim", m.tgt_ns, m.tgt_vmim)
    sim.wait_gone(m.tgt, "vmim", m.tgt_ns, m.tgt_vmim)
    src = sim.get(m.src, "vmim", m.ns, m.src_vmim)
    assert src is not None and phase(src) not in ("Failed", "Succeeded")
    assert not src["metadata"].get("deletionTimestamp")


def test_cancel_while_synchronizing_fails_at_once(kubevirt_sim, namespaces):
    """§2.3 step 2 / §2.6: before the hand-off a deleted VMIM goes Failed at once, then away."""
    sim = kubevirt_sim
    ns = namespaces("source", "target")
    m = Migration(sim, ns)
    m.prepare()
    m.create_target_vmim()
    m.wait_phase("target", "WaitingForSync")
    delete(sim, m.tgt, "vmim", ns, m.tgt_vmim)
    sim.wait_gone("target", "vmim", ns, m.tgt_vmim)
    assert phase(sim.get("target", "vmi", ns, "vm1")) == "WaitingForSync"
