"""Injected faults: the end states of dlm-state-machine.md §2.1, §2.2, §2.6, §2.8 and an API server restart."""
from __future__ import annotations

import time

from .scenario import (Migration, Recorder, condition, create, delete, phase, receiver_manifest, trust_each_other,
                       vm_manifest, vmim)

REFUSED = ('rpc error: code = Unavailable desc = connection error: desc = "transport: Error while dialing: '
           'dial tcp {}: connect: connection refused"')


def ms(obj):
    return ((obj or {}).get("status") or {}).get("migrationState") or {}


def printable(o):
    return ((o or {}).get("status") or {}).get("printableStatus")


def started(sim, namespaces, transfer_seconds=1.0, **kw) -> Migration:
    sim.faults.transfer_seconds = transfer_seconds
    ns = namespaces("source", "target")
    trust_each_other(sim)
    m = Migration(sim, ns, **kw)
    m.prepare()
    m.create_target_vmim()
    m.create_source_vmim()
    return m


def test_target_dies_mid_transfer(kubevirt_sim, namespaces):
    """§2.1: both VMIMs Failed and kept, source VM untouched, target back to waiting. No retry."""
    sim = kubevirt_sim
    sim.faults.fail_target_at = 0.5
    m = started(sim, namespaces)
    tgt = m.wait_phase("target", "Failed")
    src = m.wait_phase("source", "Failed")
    assert "Running" in [p["phase"] for p in src["status"]["phaseTransitionTimestamps"]]
    tgt_vmi = sim.wait_for("target", "vmi", m.ns, "vm1", lambda o: phase(o) == "WaitingForSync")
    assert ms(tgt_vmi)["failed"] and ms(tgt_vmi)["completed"]
    assert ms(tgt_vmi)["failureReason"] == "Target pod is down"
    assert "kubevirt.io/create-migration-target" in tgt_vmi["metadata"]["annotations"]  # kept on failure
    src_vmi = sim.get("source", "vmi", m.ns, "vm1")
    assert phase(src_vmi) == "Running" and ms(src_vmi)["failed"] and ms(src_vmi)["completed"]
    sim.wait_for("target", "vm", m.ns, "vm1", lambda o: printable(o) == "WaitingForReceiver")
    src_vm = sim.wait_for("source", "vm", m.ns, "vm1", lambda o: printable(o) == "Running")
    assert src_vm["spec"]["runStrategy"] == "Always"
    time.sleep(1)  # nothing retries, nothing deletes them
    assert phase(sim.get("source", "vmim", m.ns, m.src_vmim)) == "Failed"
    tgt = sim.get("target", "vmim", m.ns, m.tgt_vmim)
    assert phase(tgt) == "Failed" and not tgt["metadata"].get("finalizers")
    assert ms(tgt)["migrationUid"] == tgt["metadata"]["uid"]  # the final VMIM copied the VMI's state


def test_source_dies_mid_transfer(kubevirt_sim, namespaces):
    """§2.2: the source VMI fails, an Always VM is halted, its VMIM goes with the VMI; the target
    fails on its own and waits again."""
    sim = kubevirt_sim
    sim.faults.fail_source_at = 0.5
    rec = Recorder(sim, kinds=("vmi", "vmim"))
    try:
        m = started(sim, namespaces)
        src_vm = sim.wait_for("source", "vm", m.ns, "vm1", lambda o: printable(o) == "Stopped")
        assert src_vm["spec"]["runStrategy"] == "Halted"
        sim.wait_gone("source", "vmim", m.ns, m.src_vmim)
        m.wait_phase("target", "Failed")
    finally:
        rec.stop()
    failed = [o for _, o in rec.history("source", "vmi", m.ns, "vm1") if phase(o) == "Failed"]
    assert failed and ms(failed[-1])["failed"] and ms(failed[-1])["completed"]  # HS:273-278
    assert rec.sequence("source", "vmim", m.ns, m.src_vmim)[-1] == "Failed"
    assert rec.deleted("source", "vmi", m.ns, "vm1")
    sim.wait_for("target", "vmi", m.ns, "vm1", lambda o: phase(o) == "WaitingForSync")
    sim.wait_for("target", "vm", m.ns, "vm1", lambda o: printable(o) == "WaitingForReceiver")


def test_unreachable_peer_stalls_until_cancelled(kubevirt_sim, namespaces):
    """§2.6: no timeout; each VMIM mirrors its own VMI's condition; cancelling fails it at once."""
    sim = kubevirt_sim
    ns = namespaces("source", "target")
    m = Migration(sim, ns)
    m.prepare()
    m.create_target_vmim()
    m.create_source_vmim(connect_url="203.0.113.7:9185")
    src = m.wait_vmim("source", lambda o: condition(o, "decentralizedMigrationBlocked") is not None)
    tgt = m.wait_vmim("target", lambda o: condition(o, "decentralizedMigrationBlocked") is not None)
    assert condition(src, "decentralizedMigrationBlocked")["message"] == REFUSED.format("203.0.113.7:9185")
    assert condition(tgt, "decentralizedMigrationBlocked")["message"] == \
        "waiting for incoming synchronization, unable to proceed"
    time.sleep(1.5)  # retried all along, never advanced, never failed
    src = sim.get("source", "vmim", ns, m.src_vmim)
    assert phase(src) == "Synchronizing" and phase(sim.get("target", "vmim", ns, m.tgt_vmim)) == "WaitingForSync"
    assert condition(src, "decentralizedMigrationBlocked")["reason"] == "DecentralizedNotLiveMigratable"
    delete(sim, "source", "vmim", ns, m.src_vmim)
    sim.wait_gone("source", "vmim", ns, m.src_vmim)
    # half-initialised state stays on the VMI; it is reset only on `completed` (DZ:39)
    assert ms(sim.get("source", "vmi", ns, "vm1"))["sourceState"]["migrationUID"] == src["metadata"]["uid"]


def test_blocked_sync_times_out(kubevirt_sim, namespaces):
    """A peer that drops packets: the gRPC deadline message (after faults.dial_timeout, not 30 s)."""
    sim = kubevirt_sim
    sim.faults.dial_timeout = 0.2
    sim.faults.block_sync("target", mode="timeout")
    ns = namespaces("source", "target")
    trust_each_other(sim)
    m = Migration(sim, ns)
    m.prepare()
    m.create_target_vmim()
    m.create_source_vmim()
    src = m.wait_vmim("source", lambda o: condition(o, "decentralizedMigrationBlocked") is not None)
    assert condition(src, "decentralizedMigrationBlocked")["message"] == \
        "rpc error: code = DeadlineExceeded desc = context deadline exceeded"
    sim.faults.unblock_sync("target")  # the source keeps retrying: it gets through now
    m.wait_phase("target", "Succeeded")


def test_feature_gate_off(kubevirt_sim, namespaces):
    """§2.8: addresses withdrawn, webhooks reject DLM objects, admitted ones stall silently."""
    sim = kubevirt_sim
    ns = namespaces("source", "target")
    m = Migration(sim, ns)
    m.prepare()
    tgt = m.create_target_vmim()
    m.wait_phase("target", "WaitingForSync")
    sim.faults.disable_feature_gate("target")
    sim.wait_for("target", "kubevirt", "kubevirt", "kubevirt",
                 lambda o: "synchronizationAddresses" not in o["status"], what="addresses withdrawn")
    m.wait_vmim("target", lambda o: "synchronizationAddresses" not in o["status"], what="nil copied into the VMIM")
    sim.expect_violations(
        "Invalid RunStrategy (WaitAsReceiver), DecentralizedLiveMigration feature gate is not enabled",
        "DecentralizedLiveMigration feature gate is not enabled in kubevirt resource")
    src_vm = sim.get("source", "vm", ns, "vm1")
    vm2 = receiver_manifest(src_vm)
    vm2["metadata"]["name"] = "vm2"
    create(sim, "target", "vm", ns, vm2)
    time.sleep(0.5)
    assert sim.get("target", "vmi", ns, "vm2") is None  # a denied VM is never started
    sim.run_vm("target", ns, vm_manifest("vm3"))
    create(sim, "target", "vmim", ns, vmim("out-3", "vm3", "other-id", connect_url="192.0.2.10:9185"))
    time.sleep(0.5)
    assert phase(sim.get("target", "vmim", ns, "out-3")) is None  # denied: no controller touches it
    m.create_source_vmim()  # the target's address is gone: the source cannot connect
    src = m.wait_vmim("source", lambda o: condition(o, "decentralizedMigrationBlocked") is not None)
    assert "connection refused" in condition(src, "decentralizedMigrationBlocked")["message"]
    assert phase(sim.get("target", "vmim", ns, m.tgt_vmim)) == "WaitingForSync"
    assert tgt["metadata"]["uid"] == sim.get("target", "vmim", ns, m.tgt_vmim)["metadata"]["uid"]


def test_api_server_restart_mid_migration(kubevirt_sim, namespaces, clusters):
    """The watches break, retry with backoff, resume (or relist on 410) and the migration completes."""
    sim = kubevirt_sim
    m = started(sim, namespaces, transfer_seconds=2)
    m.wait_phase("target", "Running")
    clusters.target.restart_apiserver(down_seconds=0.5)
    m.wait_phase("target", "Succeeded", timeout=30)
    sim.wait_gone("source", "vmim", m.ns, m.src_vmim, timeout=30)
    vm = sim.wait_for("target", "vm", m.ns, "vm1", lambda o: printable(o) == "Running", timeout=30)
    assert vm["spec"]["runStrategy"] == "Always"
