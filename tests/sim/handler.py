"""virt-handler: starts domains (HV), prepares migration targets (HT) and runs migrations out (HS).

There is no libvirt: a VMI's domain is its launcher pod plus, during a migration, a Transfer on the
Fabric. Everything written to the VMI follows §1 rows 31, 34, 37, 38, 40, 44 and §2.1-2.3.
"""
from __future__ import annotations

import hashlib
import time

from .constants import (ANN_ALLOW_POD_BRIDGE_MIGRATION, ANN_CREATE_MIGRATION_TARGET, C_LIVE_MIGRATABLE, C_READY,
                        C_STORAGE_LIVE_MIGRATABLE, LABEL_MIGRATION_TARGET_NODE, LABEL_NODE_NAME, MGR_HANDLER)
from .objects import dig, labels, now, quantity_bytes, remove_condition, set_condition, set_phase
from .runtime import Requeue, Controller
from .transfer import Endpoint
from .vmi_lifecycle import claim_name
from .webhooks import is_receiver

MIGRATION_PORTS = (49152, 49153)  # the target's direct migration proxy ports
ABORT_REASON_SOURCE = "Live migration aborted "  # what the source launcher reports after a cancel
ABORT_REASON_TARGET = "Live migration has been aborted"  # HT:237-276
RWX_REQUIRED = "live migration requires that all PVCs must be shared (using ReadWriteMany access mode)"
ABORT_GRACE = 2.0  # seconds the target waits for a cancelled source's outcome before calling it a failure


class Handler(Controller):
    name = "virt-handler"

    def reconcile(self, key):
        ns, name = key
        c = self.cluster
        vmi = c.get("vmi", ns, name)
        if vmi is None or not c.admitted(vmi) or vmi["metadata"].get("deletionTimestamp"):
            return None
        st = vmi.setdefault("status", {})
        ms = st.get("migrationState") or {}
        if dig(ms, "sourceState", "migrationUID") and dig(ms, "targetState", "syncAddress") and \
                ms.get("sourceNode") and ms.get("migrationUid") == dig(ms, "sourceState", "migrationUID"):
            return self._source(vmi)
        if LABEL_MIGRATION_TARGET_NODE in (vmi["metadata"].get("labels") or {}) and \
                ms.get("migrationUid") and ms.get("migrationUid") == dig(ms, "targetState", "migrationUID"):
            done = self._target(vmi)
            if done is not False:
                return done
        return self._main(vmi)

    # ---- HV: the VMI's own domain ----

    def _main(self, vmi: dict):
        st, c = vmi["status"], self.cluster
        if st.get("phase") != "Scheduled" or is_receiver(vmi):
            return None
        pod = c.pods.launcher(vmi["metadata"]["namespace"], vmi["metadata"]["uid"], node=st.get("nodeName"))
        if pod is None or not pod.ready or pod.down:
            return None
        set_phase(st, "Running")  # domain up (HV:2282-2283)
        st["interfaces"] = self._interfaces(vmi)
        st["guestOSInfo"] = st.get("guestOSInfo") or {}
        st["qosClass"] = "Burstable"
        st["activePods"] = {pod.uid: pod.node}
        set_condition(st, {"type": C_READY, "status": "True", "lastProbeTime": None, "lastTransitionTime": now()})
        self._migration_conditions(vmi)
        c.replace("vmi", vmi, MGR_HANDLER)
        return None

    def _interfaces(self, vmi: dict) -> list[dict]:
        nets = {n["name"]: n for n in dig(vmi, "spec", "networks", default=[])}
        out = []
        for i, iface in enumerate(dig(vmi, "spec", "domain", "devices", "interfaces", default=[])):
            digest = hashlib.sha256(f"{vmi['metadata']['uid']}/{iface['name']}".encode()).digest()
            mac = iface.get("macAddress") or "02:" + ":".join(f"{b:02x}" for b in digest[:5])
            entry = {"name": iface["name"], "interfaceName": f"eth{i}", "mac": mac, "queueCount": 1,
                     "infoSource": "domain, guest-agent"}
            if "pod" in nets.get(iface["name"], {}):
                ip = f"10.244.{self.cluster.index}.{digest[5] % 250 + 2}"
                entry.update({"ipAddress": ip, "ipAddresses": [ip], "podInterfaceName": "eth0"})
            out.append(entry)
        return out

    def _migration_conditions(self, vmi: dict) -> None:
        """LiveMigratable and StorageLiveMigratable, as the handler calculates them."""
        st = vmi["status"]
        live, storage, block = migratability(self.cluster, vmi)
        for cond in (live, storage):
            if not _same(st, cond):
                remove_condition(st, cond["type"])
                set_condition(st, cond)
        st["migrationMethod"] = "BlockMigration" if block else "LiveMigration"

    # ---- HS: the source of a decentralized migration ----

    def _source(self, vmi: dict):
        c, st = self.cluster, vmi["status"]
        ms, ns, uid = st["migrationState"], vmi["metadata"]["namespace"], vmi["metadata"]["uid"]
        t = self.sim.fabric.for_source(uid, ms.get("migrationUid"))
        pod = c.pods.launcher(ns, uid, node=st.get("nodeName"))
        if t is not None and t.state == "completed" and pod is not None and not pod.down:
            # the source domain shut off with reason Migrated: the handler deletes it, the pod completes
            c.pods.update(pod, phase="Succeeded", ready=False)  # HV:386-390
            return None
        if ms.get("completed"):
            return None
        if pod is None or pod.phase == "Failed":
            # the launcher is gone, nothing reports from it; once LC failed the VMI, HS:273-278, 407-415
            # records the outcome (no endTimestamp)
            if t is not None:
                self.sim.fabric.fail(t, "source domain is gone")
            if st.get("phase") == "Failed":
                ms.update({"completed": True, "failed": True})
                c.replace("vmi", vmi, MGR_HANDLER)
            return None
        if ms.get("abortRequested"):  # HS:499-502, 662-682 then HS:208-216
            if t is not None and t.state == "running":
                self.sim.fabric.abort(t)
                return None
            if t is None or t.state in ("aborted", "failed"):
                ms.update({"failed": True, "completed": True, "endTimestamp": ms.get("endTimestamp") or now(),
                           "abortStatus": "Succeeded", "failureReason": ms.get("failureReason") or ABORT_REASON_SOURCE})
                c.replace("vmi", vmi, MGR_HANDLER)
                return None
        if t is None:
            if not ms.get("targetNodeAddress") or not ms.get("targetDirectMigrationNodePorts"):
                return None  # T:615-618: not a migration source yet
            port = sorted(ms["targetDirectMigrationNodePorts"], key=int)[0]
            address = f"{ms['targetNodeAddress']}:{port}"
            src = Endpoint(c.name, ns, vmi["metadata"]["name"], uid, st.get("nodeName", ""))
            t = self.sim.fabric.connect(address, src, ms["migrationUid"], self._bytes(vmi),
                                        self.sim.faults.transfer_seconds)
            if t is None:
                ms.update({"failed": True, "completed": True, "endTimestamp": now(),
                           "failureReason": f"operation failed: Failed to connect to remote libvirt URI "
                                            f"tcp://{address}: Connection refused"})
            else:
                ms.update({"startTimestamp": now(), "mode": "PreCopy"})  # row 34
            c.replace("vmi", vmi, MGR_HANDLER)
            return None
        if t.state == "failed":  # HS:208-216: the launcher reports the broken stream
            ms.update({"failed": True, "completed": True, "endTimestamp": now(),
                       "failureReason": f"operation failed: migration out job: {t.reason}"})
            c.replace("vmi", vmi, MGR_HANDLER)
        return None

    def _bytes(self, vmi: dict) -> int:
        if self.sim.faults.transfer_bytes:
            return self.sim.faults.transfer_bytes
        spec = vmi.get("spec") or {}
        memory = quantity_bytes(dig(spec, "domain", "memory", "guest") or
                                dig(spec, "domain", "resources", "requests", "memory"), 128 * 2**20)
        disks = 0
        for vol in spec.get("volumes") or []:
            claim = claim_name(vol)
            pvc = self.cluster.get("pvc", vmi["metadata"]["namespace"], claim) if claim else None
            disks += quantity_bytes(dig(pvc, "status", "capacity", "storage"), 0)
        return memory + disks

    # ---- HT: the target of a decentralized migration ----

    def _target(self, vmi: dict):
        """Returns False when this VMI is no (longer a) migration target, so HV may look at it."""
        c, st = self.cluster, vmi["status"]
        ms, ns, uid = st["migrationState"], vmi["metadata"]["namespace"], vmi["metadata"]["uid"]
        pod = c.pods.launcher(ns, uid, node=ms.get("targetNode"))
        if pod is None or pod.down:
            return None  # the target pod is gone: virt-controller fails the migration (§2.1)
        t = self.sim.fabric.for_target(uid, dig(ms, "sourceState", "migrationUID"))
        if ms.get("completed") and ms.get("failed") and pod.phase == "Running":
            c.pods.update(pod, phase="Succeeded", ready=False)  # failed: signal the target pod to exit
            return None
        if ms.get("completed"):
            if not ms.get("failed") and (ANN_CREATE_MIGRATION_TARGET in (vmi["metadata"].get("annotations") or {})
                                         or LABEL_MIGRATION_TARGET_NODE in vmi["metadata"]["labels"]):
                vmi["metadata"]["labels"].pop(LABEL_MIGRATION_TARGET_NODE, None)  # HT:567-572, success only
                vmi["metadata"].get("annotations", {}).pop(ANN_CREATE_MIGRATION_TARGET, None)
                c.replace("vmi", vmi, MGR_HANDLER)
                return None
            return False
        domain_active = t is not None and t.state == "completed"
        if ms.get("abortRequested") and not domain_active:  # HT:237-276 (ignored once active, HT:248-251)
            if not ms.get("endTimestamp"):
                raise Requeue(1.0)  # wait for the source's endTimestamp to arrive through sync
            ms.update({"failed": True, "completed": True, "abortStatus": ms.get("abortStatus") or "Succeeded",
                       "failureReason": ms.get("failureReason") or ABORT_REASON_TARGET})
            c.replace("vmi", vmi, MGR_HANDLER)
            return None
        if not ms.get("targetNodeAddress"):
            # HT:888-899: needs the source state and a transport before preparing the target
            if not dig(ms, "sourceState", "node") or not st.get("migrationTransport"):
                return None
            address = c.node_address(pod.node)
            # Each incoming migration gets its own pair of proxy ports on the node (HT:394-413), so
            # several migrations into one node never share a listener.
            port = self.sim.fabric.listen_on_free_port(address, MIGRATION_PORTS[0],
                                                       Endpoint(c.name, ns, vmi["metadata"]["name"], uid, pod.node))
            ports = {str(port): 0, str(port + 1): MIGRATION_PORTS[1]}
            ms.update({"targetNodeAddress": address, "targetDirectMigrationNodePorts": ports})
            ms.setdefault("targetState", {}).update({"nodeAddress": address, "directMigrationNodePorts": ports})
            c.replace("vmi", vmi, MGR_HANDLER)  # row 31
            return None
        if t is None:
            return None
        if t.state == "aborted" and not ms.get("endTimestamp") and time.monotonic() - t.ended < ABORT_GRACE:
            raise Requeue(0.25)  # the source cancelled: its outcome (abortStatus...) is on its way via sync
        if t.state in ("failed", "aborted"):
            # HT:365-377, 603-607: the incoming domain ended without becoming active
            ms.update({"failed": True, "completed": True, "endTimestamp": ms.get("endTimestamp") or now(),
                       "failureReason": ms.get("failureReason") or "target domain did not become active"})
            c.replace("vmi", vmi, MGR_HANDLER)
            return None
        if not ms.get("targetNodeDomainDetected"):
            ms["targetNodeDomainDetected"] = True  # row 37 (HT:326-356)
            ms.setdefault("targetState", {})["domainDetected"] = True
            c.replace("vmi", vmi, MGR_HANDLER)
            return None
        if not domain_active:
            return None
        if not ms.get("targetNodeDomainReadyTimestamp"):
            stamp = now()
            ms["targetNodeDomainReadyTimestamp"] = stamp
            ms.setdefault("targetState", {})["domainReadyTimestamp"] = stamp
            remove_condition(st, "MigrationRequired")
            c.replace("vmi", vmi, MGR_HANDLER)
            return None
        if not ms.get("endTimestamp"):
            ms["endTimestamp"] = now()  # HT:278-306: the migration's end
            labels(vmi)[LABEL_NODE_NAME] = ms["targetNode"]
            st["nodeName"] = ms["targetNode"]
            st["migrationTransport"] = "Unix"
            st["launcherContainerImageVersion"] = ""
            c.replace("vmi", vmi, MGR_HANDLER)
            return None
        ms["completed"] = True  # row 38 (HT:857-860, 1199-1244)
        st.pop("migratedVolumes", None)
        remove_condition(st, "VolumesChange")
        self.sim.fabric.close(f"{ms['targetNodeAddress']}:{sorted(ms['targetDirectMigrationNodePorts'], key=int)[0]}")
        c.replace("vmi", vmi, MGR_HANDLER)
        return None


def _same(status: dict, cond: dict) -> bool:
    for c in status.get("conditions") or []:
        if c.get("type") == cond["type"]:
            return c.get("status") == cond["status"] and c.get("reason", "") == cond.get("reason", "") and \
                c.get("message", "") == cond.get("message", "")
    return False


def migratability(cluster, vmi: dict) -> tuple[dict, dict, bool]:
    """(LiveMigratable, StorageLiveMigratable, block migration?) like the handler's
    calculateLiveMigrationCondition / calculateLiveStorageMigrationCondition.

    LiveMigratable: a non-RWX PVC or a non-shared hostDisk gives DisksNotLiveMigratable (which the
    VMIM admission tolerates for a decentralized migration, MCA:59-72); a pod network without
    masquerade gives InterfaceNotLiveMigratable; host devices HostDeviceNotLiveMigratable.
    StorageLiveMigratable leaves RWO out (DLM copies the disks) but is False for what volume
    migration cannot carry: shareable disks, virtiofs filesystems, LUNs and hostDisks."""
    spec = vmi.get("spec") or {}
    st = vmi.get("status") or {}
    vstatus = {v["name"]: v for v in st.get("volumeStatus") or []}
    disks = {d["name"]: d for d in dig(spec, "domain", "devices", "disks", default=[])}
    filesystems = {f["name"] for f in dig(spec, "domain", "devices", "filesystems", default=[])}
    block, disk_err = bool(st.get("migratedVolumes")), None
    storage_errs = []
    for vol in spec.get("volumes") or []:
        name, claim = vol["name"], claim_name(vol)
        disk = disks.get(name, {})
        if disk.get("shareable"):
            storage_errs.append(("DisksNotLiveMigratable", f"disk {name} is shareable"))
        if "lun" in disk:
            storage_errs.append(("DisksNotLiveMigratable", f"disk {name} is a LUN"))
        if name in filesystems:
            storage_errs.append(("DisksNotLiveMigratable", f"volume {name} is a virtiofs filesystem"))
            continue
        if claim:
            info = dig(vstatus.get(name), "persistentVolumeClaimInfo")
            if info is None:
                disk_err = disk_err or (f"cannot migrate VMI: Unable to determine if PVC {claim} is shared, "
                                        f"{RWX_REQUIRED}")
                block = True
            elif "ReadWriteMany" not in (info.get("accessModes") or []):
                disk_err = disk_err or f"cannot migrate VMI: PVC {claim} is not shared, {RWX_REQUIRED}"
                block = True
        elif "hostDisk" in vol:
            storage_errs.append(("DisksNotLiveMigratable", f"volume {name} is a hostDisk"))
            if not dig(vol, "hostDisk", "shared"):
                disk_err = disk_err or "cannot migrate VMI with non-shared HostDisk"
                block = True
        elif not dig(disk, "cdrom") or dig(disk, "cdrom", "readonly") is False:
            block = True  # containerDisk, cloudInit, ... are copied
    iface_err = None
    nets = {n["name"]: n for n in spec.get("networks") or []}
    for iface in dig(spec, "domain", "devices", "interfaces", default=[]):
        if "pod" in nets.get(iface["name"], {}) and "masquerade" not in iface and not (
                "bridge" in iface and ANN_ALLOW_POD_BRIDGE_MIGRATION in dig(vmi, "metadata", "annotations",
                                                                             default={})):
            iface_err = ("cannot migrate VMI which does not use masquerade, bridge with "
                         f"{ANN_ALLOW_POD_BRIDGE_MIGRATION} VM annotation or a migratable plugin to connect to the "
                         "pod network")
    host_devs = bool(dig(spec, "domain", "devices", "hostDevices") or dig(spec, "domain", "devices", "gpus"))
    if disk_err:
        live = ("False", "DisksNotLiveMigratable", disk_err)
    elif iface_err:
        live = ("False", "InterfaceNotLiveMigratable", iface_err)
    elif host_devs:
        live = ("False", "HostDeviceNotLiveMigratable", "VMI uses a PCI host devices")
    else:
        live = ("True", "", "")
    if iface_err:
        storage_errs.append(("InterfaceNotLiveMigratable", iface_err))
    if host_devs:
        storage_errs.append(("HostDeviceNotLiveMigratable", "VMI uses a PCI host devices"))
    t = now()
    live_cond = {"type": C_LIVE_MIGRATABLE, "status": live[0], "lastProbeTime": None, "lastTransitionTime": t}
    if live[1]:
        live_cond.update({"reason": live[1], "message": live[2]})
    storage_cond = {"type": C_STORAGE_LIVE_MIGRATABLE, "status": "True", "lastProbeTime": None,
                    "lastTransitionTime": t}
    if storage_errs:
        storage_cond.update({"status": "False", "reason": "NotMigratable",
                             "message": ", ".join(f"{r}: {m}" for r, m in storage_errs)})
    return live_cond, storage_cond, block
