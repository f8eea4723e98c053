"""VMs with DataVolume disks through `kubectl dlm migrate` on the KubeVirt tier: what virt-handler
writes for their claims (LiveMigratable, migrationMethod: tests/kubevirt/handler.py check_volumes),
the receiving DataVolumes the plugin creates (made PVCs by the played CDI), and the move itself on
KubeVirt's real controllers."""
from __future__ import annotations

import pytest

from kubectl_dlm import errors
from tests.kubevirt import handler
from tests.kubevirt.played import wait_for
from tests.kubevirt.tier import vm_manifest
from tests.kubevirt.test_dlm_e2e import (FOLLOW, KV, assert_moved, dlm, dump, get,  # noqa: F401 - fixtures
                                          other_namespace)


def start_dv_vm(kubevirt_clusters, ns: str, access_mode: str = "ReadWriteOnce") -> dict:
    """The VM Running, with the conditions virt-handler wrote."""
    c = kubevirt_clusters.by_name("source")
    c.request("POST", KV.format(ns=ns, kind="virtualmachines"), vm_manifest("vm1", data_volume=True, access_mode=access_mode))
    return wait_for("VMI vm1 Running with LiveMigratable", lambda: (v := get(c, ns, "virtualmachineinstances", "vm1"))
                    and v.get("status", {}).get("phase") == "Running"
                    and any(x["type"] == "LiveMigratable" for x in v["status"].get("conditions", [])) and v,
                    timeout=90)


def conditions(vmi: dict) -> dict:
    return {c["type"]: c for c in vmi["status"]["conditions"]}


@pytest.mark.parametrize("access_mode", ["ReadWriteOnce", "ReadWriteMany"])
def test_what_virt_handler_writes_for_a_data_volume_disk(kubevirt_clusters, kv_namespace, access_mode):
    """checkVolumesForMigration (pkg/virt-handler/vm.go:1849-1925): a claim that is not
    ReadWriteMany makes LiveMigratable False (DisksNotLiveMigratable, which virt-api lets a
    decentralized migration pass: migration-create-admitter.go:59-72) and the migration a block
    migration; a ReadWriteMany one is shared, nothing else is copied."""
    vmi = start_dv_vm(kubevirt_clusters, kv_namespace, access_mode)
    conds = conditions(vmi)
    [volume] = vmi["status"]["volumeStatus"]   # virt-controller's, with the claim's access modes
    assert volume["persistentVolumeClaimInfo"]["accessModes"] == [access_mode]
    assert conds["StorageLiveMigratable"]["status"] == "True"
    if access_mode == "ReadWriteOnce":
        assert conds["LiveMigratable"]["status"] == "False"
        assert conds["LiveMigratable"]["reason"] == "DisksNotLiveMigratable"
        assert conds["LiveMigratable"]["message"] == handler.NOT_SHARED.format("vm1-disk")
        assert vmi["status"]["migrationMethod"] == "BlockMigration"
    else:
        assert conds["LiveMigratable"]["status"] == "True" and "reason" not in conds["LiveMigratable"]
        assert vmi["status"]["migrationMethod"] == "LiveMigration"


@pytest.mark.parametrize("cross", [False, True], ids=["same-cluster", "cross-cluster"])
def test_move_of_a_vm_with_a_data_volume(kubevirt_clusters, kv_namespace, other_namespace, dlm, cross):
    """Also in tests/e2e/test_migrate.py::test_cross_cluster_move and
    test_same_cluster_namespace_move (their VM has a DataVolume). The plugin creates the receiving VM
    with a blank DataVolume of the same size, which the played CDI makes a PVC; the real VM controller
    records the receiving claims as the receiving VMI's migratedVolumes
    (pkg/virt-controller/watch/vm/vm.go:870-886), so its virt-handler listens for a block migration
    too (the block port, migration-proxy.go:111-117)."""
    src = kv_namespace
    dst, target, where = ((src, "target", ("--to-context", "target")) if cross
                          else (other_namespace, "source", ("--to-namespace", other_namespace)))
    s, t = kubevirt_clusters.by_name("source"), kubevirt_clusters.by_name(target)
    start_dv_vm(kubevirt_clusters, src)
    code, out, err = dlm("migrate", "vm1", "--context", "source", "-n", src, *where, *FOLLOW)
    assert code == errors.OK, out + err + dump(kubevirt_clusters, src) + dump(kubevirt_clusters, dst)
    assert "vm1: succeeded" in out
    assert_moved(kubevirt_clusters, "source", src, target, dst)
    ns = dst
    vmi = get(t, ns, "virtualmachineinstances", "vm1")
    ms = vmi["status"]["migrationState"]
    assert len(ms["targetDirectMigrationNodePorts"]) == 2, ms   # the direct and the block port
    dv = t.request("GET", f"/apis/cdi.kubevirt.io/v1beta1/namespaces/{ns}/datavolumes/vm1-disk")
    assert dv["status"]["phase"] == "Succeeded" and dv["spec"]["source"] == {"blank": {}}
    pvc = t.request("GET", f"/api/v1/namespaces/{ns}/persistentvolumeclaims/vm1-disk")
    assert pvc["status"]["phase"] == "Bound"
    [volume] = vmi["status"]["volumeStatus"]
    assert volume["persistentVolumeClaimInfo"]["claimName"] == "vm1-disk"
    # the source keeps its disk: DLM copies it, it never moves a claim
    assert s.request("GET", f"/api/v1/namespaces/{src}/persistentvolumeclaims/vm1-disk")["status"]["phase"] == "Bound"
