"""virt-controller's VMI lifecycle controller (LC): VMI phases driven by the launcher pod.

Normal start: Pending -> Scheduling (pod exists) -> Scheduled (pod ready); virt-handler then sets
Running. A receiver VMI (annotation kubevirt.io/create-migration-target) goes Pending ->
WaitingForSync and gets no pod until a migration creates the target pod (§1 rows 5, 25-26).
"""
from __future__ import annotations

import copy

from .constants import (C_READY, FIN_VMI_CONTROLLER, FIN_VMI_FOREGROUND, FINAL_PHASES, LABEL_MIGRATION_TARGET_NODE,
                        LABEL_NODE_NAME, MGR_CONTROLLER, MSG_POD_NOT_SCHEDULED)
from .objects import controlled_by, dig, labels, now, set_condition, set_phase
from .pods import Pod
from .runtime import Controller
from .vm_controller import is_decentralized
from .webhooks import is_receiver

POD_START_SECONDS = 0.05  # pod created -> Running/Ready


def ready_false(reason: str, message: str) -> dict:
    return {"type": C_READY, "status": "False", "reason": reason, "message": message,
            "lastProbeTime": None, "lastTransitionTime": now()}


def volume_status(cluster, vmi: dict) -> list[dict]:
    """status.volumeStatus as LC fills it at Scheduled: disk target and, for PVCs, the claim's facts."""
    ns = vmi["metadata"]["namespace"]
    disks = [d["name"] for d in dig(vmi, "spec", "domain", "devices", "disks", default=[])]
    out = []
    for i, vol in enumerate(dig(vmi, "spec", "volumes", default=[])):
        entry = {"name": vol["name"], "target": ""}  # `target` is required, "" when no disk uses it
        if vol["name"] in disks:
            entry["target"] = "vd" + "abcdefghijklmnopqrstuvwxyz"[disks.index(vol["name"]) % 26]
        claim = claim_name(vol)
        if claim:
            pvc = cluster.get("pvc", ns, claim)
            if pvc is not None:
                entry["persistentVolumeClaimInfo"] = pvc_info(pvc)
        out.append(entry)
    return out


def claim_name(volume: dict) -> str | None:
    return dig(volume, "persistentVolumeClaim", "claimName") or dig(volume, "dataVolume", "name")


def pvc_info(pvc: dict) -> dict:
    info = {"claimName": pvc["metadata"]["name"],
            "accessModes": dig(pvc, "status", "accessModes") or dig(pvc, "spec", "accessModes", default=[]),
            "volumeMode": dig(pvc, "spec", "volumeMode", default="Filesystem"),
            "requests": dig(pvc, "spec", "resources", "requests", default={}),
            "capacity": dig(pvc, "status", "capacity", default={})}
    if info["volumeMode"] == "Filesystem":
        info["filesystemOverhead"] = "0.055"
    return info


class VMILifecycle(Controller):
    name = "virt-controller/vmi"

    def reconcile(self, key):
        ns, name = key
        c = self.cluster
        vmi = c.get("vmi", ns, name)
        if vmi is None or not c.admitted(vmi):
            return
        uid = vmi["metadata"]["uid"]
        st = vmi.setdefault("status", {})
        phase = st.get("phase") or "Pending"
        self._adopt(vmi, phase)
        if vmi["metadata"].get("deletionTimestamp"):
            return self._deleting(vmi, phase)
        receiver = is_receiver(vmi)
        if phase == "Pending":
            if receiver and LABEL_MIGRATION_TARGET_NODE not in (vmi["metadata"].get("labels") or {}):
                set_phase(st, "WaitingForSync")  # row 5 (LC:320-330)
                set_condition(st, ready_false("PodNotExists", MSG_POD_NOT_SCHEDULED))
                return self._write(vmi)
            pod = c.pods.launcher(ns, uid)
            if pod is None:
                set_condition(st, ready_false("PodNotExists", MSG_POD_NOT_SCHEDULED))
                self._write_if_changed(vmi)
                c.start_pod(Pod(ns, f"virt-launcher-{name}-{c.rng_id()}", name, uid, c.nodes[0]), POD_START_SECONDS)
                return
            set_phase(st, "Scheduling")
            return self._write(vmi)
        if phase == "WaitingForSync":
            pod = self._target_pod(vmi)
            if pod is not None and not pod.down:
                set_phase(st, "Scheduling")  # LC:536-549: the migration created our pod
                return self._write(vmi)
            return
        if phase == "Scheduling":
            pod = self._target_pod(vmi) if receiver else c.pods.launcher(ns, uid)
            if pod is None or pod.down:
                set_phase(st, "WaitingForSync" if receiver else "Failed")  # LC:442-457
                return self._write(vmi)
            if pod.ready:  # row 26 (LC:396-441)
                set_phase(st, "Scheduled")
                labels(vmi)[LABEL_NODE_NAME] = pod.node
                st["nodeName"] = pod.node
                st["migrationTransport"] = "Unix"
                st["volumeStatus"] = volume_status(c, vmi)
                return self._write(vmi)
            return
        if phase == "Scheduled":
            ms = st.get("migrationState") or {}
            if receiver and ms.get("failed") and ms.get("completed"):
                set_phase(st, "WaitingForSync")  # LC:516-527, endTimestamp overwritten
                ms["endTimestamp"] = now()
                return self._write(vmi)
            if receiver:
                handed_off = ms.get("migrationUid") and ms["migrationUid"] == dig(ms, "targetState", "migrationUID")
                pod = self._target_pod(vmi)
                if (pod is None or pod.down) and not handed_off:  # cancelled before the hand-off
                    set_phase(st, "WaitingForSync")
                    return self._write(vmi)
                return  # after the hand-off, the failure flags bring it back (above)
            pod = c.pods.launcher(ns, uid, node=st.get("nodeName"))
            if pod is None or pod.down:
                set_phase(st, "Failed")
                return self._write(vmi)
            return
        if phase == "Running":
            pod = c.pods.launcher(ns, uid, node=st.get("nodeName"))
            if pod is None or pod.deleted or pod.phase == "Failed":
                set_phase(st, "Failed")  # LC:480-485: a Running VMI without its pod
                set_condition(st, ready_false("PodTerminating", "virt-launcher pod is terminating"))
                return self._write(vmi)
            if pod.phase == "Succeeded":
                ms = st.get("migrationState") or {}
                if is_decentralized(vmi) and not ms.get("completed"):
                    return  # LC:487-490: wait for the outcome to arrive
                set_phase(st, "Succeeded")
                set_condition(st, ready_false("PodTerminating", "virt-launcher pod is terminating"))
                return self._write(vmi)

    def _target_pod(self, vmi: dict) -> Pod | None:
        pods = [p for p in self.cluster.pods.for_vmi(vmi["metadata"]["namespace"], vmi["metadata"]["uid"])
                if p.migration_uid and not p.deleted]
        return pods[-1] if pods else None

    def _adopt(self, vmi: dict, phase: str) -> None:
        """A VMI that was running before this simulator started keeps a (remembered) running pod."""
        st, c = vmi["status"], self.cluster
        if phase in ("Scheduled", "Running") and st.get("nodeName") and \
                not c.pods.known(vmi["metadata"]["namespace"], vmi["metadata"]["uid"]):
            md = vmi["metadata"]
            c.pods.add(Pod(md["namespace"], f"virt-launcher-{md['name']}-{c.rng_id()}", md["name"], md["uid"],
                           st["nodeName"], phase="Running", ready=True))

    def _deleting(self, vmi: dict, phase: str):
        """The handler shuts the domain down, the pod completes, finalizers go (LC + handler)."""
        c, st = self.cluster, vmi["status"]
        if phase not in FINAL_PHASES:
            for pod in c.pods.for_vmi(vmi["metadata"]["namespace"], vmi["metadata"]["uid"]):
                if not pod.down:
                    c.pods.update(pod, phase="Succeeded", ready=False)
            set_phase(st, "Succeeded")
            set_condition(st, ready_false("PodTerminating", "virt-launcher pod is terminating"))
            return self._write(vmi)
        fins = vmi["metadata"].get("finalizers") or []
        drop = {FIN_VMI_FOREGROUND}
        owner = controlled_by(vmi, "VirtualMachine")
        if owner is None or c.get("vm", vmi["metadata"]["namespace"], owner) is None:
            drop.add(FIN_VMI_CONTROLLER)  # no VM controller will come for it
        if any(f in drop for f in fins):
            vmi["metadata"]["finalizers"] = [f for f in fins if f not in drop]
            return self._write(vmi)

    def _write(self, vmi: dict) -> None:
        self.cluster.replace("vmi", vmi, MGR_CONTROLLER)

    def _write_if_changed(self, vmi: dict) -> None:
        old = self.cluster.get("vmi", vmi["metadata"]["namespace"], vmi["metadata"]["name"])
        if old is not None and copy.deepcopy(old.get("status")) != vmi.get("status"):
            self._write(vmi)
