"""Admission rules (dlm-state-machine.md §3): a request KubeVirt would deny is recorded as a violation
and the stored object is left alone by every controller."""
from __future__ import annotations

import time

from .scenario import create, phase, vm_manifest, vmim


OWN = "192.0.2.10:9185"  # the source's own sync address: no TLS trust between clusters needed here


def denied(sim, cluster, kind, ns, name):
    obj = sim.get(cluster, kind, ns, name)
    return obj is not None and obj["metadata"]["uid"] in sim.clusters[cluster].rejected


def test_vmim_create_and_update_rules(kubevirt_sim, namespaces):
    sim = kubevirt_sim
    ns = namespaces("source")
    sim.run_vm("source", ns, vm_manifest("vm1", access_mode="ReadWriteMany"))  # LiveMigratable=True
    sim.expect_violations(
        f'"migration-create-validator.kubevirt.io" denied the request: the VMI "{ns}/ghost" does not exist',
        "denied the request: vmiName is missing",
        "denied the request: Migration priority queue, only virt-controller is allowed to set priority field",
        "denied the request: sendTo migrationID a does not match receive migrationID b",
        "denied the request: in-flight migration detected. Active migration job (",
        '"migration-update-validator.kubevirt.io" denied the request: update of Migration object\'s spec is restricted',
        "denied the request: selector label can't be removed from an in-flight migration",
    )
    create(sim, "source", "vmim", ns, vmim("ghost-in", "ghost", "x"))
    nameless = vmim("nameless", "", "x")
    nameless["spec"].pop("vmiName")
    create(sim, "source", "vmim", ns, nameless)
    prio = vmim("prio", "vm1", "x")
    prio["spec"]["priority"] = "system-critical"
    create(sim, "source", "vmim", ns, prio)
    both = vmim("both", "vm1", "a", connect_url=OWN)
    both["spec"]["receive"] = {"migrationID": "b"}
    create(sim, "source", "vmim", ns, both)
    first = create(sim, "source", "vmim", ns, vmim("first", "vm1", "id-1", connect_url=OWN))
    sim.wait_for("source", "vmim", ns, "first", lambda o: phase(o) == "Synchronizing")
    second = create(sim, "source", "vmim", ns, vmim("second", "vm1", "id-2", connect_url=OWN))
    assert first["metadata"]["uid"] not in second["metadata"]["uid"]
    time.sleep(0.3)
    for name in ("ghost-in", "nameless", "prio", "both", "second"):
        assert denied(sim, "source", "vmim", ns, name), name
        obj = sim.get("source", "vmim", ns, name)
        assert phase(obj) is None and not obj["metadata"].get("finalizers")  # never reconciled
    admitted = sim.get("source", "vmim", ns, "first")
    assert admitted["metadata"]["labels"]["kubevirt.io/vmi-name"] == "vm1"  # the mutator's work
    assert "kubevirt.io/migrationJobFinalize" in admitted["metadata"]["finalizers"]
    kube = sim.clusters["source"].kube
    from .kube import VMIM
    kube.patch(VMIM, ns, "first", {"spec": {"sendTo": {"connectURL": "192.0.2.99:9185"}}}, "test")
    kube.patch(VMIM, ns, "first", [{"op": "remove", "path": "/metadata/labels/kubevirt.io~1vmi-name"}], "test",
               "application/json-patch+json")
    sim._wait(lambda: len(sim.violations) >= 7, 5)


def test_vm_run_strategy_rules(kubevirt_sim, namespaces):
    sim = kubevirt_sim
    ns = namespaces("source")
    sim.expect_violations(
        '"virtualmachine-validator.kubevirt.io" denied the request: Running and RunStrategy are mutually exclusive. '
        "Note that Running is deprecated, please use RunStrategy instead",
        "denied the request: RunStrategy must be specified",
        "denied the request: Invalid RunStrategy (Sometimes)",
    )
    both = vm_manifest("both")
    both["spec"]["running"] = True
    neither = vm_manifest("neither")
    neither["spec"].pop("runStrategy")
    bogus = vm_manifest("bogus", run_strategy="Sometimes")
    for vm in (both, neither, bogus):
        create(sim, "source", "vm", ns, vm)
    ok = sim.run_vm("source", ns, vm_manifest("ok"))
    assert ok is not None
    time.sleep(0.3)
    for name in ("both", "neither", "bogus"):
        assert denied(sim, "source", "vm", ns, name), name
        assert sim.get("source", "vmi", ns, name) is None
        assert not (sim.get("source", "vm", ns, name).get("status"))


def test_vm_update_is_validated_too(kubevirt_sim, namespaces):
    sim = kubevirt_sim
    ns = namespaces("source")
    sim.expect_violations("denied the request: Running and RunStrategy are mutually exclusive")
    sim.run_vm("source", ns, vm_manifest("vm1"))
    from .kube import VM
    sim.clusters["source"].kube.patch(VM, ns, "vm1", {"spec": {"running": True}}, "test")
    assert sim._wait(lambda: len(sim.violations) == 1, 5)


def test_final_or_non_migratable_vmi_is_refused(kubevirt_sim, namespaces):
    """MCA:133-135 and MCA:59-72: a final VMI, or LiveMigratable=False, is refused - except
    DisksNotLiveMigratable on a decentralized VMIM."""
    sim = kubevirt_sim
    ns = namespaces("source")
    vm = vm_manifest("bridged", access_mode="ReadWriteMany")  # volumes are checked first
    vm["spec"]["template"]["spec"]["domain"]["devices"]["interfaces"] = [{"name": "default", "bridge": {}}]
    sim.run_vm("source", ns, vm)
    sim.run_vm("source", ns, vm_manifest("rwo"))  # DisksNotLiveMigratable only
    sim.run_vm("source", ns, vm_manifest("once", run_strategy="Once"))
    sim.faults.kill_source_pod("source", ns, "once")  # a Once VM keeps its Failed VMI
    sim.wait_for("source", "vmi", ns, "once", lambda o: phase(o) == "Failed")
    sim.expect_violations("denied the request: Cannot migrate VMI, Reason: InterfaceNotLiveMigratable, Message: "
                          "cannot migrate VMI which does not use masquerade",
                          "denied the request: Cannot migrate VMI in finalized state.")
    create(sim, "source", "vmim", ns, vmim("out-b", "bridged", "b", connect_url=OWN))
    create(sim, "source", "vmim", ns, vmim("out-o", "once", "o", connect_url=OWN))
    create(sim, "source", "vmim", ns, vmim("out-r", "rwo", "r", connect_url=OWN))
    sim.wait_for("source", "vmim", ns, "out-r", lambda o: phase(o) == "Synchronizing")
    assert denied(sim, "source", "vmim", ns, "out-b") and denied(sim, "source", "vmim", ns, "out-o")
