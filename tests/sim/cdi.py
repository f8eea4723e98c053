"""CDI for DataVolumes, plus the PV binder a real cluster runs in kube-controller-manager.

Every DataVolume gets a PVC of the same name; every Pending PVC is bound at its requested size
(a dynamic provisioner with Immediate binding); the DataVolume then reports Succeeded, 100.0%.
The import itself (http, registry, blank, clone) is not simulated: it succeeds at once, unless
Faults.hold_disks / fail_disks make the DataVolumes of a namespace stay importing or fail.
"""
from __future__ import annotations

from .constants import MGR_CDI
from .objects import dig, now, owner_ref
from .runtime import Controller

DV_READY_PHASES = ("Succeeded", "WaitForFirstConsumer", "PendingPopulation")  # VMC:512-573


class CDI(Controller):
    name = "cdi"

    def reconcile(self, key):
        kind, ns, name = key
        if kind == "pvc":
            self._bind(ns, name)
        else:
            self._sync_dv(ns, name)

    def _bind(self, ns: str, name: str) -> None:
        pvc = self.cluster.get("pvc", ns, name)
        if pvc is None or pvc["metadata"].get("deletionTimestamp"):
            return
        if dig(pvc, "status", "phase") == "Bound":
            return
        if not dig(pvc, "spec", "volumeName"):
            pvc["spec"]["volumeName"] = f"pvc-{pvc['metadata']['uid']}"
            self.cluster.replace("pvc", pvc, "persistentvolume-binder")
            return
        request = dig(pvc, "spec", "resources", "requests", "storage", default="1Gi")
        pvc["status"] = {"phase": "Bound", "capacity": {"storage": request},
                         "accessModes": dig(pvc, "spec", "accessModes", default=["ReadWriteOnce"])}
        self.cluster.replace_status("pvc", pvc, "persistentvolume-binder")

    def _sync_dv(self, ns: str, name: str) -> None:
        dv = self.cluster.get("dv", ns, name)
        if dv is None or dv["metadata"].get("deletionTimestamp"):
            return
        pvc = self.cluster.get("pvc", ns, name)
        if pvc is None:
            self.cluster.create("pvc", self._pvc_for(dv), MGR_CDI)
            self._status(dv, "Pending", "N/A", bound=False)
            return
        if dig(pvc, "status", "phase") != "Bound":
            return  # the binder will get to it; its event brings us back
        fault = self.sim.faults.disk_faults.get((self.cluster.name, ns))
        if fault == "hold":  # an import that does not finish (a slow or stuck importer pod)
            self._status(dv, "ImportInProgress", "10.00%", bound=True)
            return
        if fault == "fail":  # what CDI reports when the importer pod keeps failing
            self._status(dv, "Failed", "N/A", bound=True, failure="Unable to process data: blank image: no space left")
            return
        self._status(dv, "Succeeded", "100.0%", bound=True)

    def _pvc_for(self, dv: dict) -> dict:
        src = dig(dv, "spec", "pvc") or dig(dv, "spec", "storage") or {}
        spec = {"accessModes": src.get("accessModes") or ["ReadWriteOnce"],  # storage profile default
                "volumeMode": src.get("volumeMode") or "Filesystem",
                "resources": {"requests": {"storage": dig(src, "resources", "requests", "storage", default="1Gi")}}}
        if src.get("storageClassName"):
            spec["storageClassName"] = src["storageClassName"]
        return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {"name": dv["metadata"]["name"], "namespace": dv["metadata"]["namespace"],
                             "labels": {"app": "containerized-data-importer",
                                        "app.kubernetes.io/component": "storage",
                                        "app.kubernetes.io/managed-by": "cdi-controller"},
                             "ownerReferences": [owner_ref(dv)]},
                "spec": spec}

    def _status(self, dv: dict, phase: str, progress: str, bound: bool, failure: str = "") -> None:
        st = dv.get("status") or {}
        if st.get("phase") == phase and st.get("claimName") == dv["metadata"]["name"]:
            return
        t = now()
        done = phase == "Succeeded"

        def cond(ctype, status, reason, message=""):
            return {"type": ctype, "status": status, "reason": reason, "message": message,
                    "lastHeartbeatTime": t, "lastTransitionTime": t}
        dv["status"] = {
            "phase": phase, "progress": progress, "claimName": dv["metadata"]["name"], "restartCount": 0,
            "conditions": [
                cond("Bound", "True" if bound else "False", "Bound" if bound else "Pending",
                     f"PVC {dv['metadata']['name']} Bound" if bound else "PVC Pending"),
                cond("Ready", "True" if done else "False", "" if done else "TransferRunning"),
                cond("Running", "False", "Error", failure) if failure else
                cond("Running", "False", "Completed" if done else "Pending"),
            ]}
        self.cluster.replace_status("dv", dv, MGR_CDI)
