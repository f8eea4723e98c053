"""virt-controller's migration controller (MC) for decentralized VMIMs (§1 rows 8-10, 13-14, 18-28, 39, 43, 46).

Each reconcile works on one snapshot: first `sync` (VMI writes, target pod), then `update_status`,
which makes at most one phase transition (MC:716-856). Local (non-decentralized) migrations are
not simulated.
"""
from __future__ import annotations

import copy

from .constants import (ANN_LATEST_OBSERVED, ANN_STORAGE_OBSERVED, C_ABORT_REQUESTED, C_DLM_BLOCKED,
                        C_DLM_FAILURE, FIN_MIGRATION_JOB, FINAL_PHASES, LABEL_MIGRATION_TARGET_NODE,
                        LABEL_VMI_NAME, MGR_CONTROLLER, P_FAILED, P_PENDING, P_PREPARING_TARGET, P_RUNNING,
                        P_SCHEDULED, P_SCHEDULING, P_SUCCEEDED, P_SYNCHRONIZING, P_TARGET_READY,
                        P_WAITING_FOR_SYNC)
from .objects import annotations, dig, get_condition, labels, now, remove_condition, set_condition, set_phase
from .pods import Pod
from . import kube as K
from .runtime import Controller


def decentralized(m: dict) -> bool:
    spec = m.get("spec") or {}
    return (spec.get("sendTo") is None) != (spec.get("receive") is None)  # T:1891-1894


def is_source(m: dict) -> bool:
    return dig(m, "spec", "sendTo") is not None


class MigrationController(Controller):
    name = "virt-controller/migration"

    def reconcile(self, key):
        ns, name = key
        c = self.cluster
        m = c.get("vmim", ns, name)
        if m is None or not c.admitted(m) or not decentralized(m):
            return
        ann = annotations(m)
        if ann.get(ANN_LATEST_OBSERVED) != "v1" or ann.get(ANN_STORAGE_OBSERVED) != "v1" or \
                LABEL_VMI_NAME not in labels(m):
            # row 8: the first reconcile only records the observed API version (MC:389-396)
            ann[ANN_LATEST_OBSERVED] = ann[ANN_STORAGE_OBSERVED] = "v1"
            labels(m).setdefault(LABEL_VMI_NAME, dig(m, "spec", "vmiName"))
            c.replace("vmim", m, MGR_CONTROLLER)
            return
        vmi = c.get("vmi", ns, dig(m, "spec", "vmiName"))
        if vmi is None:
            if not m["metadata"].get("deletionTimestamp"):
                c.delete("vmim", ns, name, m["metadata"]["uid"])  # MC:398-407: its VMI is gone
            else:
                self._drop_finalizer(m)
            return
        if dig(m, "status", "phase") in FINAL_PHASES:
            return self._final(m, vmi)
        uid = m["metadata"]["uid"]
        target_pod = None if is_source(m) else c.pods.for_migration(ns, uid)
        pod_snapshot = (target_pod is not None, target_pod is not None and target_pod.ready,
                        target_pod is not None and target_pod.down)
        self._sync(m, vmi, target_pod)
        self._update_status(m, vmi, pod_snapshot)

    # ---- VMI side effects ----

    def _sync(self, m: dict, vmi: dict, target_pod: Pod | None) -> None:
        c, uid, phase = self.cluster, m["metadata"]["uid"], dig(m, "status", "phase", default="")
        st = vmi.setdefault("status", {})
        ms = copy.deepcopy(st.get("migrationState") or {})  # edited, then compared with the original
        handed_off = ms.get("migrationUid") == uid
        deleting = bool(m["metadata"].get("deletionTimestamp"))
        if deleting:
            if handed_off and not ms.get("abortRequested") and not ms.get("completed") and \
                    (not is_source(m) or phase == P_RUNNING):
                ms["abortRequested"] = True  # MC:1921-1927
                self._write_ms(vmi, ms)
            elif not handed_off and target_pod is not None and not target_pod.down:
                c.pods.update(target_pod, deleted=True)  # MC:1788-1791: the pending target pod goes
            return
        if is_source(m):
            if phase == P_SYNCHRONIZING:  # row 14 (DZ:38-53), re-applied every time
                if not ms or ms.get("completed"):
                    ms = {}
                ms.setdefault("sourceState", {}).update(
                    {"migrationUID": uid, "virtualMachineInstanceUID": vmi["metadata"]["uid"],
                     "domainNamespace": vmi["metadata"]["namespace"]})
                ms.setdefault("targetState", {})["syncAddress"] = dig(m, "spec", "sendTo", "connectURL")
                self._write_ms(vmi, ms)
            elif phase == P_SCHEDULING and not handed_off:  # row 20, first write (DZ:130-153)
                pod = c.pods.launcher(vmi["metadata"]["namespace"], vmi["metadata"]["uid"], node=st.get("nodeName"))
                pod_name = pod.name if pod else ""
                ms.update({"sourceNode": st.get("nodeName", ""), "sourcePod": pod_name, "migrationUid": uid})
                src = ms.setdefault("sourceState", {})
                src.update({"node": st.get("nodeName", ""), "pod": pod_name, "nodeSelectors": {}})
                if st.get("selinuxContext"):
                    src["selinuxContext"] = st["selinuxContext"]
                self._write_ms(vmi, ms)
            elif phase == P_SCHEDULING and "migratedVolumes" not in st:  # row 20, second write
                vols = [{"volumeName": v["name"], "sourcePVCInfo": v["persistentVolumeClaimInfo"],
                         "destinationPVCInfo": v["persistentVolumeClaimInfo"]}
                        for v in st.get("volumeStatus") or [] if v.get("persistentVolumeClaimInfo")]
                if vols:
                    st["migratedVolumes"] = vols
                    c.replace("vmi", vmi, MGR_CONTROLLER)
            return
        if phase == P_WAITING_FOR_SYNC:  # row 10 (DZ:55-65)
            if not ms or ms.get("completed"):
                ms = {}
            if dig(ms, "targetState", "migrationUID") != uid:
                ts = ms.setdefault("targetState", {})
                ts["migrationUID"] = uid
                for legacy, field in (("targetPod", "pod"), ("targetNode", "node")):
                    if ms.get(legacy):
                        ts[field] = ms[legacy]
                self._write_ms(vmi, ms)
        elif phase == P_PENDING and target_pod is None:  # row 24: the target launcher pod
            source_node = dig(ms, "sourceState", "node")
            node = next(n for n in c.nodes if n != source_node)  # affinity: hostname NotIn [source node]
            c.start_pod(Pod(vmi["metadata"]["namespace"], f"virt-launcher-{vmi['metadata']['name']}-{c.rng_id()}",
                            vmi["metadata"]["name"], vmi["metadata"]["uid"], node, migration_uid=uid))
        elif phase == P_SCHEDULED and not handed_off and target_pod is not None and target_pod.ready:
            labels(vmi)[LABEL_MIGRATION_TARGET_NODE] = target_pod.node  # row 27: the hand-off
            ms.update({"migrationUid": uid, "targetNode": target_pod.node, "targetPod": target_pod.name,
                       "sourceNode": dig(ms, "sourceState", "node", default="")})
            ms.pop("completed", None)
            ms.pop("failed", None)
            ms.setdefault("targetState", {}).update(
                {"migrationUID": uid, "node": target_pod.node, "pod": target_pod.name,
                 "virtualMachineInstanceUID": vmi["metadata"]["uid"], "domainNamespace": vmi["metadata"]["namespace"],
                 "domainName": vmi["metadata"]["name"]})
            self._write_ms(vmi, ms)

    def _write_ms(self, vmi: dict, ms: dict) -> None:
        if vmi["status"].get("migrationState") == ms:
            return
        vmi["status"]["migrationState"] = ms
        self.cluster.replace("vmi", vmi, MGR_CONTROLLER)

    # ---- VMIM status ----

    def _next_phase(self, m: dict, vmi: dict, pod_snapshot) -> str:
        """One transition at most (MC:716-856)."""
        uid, phase = m["metadata"]["uid"], dig(m, "status", "phase", default="")
        pod_exists, pod_ready, pod_down = pod_snapshot
        st = vmi.get("status") or {}
        ms = st.get("migrationState") or {}
        handed_off = ms.get("migrationUid") == uid
        if m["metadata"].get("deletionTimestamp") and not handed_off:
            return P_FAILED  # cancelled before the hand-off (MC:575-588)
        if not is_source(m) and pod_exists and pod_down:
            return P_FAILED  # target pod shut down / removed during the migration (MC:589-605)
        if handed_off and ms.get("completed") and ms.get("failed"):
            return P_FAILED  # "source node reported migration failed" (MC:622-631)
        src, ts = ms.get("sourceState") or {}, ms.get("targetState") or {}
        if phase == "":
            return P_SYNCHRONIZING if is_source(m) else P_WAITING_FOR_SYNC  # MC:731-735
        if phase == P_WAITING_FOR_SYNC:  # T:635-642
            ok = src.get("migrationUID") and src.get("pod") and src.get("node") and src.get("nodeSelectors") is not None
            return P_PENDING if ok else phase
        if phase == P_SYNCHRONIZING:  # MC:784-788
            return P_PENDING if src.get("migrationUID") and ts.get("migrationUID") else phase
        if phase == P_PENDING:
            if is_source(m):
                return P_SCHEDULING if st.get("phase") == "Running" else phase  # MC:774-779
            return P_SCHEDULING if pod_exists else phase  # MC:757-765
        if phase == P_SCHEDULING:
            if is_source(m):
                return P_SCHEDULED if ts.get("pod") else phase  # MC:797-799
            return P_SCHEDULED if pod_ready else phase  # MC:800-809
        if phase == P_SCHEDULED:
            return P_PREPARING_TARGET if ts.get("pod") and ts.get("node") else phase  # MC:810-813
        if phase == P_PREPARING_TARGET:
            return P_TARGET_READY if ms.get("targetNode") and ms.get("targetNodeAddress") else phase  # MC:814-818
        if phase == P_TARGET_READY:
            return P_RUNNING if ms.get("startTimestamp") else phase  # MC:819-822
        if phase == P_RUNNING and handed_off and ms.get("completed") and not ms.get("failed"):
            blocked = any(c.get("type") == "VCPUChange" or (c.get("type") in ("MemoryChange", "MigrationRequired")
                                                            and c.get("status") == "True")
                          for c in st.get("conditions") or [])
            return phase if blocked else P_SUCCEEDED  # MC:846-853
        return phase

    def _update_status(self, m: dict, vmi: dict, pod_snapshot) -> None:
        c = self.cluster
        old = m.get("status") or {}
        st = dict(old)
        st["conditions"] = [dict(x) for x in old.get("conditions") or []]
        st["phaseTransitionTimestamps"] = list(old.get("phaseTransitionTimestamps") or [])
        new_phase = self._next_phase(m, vmi, pod_snapshot)
        if new_phase != old.get("phase", ""):
            set_phase(st, new_phase)
            if new_phase == P_FAILED:
                self._failure_event(m, vmi, pod_snapshot)
        if m["metadata"].get("deletionTimestamp"):  # MC:577-583, 634-639: no reason, no message
            set_condition(st, {"type": C_ABORT_REQUESTED, "status": "True", "lastProbeTime": now(),
                               "lastTransitionTime": None})
        failure = get_condition(vmi.get("status"), C_DLM_FAILURE)
        if failure:  # MC:678-696: mirror the VMI condition; the first message sticks
            set_condition(st, {"type": C_DLM_BLOCKED, "status": "True", "reason": failure.get("reason", ""),
                               "message": failure.get("message", ""), "lastProbeTime": now(),
                               "lastTransitionTime": None})
        else:
            remove_condition(st, C_DLM_BLOCKED)
        if not st["conditions"]:
            st.pop("conditions")
        addresses = dig(c.kubevirt_cr(), "status", "synchronizationAddresses")
        if addresses:  # MC:698-714: copied on every reconcile; nil removes the field
            st["synchronizationAddresses"] = list(addresses)
        elif c.kubevirt_cr() is not None:
            st.pop("synchronizationAddresses", None)
        if is_source(m) and (new_phase == P_PENDING or old.get("phase") == P_PENDING):  # CTL:423-438
            ms = dig(vmi, "status", "migrationState", default={})
            pod = c.pods.launcher(vmi["metadata"]["namespace"], vmi["metadata"]["uid"],
                                  node=dig(vmi, "status", "nodeName"))
            if pod is not None:
                st.setdefault("migrationState", {})
                st["migrationState"] = dict(st["migrationState"], sourcePod=ms.get("sourcePod") or pod.name)
        if st == old:
            return
        m["status"] = st
        c.replace_status("vmim", m, MGR_CONTROLLER)

    def _failure_event(self, m: dict, vmi: dict, pod_snapshot) -> None:
        """The Warning Event KubeVirt records on the VMIM when it fails it (MC:566-629): before the
        hand-off this is the only place the cause is written (the VMIM gets no migrationState, T:863-868)."""
        ms = dig(vmi, "status", "migrationState", default={})
        handed_off = ms.get("migrationUid") == m["metadata"]["uid"]
        if m["metadata"].get("deletionTimestamp") and not handed_off:
            message = "Migration failed due to being canceled"  # MC:576
        elif not is_source(m) and pod_snapshot[0] and pod_snapshot[2]:
            message = "Migration failed because target pod shutdown during migration"  # MC:594
        else:
            message = "source node reported migration failed"  # MC:629
        c, meta = self.cluster, m["metadata"]
        stamp = now()
        event = {"apiVersion": "v1", "kind": "Event",
                 "metadata": {"name": f"{meta['name']}.{c.rng_id()}", "namespace": meta["namespace"]},
                 "involvedObject": {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstanceMigration",
                                    "namespace": meta["namespace"], "name": meta["name"], "uid": meta["uid"]},
                 "type": "Warning", "reason": "FailedMigration", "message": message, "count": 1,
                 "firstTimestamp": stamp, "lastTimestamp": stamp, "source": {"component": "virt-controller"}}
        c.kube.create(K.EVENT, event, MGR_CONTROLLER)

    # ---- final ----

    def _final(self, m: dict, vmi: dict) -> None:
        c, uid = self.cluster, m["metadata"]["uid"]
        st = vmi.setdefault("status", {})
        ms = st.get("migrationState") or {}
        if not is_source(m) and m["status"]["phase"] == P_FAILED and ms.get("migrationUid") == uid and \
                not ms.get("completed"):
            # MC:1909-1919: the Failed case writes the outcome onto the target VMI
            ms.update({"failed": True, "completed": True, "endTimestamp": ms.get("endTimestamp") or now(),
                       "startTimestamp": ms.get("startTimestamp") or now(),
                       "failureReason": ms.get("failureReason") or "Target pod is down"})
            pod = c.pods.for_migration(vmi["metadata"]["namespace"], uid)
            if pod is not None and not pod.deleted:
                c.pods.update(pod, deleted=True)  # DZ:155-172: delete the VMI's current pod
            c.replace("vmi", vmi, MGR_CONTROLLER)
            return
        if ms.get("migrationUid") == uid and m["status"].get("migrationState") != ms:
            m["status"]["migrationState"] = ms  # MC:553-560
            m = c.replace_status("vmim", m, MGR_CONTROLLER)
        self._drop_finalizer(m)

    def _drop_finalizer(self, m: dict) -> None:
        fins = m["metadata"].get("finalizers") or []
        if FIN_MIGRATION_JOB in fins:
            m["metadata"]["finalizers"] = [f for f in fins if f != FIN_MIGRATION_JOB]
            self.cluster.replace("vmim", m, MGR_CONTROLLER)
