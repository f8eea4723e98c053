"""CDI for DataVolumes on the KubeVirt tier, played, with the PV controller's binding and a dynamic
provisioner (what kube-controller-manager and a CSI external-provisioner do).

Written from CDI v1.66.0 (kubevirt/containerized-data-importer, cited as CDI:<path>:<line>):
* CDIConfig `config` status.filesystemOverhead: global "0.06" and one entry per StorageClass, as the
  config controller reconciles it (CDI:pkg/controller/config-controller.go:468-520,
  pkg/common/common.go DefaultGlobalOverhead).
* The DataVolume controller's PVC (CDI:pkg/controller/datavolume/controller-base.go:1138-1200
  newPersistentVolumeClaim): same name, label app=containerized-data-importer (plus
  kubernetes.io/... filling-up suppression for Filesystem) and the DV's labels, the DV's
  annotations plus storage.pod.restarts "0", storage.contentType, storage.preallocation.requested,
  createdForDataVolume=<DV uid>, storage.import.source "none" for a blank source
  (import-controller.go:142-180), and the DV as controller owner. Its spec: spec.pvc as is, or
  spec.storage with the size inflated by the filesystem overhead for Filesystem volumes
  (CDI:pkg/controller/datavolume/util.go:108-146, 308-339; common/util.go:629-675 and 1572-1592
  InflateSizeWithOverhead; pkg/util/util.go:232-241 GetRequiredSpace: align to 1 MiB, * (1+overhead),
  ceil). StorageProfile defaults for missing access/volume modes are not played: the provisioners
  here are unknown to CDI's capability table, so CDI would leave those profiles empty too.
* No CSIDriver object exists here, so CDI does not use its populators
  (controller-base.go:1311-1340 shouldUseCDIPopulator); the phases are the legacy path's
  (controller-base.go:895-1015 updateStatus, updateStatusPVCPending; import-controller.go:264-320):
  Pending, or WaitForFirstConsumer while the PVC of a WaitForFirstConsumer class is Pending
  (HonorWaitForFirstConsumer assumed on); PVCBound; ImportScheduled (importer pod Pending);
  Succeeded with progress "100.0%". Conditions Bound/Ready/Running as conditions.go and
  updateConditions (controller-base.go:1017-1043) write them.
* The importer pod is not created (no containers run here): its outcome is written as the import
  controller records it on the PVC (storage.import.importPodName, storage.pod.phase,
  storage.condition.running*).
* PV binding (Kubernetes pkg/controller/volume/persistentvolume/pv_controller.go): a claim of an
  Immediate class binds at once; of a WaitForFirstConsumer class only once the scheduler wrote
  volume.kubernetes.io/selected-node (nodes.py plays VolumeBinding). A pre-made Available PV of the
  class that is large enough is bound first; otherwise a PV pvc-<claim uid> is provisioned, except
  for kubernetes.io/no-provisioner, which stays Pending.
"""
from __future__ import annotations

import math
import re
from datetime import datetime, timezone

from tests.harness.apiserver import ApiError
from tests.kubevirt.loop import Loop

MERGE = "application/merge-patch+json"
API = "cdi.kubevirt.io"
DEFAULT_OVERHEAD = "0.06"
MIB = 1024 * 1024
NO_PROVISIONER = "kubernetes.io/no-provisioner"
SELECTED_NODE = "volume.kubernetes.io/selected-node"
DVS = "/apis/cdi.kubevirt.io/v1beta1/datavolumes"
CONFIG_EVERY = 25   # ticks

SUFFIX = {"Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30, "Ti": 2 ** 40, "Pi": 2 ** 50, "Ei": 2 ** 60,
          "k": 10 ** 3, "M": 10 ** 6, "G": 10 ** 9, "T": 10 ** 12, "P": 10 ** 15, "E": 10 ** 18, "": 1}


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_quantity(q: str) -> int:
    m = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(q))
    if not m or m.group(2) not in SUFFIX:
        raise ValueError(f"unsupported quantity {q!r}")
    return math.ceil(float(m.group(1)) * SUFFIX[m.group(2)])


def format_bytes(n: int) -> str:
    """resource.NewScaledQuantity(n, 0).String(): DecimalSI, the largest exact power-of-1000 suffix."""
    for suffix, factor in (("E", 10 ** 18), ("P", 10 ** 15), ("T", 10 ** 12), ("G", 10 ** 9), ("M", 10 ** 6),
                           ("k", 10 ** 3)):
        if n % factor == 0 and n:
            return f"{n // factor}{suffix}"
    return str(n)


def required_space(overhead: float, size: int) -> int:
    """CDI pkg/util/util.go GetRequiredSpace."""
    aligned = -(-size // MIB) * MIB
    return int(math.ceil(aligned * (1 + overhead)))


def overhead_for(config_status: dict, storage_class: str | None) -> str:
    """common/util.go GetFilesystemOverheadForStorageClass (the class's entry, else global)."""
    fs = (config_status or {}).get("filesystemOverhead") or {}
    if storage_class == "":
        return "0"
    return (fs.get("storageClass") or {}).get(storage_class or "", fs.get("global", "0"))


def pvc_spec(dv: dict, config_status: dict, default_class: str | None) -> dict:
    """util.go renderPvcSpec: spec.pvc as is; spec.storage with class defaulted and size inflated."""
    spec = dv["spec"]
    if spec.get("pvc") is not None:
        return dict(spec["pvc"])
    storage = dict(spec.get("storage") or {})
    out = {k: v for k, v in storage.items() if k in ("accessModes", "selector", "resources", "volumeName",
                                                     "storageClassName", "volumeMode", "dataSource",
                                                     "dataSourceRef")}
    if not out.get("storageClassName") and default_class:
        out["storageClassName"] = default_class
    size = ((out.get("resources") or {}).get("requests") or {}).get("storage")
    if size is not None:
        n = parse_quantity(size)
        if (out.get("volumeMode") or "Filesystem") == "Filesystem":
            n = required_space(float(overhead_for(config_status, out.get("storageClassName"))), n)
        out["resources"] = {**(out.get("resources") or {}), "requests": {**out["resources"]["requests"],
                                                                         "storage": format_bytes(n)}}
    return out


def new_pvc(dv: dict, spec: dict) -> dict:
    """controller-base.go newPersistentVolumeClaim with the import controller's annotations."""
    meta = dv["metadata"]
    labels = {"app": "containerized-data-importer"}
    if (spec.get("volumeMode") or "Filesystem") == "Filesystem":
        labels["alerts.k8s.io/KubePersistentVolumeFillingUp"] = "disabled"
    labels.update(meta.get("labels") or {})
    annotations = dict(meta.get("annotations") or {})
    annotations.update({"cdi.kubevirt.io/storage.pod.restarts": "0",
                        "cdi.kubevirt.io/storage.contentType": dv["spec"].get("contentType") or "kubevirt",
                        "cdi.kubevirt.io/storage.preallocation.requested": "false",
                        "cdi.kubevirt.io/createdForDataVolume": meta["uid"]})
    if "blank" in (dv["spec"].get("source") or {}):
        annotations["cdi.kubevirt.io/storage.import.source"] = "none"
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": meta["name"], "namespace": meta["namespace"], "labels": labels,
                         "annotations": annotations,
                         "ownerReferences": [{"apiVersion": f"{API}/v1beta1", "kind": "DataVolume", "name": meta["name"],
                                              "uid": meta["uid"], "controller": True, "blockOwnerDeletion": True}]},
            "spec": spec}


def dv_phase(dv: dict, pvc: dict | None, wffc: bool) -> str:
    """updateStatus / updateStatusPVCPending / the import controller's updateStatusPhase."""
    if pvc is None:
        return "Pending"
    phase = (pvc.get("status") or {}).get("phase", "Pending")
    pod_phase = (pvc["metadata"].get("annotations") or {}).get("cdi.kubevirt.io/storage.pod.phase")
    if phase == "Pending":
        return "WaitForFirstConsumer" if wffc else "Pending"
    if phase == "Lost":
        return "Failed"
    if phase == "Bound":
        return {"Pending": "ImportScheduled", "Running": "ImportInProgress", "Succeeded": "Succeeded",
                "Failed": "Failed"}.get(pod_phase or "", "PVCBound")
    return "Unknown"


def conditions(old: list[dict], phase: str, pvc: dict | None) -> list[dict]:
    """updateConditions: Bound from the PVC, Ready from the phase, Running from the importer's
    annotations; a condition's times change only when it changes (conditions.go updateCondition)."""
    t = now()
    anno = (pvc or {}).get("metadata", {}).get("annotations") or {}
    pvc_phase = ((pvc or {}).get("status") or {}).get("phase")
    if pvc is None:
        bound = ("False", "No PVC found", "NotFound")
    elif pvc_phase == "Bound":
        bound = ("True", f"PVC {pvc['metadata']['name']} Bound", "Bound")
    elif pvc_phase == "Pending":
        bound = ("False", f"PVC {pvc['metadata']['name']} Pending", "Pending")
    else:
        bound = ("False", "", "")
    ready = ("True" if phase == "Succeeded" else "Unknown" if phase == "Unknown" else "False", "", "")
    running = ("False", anno.get("cdi.kubevirt.io/storage.condition.running.message", ""),
               anno.get("cdi.kubevirt.io/storage.condition.running.reason", ""))
    if anno.get("cdi.kubevirt.io/storage.condition.running") == "true":
        running = ("True",) + running[1:]
    by_type = {c["type"]: c for c in old or []}
    out = []
    for ctype, (status, message, reason) in (("Bound", bound), ("Ready", ready), ("Running", running)):
        c = by_type.get(ctype)
        if c and (c["status"], c.get("message", ""), c.get("reason", "")) == (status, message, reason):
            out.append(c)
            continue
        out.append({"type": ctype, "status": status, "message": message, "reason": reason,
                    "lastHeartbeatTime": t,
                    "lastTransitionTime": t if not c or c["status"] != status else c["lastTransitionTime"]})
    return out


class CDI(Loop):
    """CDI's DataVolume and config controllers, the importer's outcome, and PV binding for one cluster,
    as a background loop polling every 0.2 s."""
    name = "cdi"

    def __init__(self, cluster, period: float = 0.2):
        super().__init__(cluster, period)
        self.import_faults: dict[str, tuple[str, str]] = {}   # namespace -> (importer pod phase, message)
        self._ticks = 0
        self._status: dict | None = None

    def req(self, method, path, body=None, content_type="application/json"):
        return self.cluster.request(method, path, body, content_type=content_type)

    def config_status(self, classes: list[dict]) -> dict:
        """CDIConfig `config`, created and its status reconciled like the config controller."""
        path = f"/apis/{API}/v1beta1/cdiconfigs/config"
        try:
            config = self.req("GET", path)
        except ApiError as e:
            if e.status != 404:
                raise
            config = self.req("POST", f"/apis/{API}/v1beta1/cdiconfigs",
                              {"apiVersion": f"{API}/v1beta1", "kind": "CDIConfig", "metadata": {"name": "config"},
                               "spec": {}})
        spec_fs = (config.get("spec") or {}).get("filesystemOverhead") or {}
        glob = spec_fs.get("global") or DEFAULT_OVERHEAD
        per = spec_fs.get("storageClass") or {}
        want = {"global": glob, "storageClass": {sc["metadata"]["name"]: per.get(sc["metadata"]["name"], glob)
                                                 for sc in classes}}
        status = config.get("status") or {}
        if status.get("filesystemOverhead") != want:
            # The harness's CDIConfig CRD has no status subresource (tests/harness/crds).
            status = self.req("PATCH", path, {"status": {"filesystemOverhead": want}},
                              content_type=MERGE).get("status") or {}
        return status

    def step(self) -> None:
        # Idle ticks cost two LISTs; the StorageClasses and CDIConfig are read when there is work
        # (and the config reconciled at least every CONFIG_EVERY ticks).
        pvcs = {(p["metadata"]["namespace"], p["metadata"]["name"]): p
                for p in self.req("GET", "/api/v1/persistentvolumeclaims")["items"]}
        dvs = self.req("GET", DVS)["items"]
        self._ticks += 1
        busy = any((p.get("status") or {}).get("phase") != "Bound" for p in pvcs.values()) or any(
            (d.get("status") or {}).get("phase") != "Succeeded" for d in dvs)
        if not busy and self._status is not None and self._ticks % CONFIG_EVERY:
            return
        classes = self.req("GET", "/apis/storage.k8s.io/v1/storageclasses")["items"]
        by_class = {sc["metadata"]["name"]: sc for sc in classes}
        default = next((n for n, sc in sorted(by_class.items()) if (sc["metadata"].get("annotations") or {})
                        .get("storageclass.kubernetes.io/is-default-class") == "true"), None)
        status = self._status = self.config_status(classes)
        for pvc in list(pvcs.values()):
            try:
                bound = self.bind(pvc, by_class)
            except ApiError as e:
                # 404: a claim left in a namespace the harness deleted meanwhile (made between its
                # deletecollection and the namespace's delete); it must not stop the others either
                if e.status != 404:
                    raise
                continue
            if bound:
                pvcs[(pvc["metadata"]["namespace"], pvc["metadata"]["name"])] = bound
        for dv in dvs:
            if dv["metadata"].get("deletionTimestamp"):
                continue
            try:
                self.sync_dv(dv, pvcs.get((dv["metadata"]["namespace"], dv["metadata"]["name"])), by_class, status,
                             default)
            except ApiError as e:
                # 404: the DV or its namespace is gone (the harness deletes a test's namespace while
                # virt-controller may make a DV again from its VM; kube-apiserver would refuse that
                # DV and its garbage collector remove it). One such DV must not stop the others.
                if e.status != 404:
                    raise

    # -- the DataVolume controller and the importer's outcome --

    def sync_dv(self, dv: dict, pvc: dict | None, by_class: dict, config_status: dict, default: str | None) -> None:
        ns, name = dv["metadata"]["namespace"], dv["metadata"]["name"]
        if pvc is None:
            try:
                pvc = self.req("POST", f"/api/v1/namespaces/{ns}/persistentvolumeclaims",
                               new_pvc(dv, pvc_spec(dv, config_status, default)))
            except ApiError as e:
                if e.status != 409:
                    raise
                return
        elif (pvc.get("status") or {}).get("phase") == "Bound":
            self.importer(pvc)
        sc = by_class.get(pvc["spec"].get("storageClassName") or "")
        wffc = bool(sc) and sc.get("volumeBindingMode") == "WaitForFirstConsumer"
        phase = dv_phase(dv, pvc, wffc)
        old = dv.get("status") or {}
        new = {"phase": phase, "claimName": name, "restartCount": 0,
               "progress": "100.0%" if phase == "Succeeded" else old.get("progress", "N/A"),
               "conditions": conditions(old.get("conditions") or [], phase, pvc)}
        if {k: old.get(k) for k in new} != new:
            self.req("PATCH", f"/apis/{API}/v1beta1/namespaces/{ns}/datavolumes/{name}/status", {"status": new},
                     content_type=MERGE)

    def hold_imports(self, namespace: str) -> None:
        """Importer pods of claims in the namespace keep running (a slow or stuck import)."""
        self.import_faults[namespace] = ("Running", "")

    def fail_imports(self, namespace: str, message: str) -> None:
        """Importers of claims in the namespace keep failing with this termination message. CDI's
        importer pod restarts on failure (makeImporterPodSpec: RestartPolicyOnFailure), so its phase
        stays Running and the DataVolume ImportInProgress, with Running False, reason Error (the
        container's last termination). Restart counts are not played."""
        self.import_faults[namespace] = ("Error", message)

    def importer(self, pvc: dict) -> None:
        """What the import controller records for its importer pod: scheduled, then Succeeded (or, for
        a namespace in import_faults, running for good or failing again and again). The annotations are
        CDI's (pkg/controller/import-controller.go updatePvcFromPod: storage.pod.phase; the running
        condition from the importer container's state, setAnnotationsFromPodWithPrefix: "Pod is running",
        or the terminated state's reason and message)."""
        anno = pvc["metadata"].get("annotations") or {}
        if anno.get("cdi.kubevirt.io/storage.import.source") is None:
            return
        phase = anno.get("cdi.kubevirt.io/storage.pod.phase")
        if phase == "Succeeded":
            return
        ns, name = pvc["metadata"]["namespace"], pvc["metadata"]["name"]
        fault = self.import_faults.get(ns)
        if phase is None:
            patch = {"cdi.kubevirt.io/storage.import.importPodName": f"importer-{name}",
                     "cdi.kubevirt.io/storage.pod.phase": "Pending"}
        elif fault and fault[0] == "Running":
            if phase == "Running":
                return
            patch = {"cdi.kubevirt.io/storage.pod.phase": "Running", "cdi.kubevirt.io/storage.pod.ready": "true",
                     "cdi.kubevirt.io/storage.condition.running": "true",
                     "cdi.kubevirt.io/storage.condition.running.reason": "Pod is running",
                     "cdi.kubevirt.io/storage.condition.running.message": ""}
        elif fault:
            if anno.get("cdi.kubevirt.io/storage.condition.running.reason") == "Error":
                return
            patch = {"cdi.kubevirt.io/storage.pod.phase": "Running", "cdi.kubevirt.io/storage.pod.ready": "false",
                     "cdi.kubevirt.io/storage.condition.running": "false",
                     "cdi.kubevirt.io/storage.condition.running.reason": "Error",
                     "cdi.kubevirt.io/storage.condition.running.message": fault[1]}
        else:
            patch = {"cdi.kubevirt.io/storage.pod.phase": "Succeeded", "cdi.kubevirt.io/storage.pod.ready": "false",
                     "cdi.kubevirt.io/storage.condition.running": "false",
                     "cdi.kubevirt.io/storage.condition.running.reason": "Completed",
                     "cdi.kubevirt.io/storage.condition.running.message": "Import Complete"}
        updated = self.req("PATCH", f"/api/v1/namespaces/{ns}/persistentvolumeclaims/{name}",
                           {"metadata": {"annotations": patch}}, content_type=MERGE)
        pvc["metadata"] = updated["metadata"]

    # -- the PV controller and a dynamic provisioner --

    def bind(self, pvc: dict, by_class: dict) -> dict | None:
        if (pvc.get("status") or {}).get("phase") != "Pending" or pvc["metadata"].get("deletionTimestamp"):
            return None
        class_name = pvc["spec"].get("storageClassName") or ""
        sc = by_class.get(class_name)
        if sc is None:
            return None
        anno = pvc["metadata"].get("annotations") or {}
        if sc.get("volumeBindingMode") == "WaitForFirstConsumer" and not anno.get(SELECTED_NODE):
            return None   # the PV controller waits for the scheduler's choice
        request = pvc["spec"].get("resources", {}).get("requests", {}).get("storage", "1Gi")
        pv = self.available_pv(pvc, class_name, parse_quantity(request))
        if pv is None:
            if sc["provisioner"] == NO_PROVISIONER:
                return None
            pv = self.provision(pvc, sc, request)
        ns, name = pvc["metadata"]["namespace"], pvc["metadata"]["name"]
        self.req("PATCH", f"/api/v1/persistentvolumes/{pv['metadata']['name']}/status",
                 {"status": {"phase": "Bound"}}, content_type=MERGE)
        self.req("PATCH", f"/api/v1/namespaces/{ns}/persistentvolumeclaims/{name}", {
            "metadata": {"annotations": {"pv.kubernetes.io/bind-completed": "yes",
                                         "pv.kubernetes.io/bound-by-controller": "yes"}},
            "spec": {"volumeName": pv["metadata"]["name"]}}, content_type=MERGE)
        return self.req("PATCH", f"/api/v1/namespaces/{ns}/persistentvolumeclaims/{name}/status", {"status": {
            "phase": "Bound", "accessModes": pv["spec"].get("accessModes") or pvc["spec"].get("accessModes"),
            "capacity": pv["spec"]["capacity"]}}, content_type=MERGE)

    def available_pv(self, pvc: dict, class_name: str, size: int) -> dict | None:
        for pv in sorted(self.req("GET", "/api/v1/persistentvolumes")["items"],
                         key=lambda p: parse_quantity(p["spec"]["capacity"]["storage"])):
            if (pv.get("status") or {}).get("phase") != "Available" or pv["spec"].get("claimRef"):
                continue
            if pv["spec"].get("storageClassName", "") != class_name:
                continue
            if (pv["spec"].get("volumeMode") or "Filesystem") != (pvc["spec"].get("volumeMode") or "Filesystem"):
                continue
            if parse_quantity(pv["spec"]["capacity"]["storage"]) < size:
                continue
            if not set(pvc["spec"].get("accessModes") or []) <= set(pv["spec"].get("accessModes") or []):
                continue
            self.req("PATCH", f"/api/v1/persistentvolumes/{pv['metadata']['name']}", {"spec": {"claimRef": {
                "kind": "PersistentVolumeClaim", "apiVersion": "v1", "namespace": pvc["metadata"]["namespace"],
                "name": pvc["metadata"]["name"], "uid": pvc["metadata"]["uid"]}}}, content_type=MERGE)
            return pv
        return None

    def provision(self, pvc: dict, sc: dict, request: str) -> dict:
        """An external-provisioner's PV for the claim (name pvc-<claim uid>, capacity as requested)."""
        meta = pvc["metadata"]
        pv = {"apiVersion": "v1", "kind": "PersistentVolume",
              "metadata": {"name": f"pvc-{meta['uid']}",
                           "annotations": {"pv.kubernetes.io/provisioned-by": sc["provisioner"]}},
              "spec": {"capacity": {"storage": request}, "accessModes": pvc["spec"].get("accessModes") or
                       ["ReadWriteOnce"], "volumeMode": pvc["spec"].get("volumeMode") or "Filesystem",
                       "storageClassName": sc["metadata"]["name"],
                       "persistentVolumeReclaimPolicy": sc.get("reclaimPolicy") or "Delete",
                       "csi": {"driver": sc["provisioner"], "volumeHandle": meta["uid"]},
                       "claimRef": {"kind": "PersistentVolumeClaim", "apiVersion": "v1",
                                    "namespace": meta["namespace"], "name": meta["name"], "uid": meta["uid"]}}}
        try:
            return self.req("POST", "/api/v1/persistentvolumes", pv)
        except ApiError as e:
            if e.status != 409:
                raise
            return self.req("GET", f"/api/v1/persistentvolumes/{pv['metadata']['name']}")


_cdis: dict[int, CDI] = {}


def cdi(cluster) -> CDI:
    """The cluster's running played CDI, started on first use."""
    c = _cdis.get(id(cluster))
    if c is None:
        c = _cdis[id(cluster)] = CDI(cluster).start()
    return c


def stop_all() -> None:
    for c in _cdis.values():
        c.stop()
    _cdis.clear()
