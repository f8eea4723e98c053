"""The played CDI (cdi.py): its arithmetic against CDI's (pure), and on the KubeVirt tier the
DataVolume -> PVC -> PV path as KubeVirt's own virt-controller consumes it."""
from __future__ import annotations

import secrets

import pytest

from tests.kubevirt import cdi
from tests.kubevirt.played import launcher_pods, wait_for
from tests.kubevirt.test_live import VMIS, VMS, get_or_none, vm_manifest

DV_PATH = "/apis/cdi.kubevirt.io/v1beta1/namespaces/{ns}/datavolumes"
STATUS = {"filesystemOverhead": {"global": "0.06", "storageClass": {"thin": "0.1"}}}


def blank_dv(name: str, size: str = "1Gi", mode: str = "Filesystem", storage_class: str | None = "standard") -> dict:
    storage = {"accessModes": ["ReadWriteOnce"], "volumeMode": mode, "resources": {"requests": {"storage": size}}}
    if storage_class:
        storage["storageClassName"] = storage_class
    return {"apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "DataVolume", "metadata": {"name": name},
            "spec": {"source": {"blank": {}}, "storage": storage}}


@pytest.mark.parametrize("size, mode, storage_class, want", [
    # GetRequiredSpace: align to 1 MiB, then * (1 + overhead), rounded up
    ("1Gi", "Filesystem", "standard", "1138166334"),
    ("1Gi", "Filesystem", "thin", "1181116007"),           # the class's own overhead
    ("1Gi", "Block", "standard", "1073741824"),            # Block: no inflation
    ("1000M", "Block", "standard", "1G"),                  # DecimalSI canonical form
    ("1", "Filesystem", "standard", "1111491"),            # 1 byte aligns to 1 MiB first
])
def test_storage_size_is_inflated_as_cdi_does(size, mode, storage_class, want):
    dv = blank_dv("d", size, mode, storage_class)
    assert cdi.pvc_spec({**dv, "metadata": {"name": "d", "uid": "u"}}, STATUS, "standard")["resources"]["requests"][
        "storage"] == want


def test_spec_pvc_is_taken_as_is_and_the_default_class_fills_in():
    pvc = {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "1Gi"}}}
    assert cdi.pvc_spec({"spec": {"source": {"blank": {}}, "pvc": pvc}}, STATUS, "standard") == pvc
    dv = blank_dv("d", storage_class=None)
    assert cdi.pvc_spec(dv, STATUS, "standard")["storageClassName"] == "standard"


@pytest.mark.parametrize("pvc_phase, pod_phase, wffc, want", [
    (None, None, False, "Pending"),
    ("Pending", None, False, "Pending"),
    ("Pending", None, True, "WaitForFirstConsumer"),
    ("Bound", None, True, "PVCBound"),
    ("Bound", "Pending", False, "ImportScheduled"),
    ("Bound", "Running", False, "ImportInProgress"),
    ("Bound", "Succeeded", False, "Succeeded"),
    ("Lost", None, False, "Failed"),
])
def test_dv_phase(pvc_phase, pod_phase, wffc, want):
    pvc = None if pvc_phase is None else {
        "metadata": {"name": "d", "annotations": {"cdi.kubevirt.io/storage.pod.phase": pod_phase} if pod_phase else {}},
        "status": {"phase": pvc_phase}}
    assert cdi.dv_phase({}, pvc, wffc) == want


# ---- on the KubeVirt tier ----

def test_blank_dv_gets_cdis_pvc_bound_and_succeeds(kubevirt_clusters, kv_namespace, cdis):
    c = kubevirt_clusters.target
    dv = c.request("POST", DV_PATH.format(ns=kv_namespace), blank_dv("disk"))
    done = wait_for("the DataVolume Succeeded", lambda: (d := c.request("GET", DV_PATH.format(ns=kv_namespace) + "/disk"))
                    .get("status", {}).get("phase") == "Succeeded" and d)
    assert done["status"]["progress"] == "100.0%" and done["status"]["claimName"] == "disk"
    assert {x["type"]: x["status"] for x in done["status"]["conditions"]} == {"Bound": "True", "Ready": "True",
                                                                            "Running": "False"}
    pvc = c.request("GET", f"/api/v1/namespaces/{kv_namespace}/persistentvolumeclaims/disk")
    assert pvc["metadata"]["labels"]["app"] == "containerized-data-importer"
    assert pvc["metadata"]["annotations"]["cdi.kubevirt.io/storage.import.source"] == "none"
    assert pvc["metadata"]["annotations"]["cdi.kubevirt.io/createdForDataVolume"] == dv["metadata"]["uid"]
    assert pvc["metadata"]["ownerReferences"][0]["uid"] == dv["metadata"]["uid"]
    assert pvc["metadata"]["ownerReferences"][0]["controller"] is True
    # 1Gi on a Filesystem volume, with CDIConfig's global overhead 0.06
    config = c.request("GET", "/apis/cdi.kubevirt.io/v1beta1/cdiconfigs/config")
    assert config["status"]["filesystemOverhead"]["storageClass"]["standard"] == "0.06"
    assert pvc["spec"]["resources"]["requests"]["storage"] == "1138166334"
    assert pvc["status"]["phase"] == "Bound" and pvc["status"]["capacity"]["storage"] == "1138166334"
    pv = c.request("GET", f"/api/v1/persistentvolumes/{pvc['spec']['volumeName']}")
    assert pv["spec"]["claimRef"]["uid"] == pvc["metadata"]["uid"]


def test_wait_for_first_consumer_holds_the_dv_until_a_pod_is_scheduled(kubevirt_clusters, kv_namespace, cdis,
                                                                       node_sides):
    c = kubevirt_clusters.target
    sc = f"wffc-{secrets.token_hex(3)}"
    c.request("POST", "/apis/storage.k8s.io/v1/storageclasses", {
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": sc},
        "provisioner": "local.csi.example.com", "volumeBindingMode": "WaitForFirstConsumer"})
    try:
        c.request("POST", DV_PATH.format(ns=kv_namespace), blank_dv("disk", storage_class=sc))
        wait_for("the DataVolume WaitForFirstConsumer", lambda: c.request(
            "GET", DV_PATH.format(ns=kv_namespace) + "/disk").get("status", {}).get("phase") == "WaitForFirstConsumer")
        pvc_path = f"/api/v1/namespaces/{kv_namespace}/persistentvolumeclaims/disk"
        assert c.request("GET", pvc_path)["status"]["phase"] == "Pending"
        c.request("POST", f"/api/v1/namespaces/{kv_namespace}/pods", {
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "consumer"},
            "spec": {"containers": [{"name": "c", "image": "example.invalid/c:1"}],
                     "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "disk"}}]}})
        pod = wait_for("the consumer Running", lambda: (p := c.request(
            "GET", f"/api/v1/namespaces/{kv_namespace}/pods/consumer"))["status"].get("phase") == "Running" and p)
        pvc = c.request("GET", pvc_path)
        assert pvc["metadata"]["annotations"]["volume.kubernetes.io/selected-node"] == pod["spec"]["nodeName"]
        assert pvc["status"]["phase"] == "Bound"
        wait_for("the DataVolume Succeeded", lambda: c.request(
            "GET", DV_PATH.format(ns=kv_namespace) + "/disk").get("status", {}).get("phase") == "Succeeded")
    finally:
        c.request("DELETE", f"/apis/storage.k8s.io/v1/storageclasses/{sc}")


def test_a_pod_with_a_missing_claim_is_unschedulable(kubevirt_clusters, kv_namespace, node_sides):
    c = kubevirt_clusters.target
    c.request("POST", f"/api/v1/namespaces/{kv_namespace}/pods", {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "orphan"},
        "spec": {"containers": [{"name": "c", "image": "example.invalid/c:1"}],
                 "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "nope"}}]}})
    n = len(node_sides["target"].list_nodes())
    cond = wait_for("PodScheduled=False", lambda: [x for x in c.request(
        "GET", f"/api/v1/namespaces/{kv_namespace}/pods/orphan")["status"].get("conditions") or []
        if x["type"] == "PodScheduled"])[0]
    assert cond["message"] == (f'0/{n} nodes are available: persistentvolumeclaim "nope" not found. '
                               f"preemption: 0/{n} nodes are available: {n} Preemption is not helpful for scheduling.")


def test_vm_with_a_blank_data_volume_template_runs(kubevirt_clusters, kv_namespace, node_sides, cdis):
    # virt-controller creates the DataVolume from the template (pkg/virt-controller/watch/vm/vm.go
    # handleDataVolumes) and the launcher pod only once CDI reports it ready; the pod mounts the PVC.
    c = kubevirt_clusters.source
    vm = vm_manifest("vm1", "Always")
    vm["spec"]["dataVolumeTemplates"] = [{"metadata": {"name": "vm1-data"}, "spec": blank_dv("x")["spec"]}]
    vm["spec"]["template"]["spec"]["domain"]["devices"]["disks"].append({"name": "data", "disk": {"bus": "virtio"}})
    vm["spec"]["template"]["spec"]["volumes"].append({"name": "data", "dataVolume": {"name": "vm1-data"}})
    c.request("POST", VMS.format(ns=kv_namespace), vm)
    vmi = wait_for("the VMI", lambda: get_or_none(c, VMIS.format(ns=kv_namespace) + "/vm1"), timeout=90)
    pod = wait_for("the launcher Pod Running", lambda: [
        p for p in launcher_pods(c, kv_namespace, vmi["metadata"]["uid"]) if p["status"].get("phase") == "Running"],
        timeout=90)[0]
    assert {"name": "data", "persistentVolumeClaim": {"claimName": "vm1-data"}} in pod["spec"]["volumes"]
    dv = c.request("GET", DV_PATH.format(ns=kv_namespace) + "/vm1-data")
    assert dv["status"]["phase"] == "Succeeded"
    assert dv["metadata"]["ownerReferences"][0]["kind"] == "VirtualMachine"
