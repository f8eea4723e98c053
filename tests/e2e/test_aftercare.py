"""After the move, end to end on the KubeVirt tier: verify, retire the source, delete it only when
asked. KubeVirt's own VM controller halts only a runStrategy Always source (vm.go:987-996)."""

from __future__ import annotations

import json

from kubectl_dlm import errors
from kubectl_dlm.model import ANN_MIGRATED_TO, ANN_MIGRATION_ID, ANN_MIGRATED_AT
from tests.e2e.conftest import start_vm

FOLLOW = ("--sync-timeout", "60", "--timeout", "120", "-o", "plain")


def test_verify_retire_and_delete_the_source(kubevirt, dlm):
    src, dst = kubevirt.namespaces("source"), kubevirt.namespaces("source")
    start_vm(kubevirt, "source", src, run_strategy="Once", data_volume=True)
    args = ("--context", "source", "-n", src, "--to-namespace", dst)
    code, out, err = dlm("migrate", "vm1", *args, *FOLLOW)
    assert code == errors.OK, out + err
    # issue 14.9: KubeVirt halts only an Always source (vm.go:987-996); a Once source is left startable
    assert ("warning: vm1: the source VM has runStrategy Once, which KubeVirt does not halt after a move: the old "
            "copy can be started again on the old disks, with the same MAC addresses and firmware UUID") in out
    assert f"Retire it: kubectl dlm retire vm1 -n {src} --context source --to-namespace {dst}" in out
    assert kubevirt.get("source", "vm", src, "vm1")["spec"]["runStrategy"] == "Once"
    code, out, err = dlm("verify", "vm1", *args, "-o", "json")
    assert code == errors.OK, out + err
    [verdict] = json.loads(out)
    facts = {f["fact"]: f for f in verdict["facts"]}
    assert verdict["passed"] and set(facts) == {"target-running", "migrated-live", "run-strategy-restored",
                                                "source-stopped", "disks-bound", "firmware-uuid", "mac-addresses"}
    [target_vmim] = kubevirt.list("source", "vmim", dst)
    assert target_vmim["metadata"]["uid"] in facts["migrated-live"]["evidence"]
    assert "runStrategy Once" in facts["source-stopped"]["evidence"]  # KubeVirt did not halt it
    assert "Once" in facts["run-strategy-restored"]["evidence"]

    code, out, err = dlm("retire", "vm1", *args)
    assert code == errors.OK, out + err
    source_vm = kubevirt.get("source", "vm", src, "vm1")
    assert source_vm["spec"]["runStrategy"] == "Halted"
    notes = source_vm["metadata"]["annotations"]
    assert notes[ANN_MIGRATED_TO] == f"source/{dst}/vm1"
    assert notes[ANN_MIGRATION_ID] == verdict["migrationID"] and notes[ANN_MIGRATED_AT].endswith("Z")
    for kind in ("dv", "pvc"):
        assert kubevirt.get("source", kind, src, "vm1-disk")["metadata"]["annotations"][ANN_MIGRATED_TO] == f"source/{dst}/vm1"
    kubevirt.wait_gone("source", "vmi", src, "vm1")  # Halted: KubeVirt removes the Succeeded VMI
    code, out, err = dlm("verify", "vm1", *args)
    assert code == errors.OK and "source VM retired (Halted" in out, out + err

    # deleting is a further step: listed, and refused without a terminal unless --yes
    code, out, err = dlm("retire", "vm1", *args, "--delete-vm", "--delete-disks")
    assert code == errors.REFUSED, out + err
    assert f"VirtualMachine {src}/vm1" in err and f"PersistentVolumeClaim {src}/vm1-disk" in err and "--yes" in err
    assert kubevirt.get("source", "vm", src, "vm1") is not None
    code, out, err = dlm("retire", "vm1", *args, "--delete-vm", "--delete-disks", "--yes")
    assert code == errors.OK, out + err
    for kind, name in (("vm", "vm1"), ("dv", "vm1-disk"), ("pvc", "vm1-disk")):
        kubevirt.wait_gone("source", kind, src, name)
    assert kubevirt.get("source", "vmi", dst, "vm1")["status"]["phase"] == "Running"  # the moved VM is untouched
    code, out, err = dlm("verify", "vm1", *args)
    assert code == errors.OK, out + err


def test_verify_fails_without_a_live_move_and_retire_refuses(kubevirt, dlm):
    src, dst = kubevirt.namespaces("source"), kubevirt.namespaces("source")
    start_vm(kubevirt, "source", src, data_volume=True)
    start_vm(kubevirt, "source", dst, data_volume=True)  # a VM of that name booted on the target: not a migration
    args = ("--context", "source", "-n", src, "--to-namespace", dst)
    code, out, err = dlm("verify", "vm1", *args)
    assert code == errors.NOT_VERIFIED, out + err
    assert "NOT verified" in out and "no target migration by kubectl-dlm" in out
    assert "source VMI is Running" in out  # the old copy runs
    code, out, err = dlm("retire", "vm1", *args, "--yes", "--delete-vm")
    assert code == errors.REFUSED and "verify fails" in err, out + err
    assert kubevirt.get("source", "vm", src, "vm1")["spec"]["runStrategy"] == "Always"
    assert kubevirt.get("source", "vmi", src, "vm1")["status"]["phase"] == "Running"


def _there_and_back_again(sim, dlm, a, b, ns_a, ns_b):
    """A->B, B->A, A->B, each move verified and its source retired; returns the three outputs."""
    def where(cluster, ns):
        return ("--context", cluster, "-n", ns) if cluster else ()

    def to(cluster, ns):
        return ("--to-context", cluster, "--to-namespace", ns)

    outputs = []
    code, out, err = dlm("migrate", "vm1", *where(a, ns_a), *to(b, ns_b), "--retire-source", *FOLLOW)
    assert code == errors.OK, out + err
    outputs.append(out)
    retired = sim.get(a, "vm", ns_a, "vm1")
    assert retired["spec"]["runStrategy"] == "Halted" and retired["metadata"]["annotations"][ANN_MIGRATED_TO] == f"{b}/{ns_b}/vm1"

    # back B->A: the retired copy and its disks sit where the VM goes; never replaced silently
    back = ("migrate", "vm1", *where(b, ns_b), *to(a, ns_a), "--retire-source", *FOLLOW)
    code, out, err = dlm(*back)
    assert code == errors.REFUSED, out + err
    assert f"error: vm1: refused: the retired copy of an earlier move is where vm1 goes on {a}" in err
    assert f"VirtualMachine {ns_a}/vm1 (retired: migrated to {b}/{ns_b}/vm1" in err
    assert f"PersistentVolumeClaim {ns_a}/vm1-disk" in err and "hint: pass --replace-retired" in err
    assert sim.get(a, "vm", ns_a, "vm1")["metadata"]["uid"] == retired["metadata"]["uid"]  # nothing deleted
    assert sim.get(b, "vmi", ns_b, "vm1")["status"]["phase"] == "Running"
    code, out, err = dlm(*back, "--replace-retired")
    assert code == errors.OK, out + err
    assert f"deleted the retired copy's VirtualMachine {ns_a}/vm1" in out
    outputs.append(out)
    assert sim.get(a, "vmi", ns_a, "vm1")["status"]["phase"] == "Running"
    assert sim.get(a, "vm", ns_a, "vm1")["metadata"]["uid"] != retired["metadata"]["uid"]
    assert sim.get(b, "vm", ns_b, "vm1")["metadata"]["annotations"][ANN_MIGRATED_TO] == f"{a}/{ns_a}/vm1"

    # and A->B again
    code, out, err = dlm("migrate", "vm1", *where(a, ns_a), *to(b, ns_b), "--retire-source", "--replace-retired", *FOLLOW)
    assert code == errors.OK, out + err
    outputs.append(out)
    assert sim.get(b, "vmi", ns_b, "vm1")["status"]["phase"] == "Running"
    code, out, err = dlm("verify", "vm1", *where(a, ns_a), *to(b, ns_b))
    assert code == errors.OK, out + err
    ids = {line.split("migration ")[1].rstrip(")") for line in out.splitlines() if line.startswith("vm1: verified")}
    assert len(ids) == 1
    return outputs


def test_move_there_back_and_again_across_clusters(kubevirt, dlm):
    ns = kubevirt.namespaces("source", "target")
    start_vm(kubevirt, "source", ns, data_volume=True)
    outputs = _there_and_back_again(kubevirt, dlm, "source", "target", ns, ns)
    for out in outputs:
        assert "verify pass: migrated-live" in out and "verify fail" not in out


def test_move_there_back_and_again_within_one_cluster(kubevirt, dlm):
    ns_a, ns_b = kubevirt.namespaces("source"), kubevirt.namespaces("source")
    start_vm(kubevirt, "source", ns_a, data_volume=True)
    _there_and_back_again(kubevirt, dlm, "source", "source", ns_a, ns_b)


def test_gitops_bundle_applied_then_the_after_state_matches_the_moved_vm(tmp_path, kubevirt, dlm):
    from ruamel.yaml import YAML

    ns = kubevirt.namespaces("source", "target")
    start_vm(kubevirt, "source", ns, run_strategy="Once", data_volume=True)
    out_dir = tmp_path / "migration"
    code, out, err = dlm("render", "vm1", "--context", "source", "-n", ns, "--to-context", "target", "--output-dir", str(out_dir))
    assert code == errors.OK, out + err
    receiving = read_yaml(out_dir / "1-prepare-target" / "virtualmachine-vm1.yaml")
    assert receiving["metadata"]["annotations"]["kustomize.toolkit.fluxcd.io/reconcile"] == "disabled"
    code, out, err = dlm("apply", "-f", str(out_dir), "--retire-source", *FOLLOW)
    assert code == errors.OK, out + err
    assert "verify pass: migrated-live" in out and "retired: VirtualMachine" in out
    live = kubevirt.get("target", "vm", ns, "vm1")
    after = YAML(typ="safe", pure=True).load((out_dir / "after-move" / "virtualmachine-vm1.yaml").read_text())
    assert after["spec"]["runStrategy"] == live["spec"]["runStrategy"] == "Once"  # restored by KubeVirt
    assert after["spec"]["template"]["spec"]["domain"]["firmware"]["uuid"] == \
        live["spec"]["template"]["spec"]["domain"]["firmware"]["uuid"]
    assert after["spec"]["dataVolumeTemplates"] == [
        {k: v for k, v in t.items() if k != "status"} for t in live["spec"]["dataVolumeTemplates"]]
    # the live VM carries the hand-off annotations until the user removes them; the after-state never
    assert live["metadata"]["annotations"]["argocd.argoproj.io/sync-options"] == "Prune=false"
    assert not [k for k in after["metadata"]["annotations"] if "argocd" in k or "fluxcd" in k or "dlm." in k]
    source_vm = kubevirt.get("source", "vm", ns, "vm1")
    assert source_vm["spec"]["runStrategy"] == "Halted"  # Once is not halted by KubeVirt: --retire-source did


def read_yaml(path):
    from ruamel.yaml import YAML

    return YAML(typ="safe", pure=True).load(path.read_text())


def _orphaning_gc(tier, cluster, namespace, stop):
    """What kube-controller-manager's garbage collector does for a delete with propagationPolicy
    Orphan (the test API server runs no controller manager): drop the owner from its dependents'
    ownerReferences, then the `orphan` finalizer from the owner."""
    import time

    from tests.harness.apiserver import ApiError
    from tests.kubevirt.tier import path

    while not stop.is_set():
        try:
            for vm in tier.list(cluster, "vm", namespace):
                if vm["metadata"].get("deletionTimestamp") and "orphan" in (vm["metadata"].get("finalizers") or []):
                    uid = vm["metadata"]["uid"]
                    for kind in ("dv", "pvc"):
                        for dep in tier.list(cluster, kind, namespace):
                            refs = dep["metadata"].get("ownerReferences") or []
                            if any(r.get("uid") == uid for r in refs):
                                dep["metadata"]["ownerReferences"] = [r for r in refs if r.get("uid") != uid]
                                tier.request(cluster, "PUT", path(kind, namespace, dep["metadata"]["name"]), dep)
                    vm["metadata"]["finalizers"] = [f for f in vm["metadata"]["finalizers"] if f != "orphan"]
                    tier.request(cluster, "PUT", path("vm", namespace, vm["metadata"]["name"]), vm)
        except ApiError:  # changed meanwhile: next round
            pass
        time.sleep(0.2)


def test_move_back_keeping_the_retired_disks_gives_the_new_disks_other_claim_names(kubevirt, dlm):
    import threading

    ns_a, ns_b = kubevirt.namespaces("source"), kubevirt.namespaces("source")
    start_vm(kubevirt, "source", ns_a, data_volume=True)
    there = ("--context", "source", "-n", ns_a, "--to-namespace", ns_b)
    code, out, err = dlm("migrate", "vm1", *there, "--retire-source", *FOLLOW)
    assert code == errors.OK, out + err
    old_disk = kubevirt.get("source", "pvc", ns_a, "vm1-disk")
    stop = threading.Event()
    gc = threading.Thread(target=_orphaning_gc, args=(kubevirt, "source", ns_a, stop), daemon=True)
    gc.start()
    try:
        back = ("--context", "source", "-n", ns_b, "--to-namespace", ns_a)
        code, out, err = dlm("migrate", "vm1", *back, "--replace-retired", "--keep-retired-disks", *FOLLOW)
    finally:
        stop.set()
        gc.join(5)
    assert code == errors.OK, out + err
    assert f"deleted the retired copy's VirtualMachine {ns_a}/vm1 (its disks are kept: propagationPolicy Orphan)" in out
    moved = kubevirt.get("source", "vm", ns_a, "vm1")
    [claim] = [v["dataVolume"]["name"] for v in moved["spec"]["template"]["spec"]["volumes"] if "dataVolume" in v]
    assert claim.startswith("vm1-disk-") and claim != "vm1-disk"
    assert kubevirt.get("source", "pvc", ns_a, claim)["status"]["phase"] == "Bound"
    kept = kubevirt.get("source", "pvc", ns_a, "vm1-disk")
    assert kept["metadata"]["uid"] == old_disk["metadata"]["uid"]  # the stale disk is still there, untouched
    assert ANN_MIGRATED_TO in kept["metadata"]["annotations"]
    code, out, err = dlm("verify", "vm1", *back)
    assert code == errors.OK, out + err
