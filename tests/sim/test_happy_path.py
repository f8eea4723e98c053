"""The simulator's happy path, checked against dlm-state-machine.md §1 and §4."""
from __future__ import annotations

from .scenario import Migration, Recorder, condition, phase, phases, trust_each_other, vm_manifest

SRC_LADDER = ["Synchronizing", "Pending", "Scheduling", "Scheduled", "PreparingTarget", "TargetReady", "Running",
              "Succeeded"]
TGT_LADDER = ["WaitingForSync", "Pending", "Scheduling", "Scheduled", "PreparingTarget", "TargetReady", "Running",
              "Succeeded"]


def printable(o):
    return (o.get("status") or {}).get("printableStatus")


def test_cross_cluster_migration_walks_both_ladders(kubevirt_sim, namespaces):
    sim = kubevirt_sim
    sim.faults.transfer_seconds = 0.5
    ns = namespaces("source", "target")
    trust_each_other(sim)
    rec = Recorder(sim)
    try:
        m = Migration(sim, ns)
        m.prepare()
        tgt = m.create_target_vmim()
        m.wait_vmim("target", lambda o: condition(o, "decentralizedMigrationBlocked") is not None,
                    what="transient waiting condition")
        src = m.create_source_vmim()
        m.wait_phase("target", "Succeeded")
        final_tgt = m.wait_vmim("target", lambda o: not o["metadata"].get("finalizers"), what="finalizers removed")
        sim.wait_gone("source", "vmim", ns, m.src_vmim)  # MC deletes it once its VMI is gone (§4)
        sim.wait_gone("source", "vmi", ns, "vm1")
        tgt_vmi = sim.wait_for("target", "vmi", ns, "vm1", lambda o: phase(o) == "Running")
        tgt_vm = sim.wait_for("target", "vm", ns, "vm1", lambda o: printable(o) == "Running")
        src_vm = sim.wait_for("source", "vm", ns, "vm1", lambda o: printable(o) == "Stopped")
    finally:
        rec.stop()

    # one transition per write, one timestamp per phase
    last_src = rec.last("source", "vmim", ns, m.src_vmim)
    assert rec.sequence("source", "vmim", ns, m.src_vmim) == SRC_LADDER
    assert phases(last_src) == SRC_LADDER
    assert rec.sequence("target", "vmim", ns, m.tgt_vmim) == TGT_LADDER
    assert phases(final_tgt) == TGT_LADDER
    assert rec.sequence("target", "vmi", ns, "vm1") == ["Pending", "WaitingForSync", "Scheduling", "Scheduled",
                                                        "Running"]
    assert rec.sequence("source", "vmi", ns, "vm1")[-2:] == ["Running", "Succeeded"]
    assert rec.deleted("source", "vmi", ns, "vm1") and rec.deleted("source", "vmim", ns, m.src_vmim)
    assert rec.sequence("source", "vm", ns, "vm1", printable)[-4:] == ["Running", "Migrating", "Running", "Stopped"]
    tgt_printable = rec.sequence("target", "vm", ns, "vm1", printable)
    assert tgt_printable[tgt_printable.index("WaitingForReceiver"):] == [
        "WaitingForReceiver", "Starting", "Migrating", "Starting", "Running"]

    # the tgt VMIM showed the transient "waiting" block, and lost it (rows 11, 23)
    blocked = [condition(o, "decentralizedMigrationBlocked")
               for _, o in rec.history("target", "vmim", ns, m.tgt_vmim)]
    assert any(b and b["message"] == "waiting for incoming synchronization, unable to proceed" for b in blocked)
    assert condition(final_tgt, "decentralizedMigrationBlocked") is None

    # mutator, annotations, addresses, finalizers (rows 7-9, 13, 39, 43)
    assert final_tgt["metadata"]["labels"]["kubevirt.io/vmi-name"] == "vm1"
    assert final_tgt["metadata"]["annotations"]["kubevirt.io/latest-observed-api-version"] == "v1"
    assert final_tgt["status"]["synchronizationAddresses"] == ["192.0.2.20:9185"]
    assert last_src["status"]["synchronizationAddresses"] == ["192.0.2.10:9185"]
    seen_fins = {f for _, o in rec.history("target", "vmim", ns, m.tgt_vmim)
                 for f in o["metadata"].get("finalizers") or []}
    assert seen_fins == {"kubevirt.io/migrationJobFinalize", "synchronization.kubevirt.io/migrationFinalizer"}
    pending_src = next(o for _, o in rec.history("source", "vmim", ns, m.src_vmim) if phase(o) == "Pending")
    assert pending_src["status"]["migrationState"]["sourcePod"].startswith("virt-launcher-vm1-")

    # what the e2e test checks on the target VMI (LM:181-205), and the cross references (§1)
    ms = tgt_vmi["status"]["migrationState"]
    assert ms["startTimestamp"] and ms["endTimestamp"] and ms["targetNodeDomainReadyTimestamp"]
    assert ms["targetNode"] == tgt_vmi["status"]["nodeName"] != ms["sourceNode"]
    assert ms["completed"] is True and not ms.get("failed")
    assert ms["targetNodeAddress"]
    assert ms["migrationUid"] == tgt["metadata"]["uid"]
    assert ms["sourceState"]["migrationUID"] == src["metadata"]["uid"]
    assert ms["sourceState"]["syncAddress"] == "192.0.2.10:9185" and "syncAddress" not in ms["targetState"]
    assert final_tgt["status"]["migrationState"]["migrationUid"] == tgt["metadata"]["uid"]  # copied at final
    src_ms = rec.last("source", "vmi", ns, "vm1")["status"]["migrationState"]
    assert src_ms["targetState"]["migrationUID"] == tgt["metadata"]["uid"]
    assert src_ms["completed"] is True and src_ms["targetState"]["syncAddress"] == "192.0.2.20:9185"
    assert "syncAddress" not in src_ms["sourceState"]  # only the pushed copy carries it (row 15)

    # completion effects (§4)
    labels = tgt_vmi["metadata"].get("labels") or {}
    assert "kubevirt.io/migrationTargetNodeName" not in labels and labels["kubevirt.io/nodeName"] == ms["targetNode"]
    assert "kubevirt.io/create-migration-target" not in (tgt_vmi["metadata"].get("annotations") or {})
    assert "migratedVolumes" not in tgt_vmi["status"]
    assert tgt_vm["spec"]["runStrategy"] == "Always"
    assert tgt_vm["metadata"]["annotations"]["kubevirt.io/restore-run-strategy"] == "Always"  # kept
    assert src_vm["spec"]["runStrategy"] == "Halted"


def test_same_cluster_two_namespaces(kubevirt_sim, namespaces):
    """One sync controller serves both sides; the connectURL is the cluster's own address."""
    sim = kubevirt_sim
    sim.faults.transfer_seconds = 0.3
    ns_a, ns_b = namespaces("source"), namespaces("source")
    m = Migration(sim, ns_a, src="source", tgt="source", tgt_namespace=ns_b)
    m.prepare()
    m.create_target_vmim()
    m.create_source_vmim()
    done = m.wait_phase("target", "Succeeded")
    sim.wait_gone("source", "vmim", ns_a, m.src_vmim)
    vmi = sim.wait_for("source", "vmi", ns_b, "vm1", lambda o: phase(o) == "Running")
    ms = vmi["status"]["migrationState"]
    assert phases(done) == TGT_LADDER
    assert ms["sourceNode"] == "source-node01" and ms["targetNode"] == "source-node02"  # never the same node
    assert ms["sourceState"]["domainNamespace"] == ns_a and ms["targetState"]["domainNamespace"] == ns_b
    assert sim.get("source", "vm", ns_b, "vm1")["spec"]["runStrategy"] == "Always"


def test_source_first_is_told_the_target_is_missing(kubevirt_sim, namespaces):
    """Created first, the source stalls on `unable to locate VMI` until the target VMIM exists (§2.6)."""
    sim = kubevirt_sim
    sim.faults.transfer_seconds = 0.3
    ns = namespaces("source", "target")
    trust_each_other(sim)
    m = Migration(sim, ns)
    m.prepare()
    m.create_source_vmim()
    want = f"rpc error: code = Unknown desc = source: unable to locate VMI for migrationID {m.id}"
    blocked = m.wait_vmim(
        "source", lambda o: (condition(o, "decentralizedMigrationBlocked") or {}).get("message") == want,
        what="unable-to-locate block")
    assert phase(blocked) == "Synchronizing"
    vmi_cond = condition(sim.get("source", "vmi", ns, "vm1"), "DecentralizedLiveMigrationFailure")
    assert vmi_cond["status"] == "True" and vmi_cond["reason"] == "DecentralizedNotLiveMigratable"
    m.create_target_vmim()
    m.wait_phase("target", "Succeeded")
    vmi = sim.wait_for("target", "vmi", ns, "vm1", lambda o: phase(o) == "Running")
    assert condition(vmi, "DecentralizedLiveMigrationFailure") is None


def test_without_restore_annotation_target_stays_receiver(kubevirt_sim, namespaces):
    """§4: no kubevirt.io/restore-run-strategy -> WaitAsReceiver, printableStatus Running.
    The RerunOnFailure source VMI is deleted without a restart; the strategy is kept."""
    sim = kubevirt_sim
    sim.faults.transfer_seconds = 0.3
    ns = namespaces("source", "target")
    trust_each_other(sim)
    m = Migration(sim, ns, restore=None, run_strategy="RerunOnFailure")
    m.prepare()
    m.create_target_vmim()
    m.create_source_vmim()
    m.wait_phase("target", "Succeeded")
    vm = sim.wait_for("target", "vm", ns, "vm1", lambda o: printable(o) == "Running")
    assert vm["spec"]["runStrategy"] == "WaitAsReceiver"
    sim.wait_gone("source", "vmi", ns, "vm1")
    sim.wait_gone("source", "vmim", ns, m.src_vmim)
    src_vm = sim.wait_for("source", "vm", ns, "vm1", lambda o: printable(o) == "Stopped")
    assert src_vm["spec"]["runStrategy"] == "RerunOnFailure"


def test_run_vm_gives_a_running_vmi(kubevirt_sim, namespaces):
    sim = kubevirt_sim
    ns = namespaces("source")
    vmi = sim.run_vm("source", ns, vm_manifest("vm1"))
    # the VM controller reflects the Running VMI on the VM a reconcile later
    vm = sim.wait_for("source", "vm", ns, "vm1",
                      lambda o: o is not None and (o.get("status") or {}).get("printableStatus") == "Running"
                      and condition(o, "LiveMigratable") is not None, 10, "VM status Running")
    fw = vm["spec"]["template"]["spec"]["domain"]["firmware"]
    assert fw["uuid"] and fw["serial"]  # VM mutator (VMM:127-140)
    assert vm["status"]["printableStatus"] == "Running" and vm["status"]["ready"] is True
    assert vm["status"]["created"] is True
    dv = sim.get("source", "dv", ns, "vm1-disk")
    assert dv["status"]["phase"] == "Succeeded" and dv["status"]["progress"] == "100.0%"
    pvc = sim.get("source", "pvc", ns, "vm1-disk")
    assert pvc["status"]["phase"] == "Bound" and pvc["status"]["capacity"]["storage"] == "1Gi"
    st = vmi["status"]
    assert st["nodeName"] == "source-node01" and vmi["metadata"]["labels"]["kubevirt.io/nodeName"] == "source-node01"
    assert st["interfaces"][0]["mac"] and st["interfaces"][0]["ipAddress"]
    assert condition(vmi, "Ready")["status"] == "True"
    # an RWO disk is not shared: not live-migratable in place, but its storage can move (DLM's case)
    live = condition(vmi, "LiveMigratable")
    assert (live["status"], live["reason"]) == ("False", "DisksNotLiveMigratable")
    assert condition(vmi, "StorageLiveMigratable")["status"] == "True"
    assert set(vmi["metadata"]["finalizers"]) == {"kubevirt.io/virtualMachineControllerFinalize",
                                                  "kubevirt.io/foregroundDeleteVirtualMachine"}
    # conditions are mirrored onto the VM (VMC:2767-2795)
    assert condition(vm, "LiveMigratable")["reason"] == "DisksNotLiveMigratable"


def test_migratability_conditions(kubevirt_sim, namespaces):
    sim = kubevirt_sim
    ns = namespaces("source")
    rwx = sim.run_vm("source", ns, vm_manifest("shared", access_mode="ReadWriteMany"))
    assert condition(rwx, "LiveMigratable")["status"] == "True"
    vm = vm_manifest("fs")
    spec = vm["spec"]["template"]["spec"]
    spec["domain"]["devices"]["disks"][0]["shareable"] = True
    spec["domain"]["devices"]["filesystems"] = [{"name": "share", "virtiofs": {}}]
    spec["volumes"].append({"name": "share", "persistentVolumeClaim": {"claimName": "share"}})
    pvc = {"metadata": {"name": "share"}, "spec": {"accessModes": ["ReadWriteMany"],
                                                   "resources": {"requests": {"storage": "1Gi"}}}}
    vmi = sim.run_vm("source", ns, vm, pvcs=[pvc])
    storage = condition(vmi, "StorageLiveMigratable")
    assert storage["status"] == "False" and "shareable" in storage["message"] and "virtiofs" in storage["message"]
