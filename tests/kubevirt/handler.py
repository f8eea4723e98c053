"""virt-handler, played on the KubeVirt tier: what KubeVirt v1.9.0's pkg/virt-handler writes to a
VMI, for a VM that starts on a node and for both ends of a decentralized live migration. The real
virt-controller and synchronization-controller do everything else; nothing here writes a VMIM, a
VM, a Pod or a field virt-handler does not write.

virt-handler runs three controllers per node, each a loop over the VMIs of its node (cited as
HV = pkg/virt-handler/vm.go, HT = migration-target.go, HS = migration-source.go, HC = controller.go):
the VM controller starts and stops domains and reports the phase, the target controller prepares the
receiving side and acknowledges a finished migration, the source controller starts the transfer once
the target's address arrived (through the real sync controllers) and reports how it ended. Here one
`Handler` per cluster polls the VMIs every POLL seconds and runs those three, for each of the
cluster's Nodes, writing as service account kubevirt-handler with the node in its identity (virt-api's
node restriction judges each write: vmi-update-admitter.go:62-97). Like virt-handler it writes with
Update (PUT of the whole VMI, HT:495-523, HS:371-381, HV:1129-1138) and retries on a conflict.

What cannot run (libvirt, QEMU, virt-launcher) is played by `Network`, shared by both clusters: a
domain per VMI and node, its KubeVirt migration metadata (pkg/virt-launcher/virtwrap/
live-migration-source.go initializeMigrationMetadata:348-372, setMigrationResult:396-431), and the
transfer from a source domain to the listener a target node advertised (its Node InternalIP, the
migration address virt-handler publishes, HT:407-424). A transfer takes `transfer_seconds`; a test can
make the next transfers fail, as libvirt reports a broken one.

Not played: a guest agent, hotplug, dedicated CPUs, the migration proxy's TLS, metrics, post-copy.
"""
from __future__ import annotations

import copy
import itertools
import math
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

from tests.harness.apiserver import ApiError
from tests.kubevirt.loop import Loop

POLL = 0.2
VMIS = "/apis/kubevirt.io/v1/virtualmachineinstances"
NODE_NAME_LABEL = "kubevirt.io/nodeName"                             # types.go NodeNameLabel
TARGET_NODE_LABEL = "kubevirt.io/migrationTargetNodeName"            # types.go MigrationTargetNodeNameLabel
CREATE_MIGRATION_TARGET = "kubevirt.io/create-migration-target"     # types.go CreateMigrationTarget
HOST_MODEL_LABEL = "host-model-cpu.node.kubevirt.io/"               # node-labeller prepareLabels
DIRECT_PORT, BLOCK_PORT = 49152, 49153                              # migration-proxy.go:42-43


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(ts: str) -> float:
    return datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()


# ---- the played libvirt/QEMU/virt-launcher ----

@dataclass
class Domain:
    """What virt-handler's domain informer sees of a libvirt domain (virtwrap/api: Status, Reason,
    Spec.Metadata.KubeVirt.{UID, Migration})."""
    uid: str                      # the VMI's UID (on a migration target: the target VMI's, l-m-source.go:1079-1083)
    status: str = "Running"       # api.Running | Paused | Shutoff
    reason: str = ""              # api.ReasonPausedMigration "Migration", ReasonMigrated "Migrated", ...
    migration: dict | None = None  # api.MigrationMetadata: uid, startTimestamp, endTimestamp, failed, ...

    def alive(self) -> bool:      # HS:621-626, HV:1461-1464
        return self.status not in ("Shutoff", "Crashed", "")

    def active_on_target(self) -> bool:   # HT:191-205
        return self.status == "Running" or (self.status == "Paused" and self.reason == "User")


@dataclass(eq=False)
class Listener:
    """A target node's migration proxy for one VMI (HT:750-773 handleTargetMigrationProxy)."""
    handler: "Handler"
    node: str
    key: tuple                   # (node, namespace, name)
    ports: dict                  # host port (str) -> port in the launcher, as TargetDirectMigrationNodePorts


# A stream broken by the other side, as QEMU describes it (the tail of libvirt's
# "operation failed: migration out job: %s", qemuMigrationJobCheckStatus).
BROKEN_STREAM = "operation failed: migration out job: Unable to write to socket: Connection reset by peer"
STALL_AT = 0.25   # the share of the data sent when a transfer that cannot converge stops making headway


@dataclass(eq=False)
class Transfer:
    """One libvirt migration job, source domain -> target listener, with the figures libvirt's
    domain job info gives about it (DataTotal, DataProcessed, DataRemaining, MemoryBps, MemDirtyRate:
    what virt-handler publishes, pkg/monitoring/metrics/virt-handler/migrationdomainstats/
    migrationstats_collector.go:96-124)."""
    source: "Handler"
    source_key: tuple
    target: Listener | None
    deadline: float
    fail: str | None = None
    aborted: bool = False
    kill_target_at: float | None = None   # monotonic times at which a launcher pod dies (fail_*_at)
    kill_source_at: float | None = None
    total_bytes: int = 1
    seconds: float = 1.0
    dirty_rate: int = 0                 # bytes/s the guest dirties while it runs
    started: float = field(default_factory=time.monotonic)
    ended_at: float | None = None       # the share sent when it ended early (a failure, an abort)
    # the source launcher's migration monitor (Network.monitor): its options and what it last saw
    progress_timeout: int = 0
    completion_seconds: int = 0
    assist: bool = False                # allowWorkloadDisruption: past completion it assists instead of aborting
    watermark: int | None = None
    last_progress: float = field(default_factory=time.monotonic)

    @property
    def rate(self) -> int:
        """MemoryBps: the bytes sent per second."""
        return int(self.total_bytes / self.seconds)

    def fraction(self) -> float:
        """The share of DataTotal sent. A guest that dirties memory at least as fast as it is sent
        leaves pre-copy without headway: the remaining bytes stop falling (at STALL_AT) while it does,
        which is the `transfer_seconds` of the transfer (then the guest calms down and it converges)."""
        if self.ended_at is not None:
            return self.ended_at
        done = min(1.0, (time.monotonic() - self.started) / self.seconds)
        return min(done, STALL_AT) if self.dirty_rate >= self.rate and done < 1.0 else done

    def figures(self) -> dict:
        """One consistent reading of the job info."""
        processed = int(self.total_bytes * self.fraction())
        return {"total": self.total_bytes, "processed": processed, "remaining": self.total_bytes - processed,
                "rate": self.rate, "dirty_rate": self.dirty_rate}


@dataclass
class Network:
    """The data plane between all nodes of both clusters; the one lock serialises the handlers."""
    transfer_seconds: float = 1.0
    transfer_bytes: int | None = None   # DataTotal of the next transfers (default: guest memory + copied disks)
    dirty_rate: int = 0                 # bytes/s the guest dirties during the next transfers (see Transfer.fraction)
    fail_target_at: float | None = None  # the target's launcher pod dies at this share of the next transfer
    fail_source_at: float | None = None  # the source's launcher pod dies at this share of the next transfer
    lock: threading.RLock = field(default_factory=threading.RLock)
    listeners: dict = field(default_factory=dict)    # "address:port" -> Listener
    transfers: list = field(default_factory=list)
    exited: dict = field(default_factory=dict)       # VMI UID -> exit code of its virt-launcher
    _fail_next: list = field(default_factory=list)
    _ports: itertools.count = field(default_factory=lambda: itertools.count(37100))

    def launcher_exit(self, pod: dict) -> int | None:
        """The exit code of a launcher pod's compute container, once virt-launcher exited: it exits 0
        when its qemu is gone (cmd/virt-launcher/virt-launcher.go:536-560), as after the source's
        domain migrated away. For the played kubelet, which reports the pod Succeeded then."""
        return self.exited.get((pod["metadata"].get("labels") or {}).get("kubevirt.io/created-by"))

    def reset(self) -> None:
        """The knobs back to their defaults (a test's faults end with it)."""
        self.transfer_seconds, self.transfer_bytes, self.dirty_rate = 1.0, None, 0
        self.fail_target_at = self.fail_source_at = None
        self._fail_next.clear()

    def fail_next_transfer(self, reason: str) -> None:
        """The next transfer to start breaks halfway with this libvirt error (the source's
        launcher reports it, setMigrationResult(true, reason): l-m-source.go:396-431)."""
        self._fail_next.append(reason)

    def listen(self, handler: "Handler", node: str, key: tuple, address: str, block: bool) -> dict:
        # GetMigrationPortsList: the direct port, and the block port for a block migration (migration-proxy.go:111-117)
        inner = [DIRECT_PORT] + ([BLOCK_PORT] if block else [])
        ports = {str(next(self._ports)): p for p in inner}
        listener = Listener(handler, node, key, ports)
        for p in ports:
            self.listeners[f"{address}:{p}"] = listener
        return ports

    def listener_ports(self, key: tuple) -> dict:
        for listener in self.listeners.values():
            if listener.key == key:
                return listener.ports
        return {}

    def stop_listener(self, key: tuple) -> None:
        for addr in [a for a, lst in self.listeners.items() if lst.key == key]:
            del self.listeners[addr]

    def running(self, source: "Handler", node: str) -> list[Transfer]:
        """The transfers under way out of `node` of the source handler's cluster."""
        with self.lock:
            return [t for t in self.transfers if t.source is source and t.source_key[0] == node
                    and time.monotonic() < t.deadline and t.target is not None]

    def start(self, source: "Handler", key: tuple, address: str, ports: dict, total_bytes: int,
              monitor: dict | None = None) -> None:
        """virt-launcher's migrate (l-m-source.go:1389-1423): libvirt dials the target's ports; the
        incoming domain appears paused on the target (reason Migration) carrying the source's
        KubeVirt metadata in its XML, its UID replaced by the target VMI's (l-m-source.go:1079-1083)."""
        targets = {self.listeners.get(f"{address}:{p}") for p in ports}
        target = targets.pop() if len(targets) == 1 else None
        fail = self._fail_next.pop(0) if self._fail_next else None
        if target is None:
            fail = f"unable to connect to server at '{address}': Connection refused"
            deadline = time.monotonic()
        else:
            deadline = time.monotonic() + self.transfer_seconds
            if fail:
                deadline = time.monotonic() + self.transfer_seconds / 2
            src = source.domains[key]
            vmi_uid = target.handler.vmi_uid(target.key)
            target.handler.domains[target.key] = Domain(vmi_uid or "", "Paused", "Migration",
                                                         copy.deepcopy(src.migration))
        t = Transfer(source, key, target, deadline, fail, total_bytes=self.transfer_bytes or total_bytes,
                     seconds=max(self.transfer_seconds, 0.01), dirty_rate=self.dirty_rate, **(monitor or {}))
        if target is not None:   # one shot each: the next transfer only
            if self.fail_target_at is not None:
                t.kill_target_at, self.fail_target_at = t.started + t.seconds * self.fail_target_at, None
            if self.fail_source_at is not None:
                t.kill_source_at, self.fail_source_at = t.started + t.seconds * self.fail_source_at, None
        self.transfers.append(t)

    def kill_target(self, handler: "Handler", namespace: str, name: str) -> None:
        """The target's virt-launcher dies (its qemu with it): the incoming domain is gone, and the
        source's libvirt job breaks on the lost stream and fails with QEMU's error
        (qemuMigrationJobCheckStatus: "operation failed: migration out job: <QEMU's error-desc>"),
        which the source launcher records (setMigrationResult(true, err.Error()), l-m-source.go:1414-1418)."""
        for key in [k for k in handler.domains if k[1:] == (namespace, name)]:
            del handler.domains[key]
        for t in self.transfers:
            if t.target is not None and t.target.handler is handler and t.target.key[1:] == (namespace, name):
                t.ended_at, t.fail, t.deadline = t.fraction(), BROKEN_STREAM, time.monotonic()
                t.kill_target_at = None
        for addr in [a for a, lst in self.listeners.items() if lst.handler is handler and lst.key[1:] == (namespace, name)]:
            del self.listeners[addr]

    def kill_source(self, handler: "Handler", namespace: str, name: str) -> None:
        """The source's virt-launcher dies (its qemu with it): its domain and the KubeVirt metadata
        in it are gone, so nothing reports the job's end; the incoming domain on the target is
        destroyed as libvirt does when the stream breaks."""
        for key in [k for k in handler.domains if k[1:] == (namespace, name)]:
            del handler.domains[key]
        for t in [t for t in self.transfers if t.source is handler and t.source_key[1:] == (namespace, name)]:
            self.transfers.remove(t)
            self._incoming_lost(t)

    def _incoming_lost(self, t: Transfer) -> None:
        """The source's qemu went away mid-transfer (its launcher killed, its VMI deleted: virt-controller
        deletes the launcher pod of a deleted VMI, pkg/virt-controller/watch/vmi/lifecycle.go:70-75), so
        the incoming stream on the target ends. The target's qemu does not outlive it: QEMU exits when
        an incoming migration fails, and libvirt destroys an incoming domain whose source connection
        closed. Then the target's virt-launcher exits as after any qemu exit (its process monitor
        returns, cmd/virt-launcher/virt-launcher.go:536-560; exit 0), the kubelet reports the pod
        down, and the real migration controller fails the target migration ("Migration failed
        because target pod shutdown during migration", migration.go:588-597). Target virt-handler
        itself reports nothing: with no domain it has no migration metadata to read
        (migration-target.go:217-224, 330-333)."""
        if t.target is None:
            return
        tgt = t.target.handler.domains.pop(t.target.key, None)
        uid = tgt.uid if tgt is not None else t.target.handler.vmi_uid(t.target.key)
        if uid:
            self.exited[uid] = 0

    def abort(self, source: "Handler", key: tuple) -> bool:
        """virDomainAbortJob on the source's migration job (l-m-source.go:978-1021)."""
        for t in self.transfers:
            if t.source is source and t.source_key == key:
                t.aborted = True
                t.deadline = time.monotonic()
                return True
        return False

    def monitor(self, t: Transfer, at: float) -> None:
        """The source launcher's migration monitor, as without the MigrationStallDetection gate
        (processInflightMigration and handleLegacyConvergence, l-m-source.go:730-839): a new low of
        the remaining data is progress; none for more than progressTimeout seconds aborts the job,
        and so does a transfer that outlasts completionTimeoutPerGiB x the VM's data in GB
        (acceptableCompletionTime, l-m-source.go:450; getVMIMigrationDataSize, manager.go:796-815),
        unless allowWorkloadDisruption lets it assist instead (post-copy or pausing the guest: not
        played, such a transfer ends when its time is up). The abort is libvirt's, as for a cancel."""
        if t.aborted or t.fail or t.target is None:
            return
        remaining = t.figures()["remaining"]
        if t.watermark is None or remaining < t.watermark:
            t.last_progress = at
        t.watermark = remaining
        overdue = bool(t.completion_seconds) and int(at - t.started) > t.completion_seconds
        if overdue and t.assist:
            return
        if (t.progress_timeout and int(at - t.last_progress) > t.progress_timeout) or overdue:
            domain = t.source.domains.get(t.source_key)
            if domain is not None and domain.migration is not None:   # cancelMigration, l-m-source.go:374-394
                domain.migration["abortStatus"] = "InProgress"
            t.aborted, t.ended_at, t.deadline = True, t.fraction(), at

    def advance(self) -> None:
        """Finish the transfers whose time is up, as libvirt and both launchers report the end."""
        t_now = time.monotonic()
        for t in self.transfers:
            self.monitor(t, t_now)
        for t in list(self.transfers):   # a launcher pod dies during the transfer (fail_*_at)
            if t.kill_target_at is not None and t_now >= t.kill_target_at and t.target is not None:
                t.kill_target_at = None
                kill_launcher(t.target.handler, *t.target.key[1:], target=True, network=self)
            if t.kill_source_at is not None and t_now >= t.kill_source_at:
                t.kill_source_at = None
                kill_launcher(t.source, *t.source_key[1:], target=False, network=self)
        for t in list(self.transfers):   # the source domain is gone (its VMI deleted): the stream ends
            if t.target is not None and t.source_key not in t.source.domains:
                self.transfers.remove(t)
                self._incoming_lost(t)
        due = [t for t in self.transfers if time.monotonic() >= t.deadline]
        for t in due:
            self.transfers.remove(t)
            src = t.source.domains.get(t.source_key)
            tgt = t.target.handler.domains.get(t.target.key) if t.target else None
            if src is None or src.migration is None:
                continue
            if t.aborted or t.fail:
                # libvirt's "canceled by client" becomes this reason (setMigrationResult, l-m-source.go:406-408);
                # the abort itself succeeded (asyncMigrationAbort, l-m-source.go:1005-1006).
                src.migration.update(failed=True, endTimestamp=now(),
                                     failureReason="Live migration has been aborted" if t.aborted else t.fail)
                if t.aborted:
                    src.migration["abortStatus"] = "Succeeded"
                # libvirt destroys the incoming domain of a failed migration; the target's
                # TargetMigrationMonitor never starts (l-m-target.go:341-406: only after a resume).
                if tgt is not None:
                    del t.target.handler.domains[t.target.key]
            else:
                # Success: the source domain is shut off with reason Migrated, the target resumed, and
                # its TargetMigrationMonitor sets EndTimestamp (l-m-target.go:408-420 setEndTimestamp).
                src.migration["endTimestamp"] = now()
                src.status, src.reason = "Shutoff", "Migrated"
                self.exited[src.uid] = 0
                if tgt is not None:
                    tgt.status, tgt.reason = "Running", "Migrated"
                    tgt.migration = dict(tgt.migration or {}, endTimestamp=now())


# ---- virt-handler ----

running: list["Handler"] = []   # for the report of a failed test (tests/kubevirt/fixtures.py)


class Handler(Loop):
    """The virt-handlers of one cluster's Nodes (see the module docstring)."""
    name = "virt-handler"

    def __init__(self, install, network: Network):
        super().__init__(install.cluster, POLL)
        self.install = install
        self.network = network
        self.domains: dict[tuple, Domain] = {}     # (node, namespace, name) -> Domain
        self._vmi_uids: dict[tuple, str] = {}
        self.writes = 0
        from tests.kubevirt.handler_pods import HandlerPods
        self.pods = HandlerPods(install, self.readings)   # its DaemonSet's Pods and their metrics endpoints

    # -- running --

    def start(self) -> "Handler":
        running.append(self)
        return super().start()

    def stop(self) -> None:
        if self in running:
            running.remove(self)
        super().stop()
        self.pods.stop()

    def readings(self, node: str) -> list[tuple[str, str, str, dict]]:
        """What `node`'s virt-handler publishes: the job info of each transfer out of it, labelled
        with the source VMI's namespace, name and status.nodeName (handler_pods.py)."""
        return [(t.source_key[1], t.source_key[2], node, t.figures()) for t in self.network.running(self, node)]

    def stop_metrics(self) -> None:
        """The metrics ports of this cluster's virt-handler Pods stop answering (handler_pods.py)."""
        with self.network.lock:
            self.pods.stop_serving()

    def serve_metrics(self) -> None:
        with self.network.lock:
            self.pods.serve_again()

    def describe(self) -> str:
        """For a failed test's report: the domains and the last errors of the loop."""
        lines = [f"{k}: {d}" for k, d in sorted(self.domains.items())]
        return "\n".join(lines + [f"{self.writes} VMI updates; last errors:"] + self.errors[-10:])

    def vmi_uid(self, key: tuple) -> str | None:
        return self._vmi_uids.get(key[1:])

    def step(self) -> None:
        vmis = self.cluster.request("GET", VMIS)["items"]
        nodes = {n["metadata"]["name"]: n for n in self.cluster.request("GET", "/api/v1/nodes")["items"]}
        pods = self.cluster.request("GET", "/api/v1/pods?labelSelector=kubevirt.io%3Dvirt-launcher")["items"]
        with self.network.lock:
            self.pods.sync(nodes)
            self._vmi_uids = {(v["metadata"]["namespace"], v["metadata"]["name"]): v["metadata"]["uid"] for v in vmis}
            for vmi in vmis:
                for name, node in nodes.items():
                    self._node(name, node, vmi, pods)
            # HV:1474-1486: a domain whose VMI is gone is shut down and removed.
            for key in [k for k in self.domains if k[1:] not in self._vmi_uids]:
                del self.domains[key]
            self.network.advance()

    def _node(self, name: str, node: dict, vmi: dict, pods: list) -> None:
        for controller in (self._target, self._source, self._vm):
            try:
                vmi = controller(name, node, vmi, pods) or vmi
            except ApiError as e:
                if e.status != 409:    # a conflict: the controller runs again on the next poll
                    raise

    # -- helpers --

    def _update(self, node: str, old: dict, vmi: dict) -> dict | None:
        """Update the VMI if its status or labels changed (HT:495-523; HS:371-381; HV:1129-1138)."""
        if old.get("status") == vmi.get("status") and old["metadata"].get("labels") == vmi["metadata"].get("labels") \
                and old["metadata"].get("annotations") == vmi["metadata"].get("annotations"):
            return None
        ns, name = vmi["metadata"]["namespace"], vmi["metadata"]["name"]
        self.writes += 1
        return self.install.request_as("kubevirt-handler", node=node)(
            "PUT", f"/apis/kubevirt.io/v1/namespaces/{ns}/virtualmachineinstances/{name}", vmi)

    @staticmethod
    def _address(node: dict) -> str:
        """The migration IP virt-handler advertises (its node's address; HT:407-424)."""
        return next((a["address"] for a in node.get("status", {}).get("addresses", []) if a["type"] == "InternalIP"),
                    "")

    @staticmethod
    def _launcher_ready(vmi: dict, node: str, pods: list) -> bool:
        """The launcher's command server answers (HC:416-430 checkLauncherClient): its pod runs on this node."""
        uid = vmi["metadata"]["uid"]
        return any(p["metadata"].get("labels", {}).get("kubevirt.io/created-by") == uid
                   and p["spec"].get("nodeName") == node and p.get("status", {}).get("phase") == "Running"
                   and not p["metadata"].get("deletionTimestamp") for p in pods)

    # -- pkg/virt-handler/migration-target.go --

    def _target(self, node: str, node_obj: dict, vmi: dict, pods: list) -> dict | None:
        """MigrationTargetController.execute (HT:658-721) and sync (HT:586-646)."""
        meta, status = vmi["metadata"], vmi.get("status", {})
        key = (node, meta["namespace"], meta["name"])
        if status.get("phase") in ("Succeeded", "Failed") or meta.get("deletionTimestamp"):
            self.network.stop_listener(key)            # HT:667-675 best-effort cleanup
            return None
        domain = self.domains.get(key)
        if domain is not None and domain.uid != meta["uid"]:
            del self.domains[key]                        # HT:690-696 stale domain
            return None
        ms = status.get("migrationState")
        if domain is not None and not domain.alive():   # HT:698-708
            if not abort_in_progress(ms) and not (decentralized(vmi) and ms is not None and is_done(ms)):
                return None
        if ms is None or meta.get("labels", {}).get(TARGET_NODE_LABEL) != node:   # HT:710-718, 648-651
            return None
        old, vmi = vmi, copy.deepcopy(vmi)
        ms = vmi["status"]["migrationState"]
        self._target_abort(vmi, ms, domain)                                          # HT:592
        if ms.get("endTimestamp") and (ms.get("completed") or ms.get("failed")):     # HT:597-600
            return self._final_cleanup(node, key, old, vmi, ms)
        if needs_finalization(ms) and not (domain and domain.active_on_target()):   # HT:614-618
            ms["failed"] = ms["completed"] = True
        self._prepare_target(node, node_obj, key, vmi, ms, pods)                     # HT:620 processVMI
        self._target_status(node_obj, key, vmi, ms, domain)                          # HT:628 updateStatus
        return self._update(node, old, vmi)

    def _target_abort(self, vmi: dict, ms: dict, domain: Domain | None) -> None:
        """HT:248-287 handleDecentralizedMigrationAbort: once the source's end arrived (through the
        sync controller), the target records the abort."""
        if not decentralized(vmi) or not ms.get("abortRequested") or is_done(ms):
            return
        if domain is not None and domain.active_on_target():
            return
        if not ms.get("endTimestamp"):
            return   # HT:265-273: wait for the source's EndTimestamp
        ms["failed"] = ms["completed"] = True
        ms.setdefault("abortStatus", "Succeeded")
        ms.setdefault("failureReason", "Live migration has been aborted")

    def _prepare_target(self, node: str, node_obj: dict, key: tuple, vmi: dict, ms: dict, pods: list) -> None:
        """HT:867-997 processVMI."""
        if needs_finalization(ms):
            # HT:1216-1255 finalizeMigration: the migrated-volumes bookkeeping goes (HT:1210-1214), completed
            conditions = vmi["status"].get("conditions") or []
            vmi["status"]["conditions"] = [c for c in conditions if c["type"] != "VolumesChange"]
            vmi["status"].pop("migratedVolumes", None)
            ms["completed"] = True
            return
        if self.network.listener_ports(key):                               # HT:888-893 already prepared
            return
        if is_migration_target(vmi) and (ms.get("sourceState") is None or not vmi["status"].get("migrationTransport")):
            return                                                          # HT:905-918 wait for the sync
        if vmi["status"].get("phase") == "WaitingForSync":
            ms.pop("startTimestamp", None)                                  # HT:925-928
        elif not self._launcher_ready(vmi, node, pods):
            return                                                          # HT:929-933 checkLauncherClient
        if is_migrating(ms):
            return                                                          # HT:935-940
        # syncVolumes, setupNetwork, SyncMigrationTarget (the launcher prepares), then the proxy (HT:991)
        self.network.listen(self, node, key, self._address(node_obj), block=is_block_migration(vmi))

    def _target_status(self, node_obj: dict, key: tuple, vmi: dict, ms: dict, domain: Domain | None) -> None:
        """HT:324-440 updateStatus."""
        if ms.get("failed"):
            return                                                           # HT:325-328
        # HT:330-333 setDecentralizedMigrationProgressStatus: only for metadata of this VMIM's UID;
        # the domain carries the source's (its UID is the source migration's), so it changes nothing.
        if domain is not None and not ms.get("targetNodeDomainDetected"):   # HT:337-350
            ms["targetNodeDomainDetected"] = True
            if ms.get("targetState") is not None:
                ms["targetState"]["domainDetected"] = True
        if domain is not None and domain.active_on_target() and not ms.get("targetNodeDomainReadyTimestamp"):
            t = now()                                                        # HT:352-365
            ms["targetNodeDomainReadyTimestamp"] = t
            if ms.get("targetState") is not None:
                ms["targetState"]["domainReadyTimestamp"] = t
            vmi["status"]["conditions"] = [c for c in vmi["status"].get("conditions") or []
                                           if c["type"] != "MigrationRequired"]
        end = (domain.migration or {}).get("endTimestamp") if domain is not None else None
        if end:                                                              # HT:368-390
            if domain.active_on_target():
                self._ack_completion(key[0], vmi, ms, domain)
            else:
                ms["endTimestamp"] = end
                if not ms.get("startTimestamp") and (domain.migration or {}).get("startTimestamp"):
                    ms["startTimestamp"] = domain.migration["startTimestamp"]
                ms["failed"] = ms["completed"] = True
        if is_migrating(ms) and not abort_in_progress(ms):
            return                                                           # HT:392-395
        ports = self.network.listener_ports(key)
        if not ports:
            return                                                           # HT:397-403
        address = self._address(node_obj)
        if ms.get("targetNodeAddress") != address:                          # HT:405-425 advertise the target
            ms["targetNodeAddress"] = address
            ms["targetDirectMigrationNodePorts"] = dict(ports)
            if ms.get("targetState") is not None:
                ms["targetState"]["nodeAddress"] = address
                ms["targetState"]["directMigrationNodePorts"] = dict(ports)

    @staticmethod
    def _ack_completion(node: str, vmi: dict, ms: dict, domain: Domain) -> None:
        """HT:289-317 ackMigrationCompletion: the VMI now lives on this node."""
        if not ms.get("startTimestamp") and domain.migration.get("startTimestamp"):
            ms["startTimestamp"] = domain.migration["startTimestamp"]
        ms["endTimestamp"] = domain.migration["endTimestamp"]
        vmi["metadata"].setdefault("labels", {})[NODE_NAME_LABEL] = node
        (vmi["metadata"].get("annotations") or {}).pop("kubevirt.io/eviction-source", None)
        vmi["metadata"]["labels"].pop("kubevirt.io/outdatedLauncherImage", None)
        st = vmi["status"]
        st["launcherContainerImageVersion"] = ""
        st["nodeName"] = node
        st["evacuationNodeName"] = ""
        st["migrationTransport"] = "Unix"
        if ms.get("targetMemoryOverhead"):
            st.setdefault("memory", {})["memoryOverhead"] = ms["targetMemoryOverhead"]
        for k in ("launcherContainerImageVersion", "evacuationNodeName"):   # omitempty strings
            if not st[k]:
                del st[k]

    def _final_cleanup(self, node: str, key: tuple, old: dict, vmi: dict, ms: dict) -> dict | None:
        """HT:525-584 finalCleanup: a failed target drops its domain; the VMI leaves this node's
        informer (label removed) and, after success only, stops being a migration target."""
        self.network.stop_listener(key)
        if ms.get("failed"):
            self.domains.pop(key, None)                                      # HT:557-560
        vmi["metadata"].get("labels", {}).pop(TARGET_NODE_LABEL, None)       # HT:579
        if not ms.get("failed"):
            (vmi["metadata"].get("annotations") or {}).pop(CREATE_MIGRATION_TARGET, None)   # HT:580-582
        return self._update(node, old, vmi)

    # -- pkg/virt-handler/migration-source.go --

    def _source(self, node: str, node_obj: dict, vmi: dict, pods: list) -> dict | None:
        """MigrationSourceController.execute (HS:400-448) and sync (HS:341-398)."""
        meta, status = vmi["metadata"], vmi.get("status", {})
        key = (node, meta["namespace"], meta["name"])
        if (decentralized(vmi) and status.get("phase") == "Succeeded") or meta.get("deletionTimestamp") \
                or (not decentralized(vmi) and status.get("phase") in ("Succeeded", "Failed")):
            return None                                                      # HS:406-414
        domain = self.domains.get(key)
        if domain is not None and domain.uid != meta["uid"]:
            return None                                                      # HS:425-428
        ms = status.get("migrationState")
        if ms is None or is_done(ms):
            return None                                                      # HS:430-439
        if not (decentralized(vmi) and ms.get("sourceNode") == node and is_migration_source(vmi)):
            return None                                                      # HS:450-459 isMigrationSource
        old, vmi = vmi, copy.deepcopy(vmi)
        ms = vmi["status"]["migrationState"]
        if domain is not None and domain.alive():                           # HS:621-633 processVMI
            self._migrate(node, key, vmi, ms, domain, pods)
        self._source_status(vmi, ms, domain)
        return self._update(node, old, vmi)

    def _migrate(self, node: str, key: tuple, vmi: dict, ms: dict, domain: Domain, pods: list) -> None:
        """HS:487-615 migrateVMI."""
        if not self._launcher_ready(vmi, node, pods):
            return
        if ms.get("abortRequested"):                                         # HS:498-501, 672-692
            handled = ("InProgress", "Succeeded")
            if ms.get("abortStatus") in handled or (domain.migration or {}).get("abortStatus") in handled:
                return
            m = domain.migration
            # the launcher's cancelMigration (l-m-source.go:374-394): ignored unless migrating
            if m and m.get("startTimestamp") and not m.get("endTimestamp") and not m.get("failed"):
                m["abortStatus"] = "InProgress"
                self.network.abort(self, key)
            return
        if migration_in_progress(vmi, domain):                               # HS:503-507
            return
        if ms.get("targetDirectMigrationNodePorts") is None:                 # HS:470-472, 509-512
            return
        # the launcher's startMigration -> initializeMigrationMetadata (l-m-source.go:328-372): the
        # metadata UID is the source migration's (MigrationUID, l-m-source.go:935-943); one shot per UID.
        uid = (ms.get("sourceState") or {}).get("migrationUID") or ms.get("migrationUid")
        if domain.migration and domain.migration.get("uid") == uid:
            return
        domain.migration = {"uid": uid, "startTimestamp": now(), "mode": "PreCopy"}
        self.network.start(self, key, ms["targetNodeAddress"], ms["targetDirectMigrationNodePorts"], data_total(vmi),
                           monitor_options(vmi, ms))

    @staticmethod
    def _source_status(vmi: dict, ms: dict, domain: Domain | None) -> None:
        """HS:220-286 updateStatus, with setMigrationProgressStatus (HS:191-218)."""
        m = domain.migration if domain is not None else None
        if m and m.get("uid") == ms.get("migrationUid"):
            if m.get("startTimestamp"):
                ms["startTimestamp"] = m["startTimestamp"]
            if m.get("failed"):
                ms["failed"] = True
                ms["completed"] = True                                       # HS:209-215
                ms["endTimestamp"] = m.get("endTimestamp")
                for f in ("abortStatus", "failureReason"):
                    if m.get(f):
                        ms[f] = m[f]
                    else:
                        ms.pop(f, None)
            else:
                ms.pop("failed", None)                                       # Failed = metadata.Failed (HS:207), omitempty
            ms["mode"] = m.get("mode")
        detected, left = target_detected_ready_domain(ms)
        if not ms.get("targetNode"):                                         # HS:246-257
            vmi["status"]["phase"] = "Failed"
            ms["completed"] = ms["failed"] = True
            ms.setdefault("endTimestamp", now())
        elif not detected and left <= 0:                                     # HS:258-268
            vmi["status"]["phase"] = "Failed"
            ms["completed"] = ms["failed"] = True
            ms.setdefault("endTimestamp", now())
        if vmi["status"].get("phase") == "Failed" and decentralized(vmi):    # HS:271-276
            ms["completed"] = ms["failed"] = True
        if detected and decentralized(vmi) and ms.get("completed"):          # HS:278-283
            vmi["status"]["phase"] = "Succeeded"

    # -- pkg/virt-handler/vm.go --

    def _vm(self, node: str, node_obj: dict, vmi: dict, pods: list) -> dict | None:
        """VirtualMachineController.execute (HV:321-455) and sync (HV:1433-1601)."""
        meta, status = vmi["metadata"], vmi.get("status", {})
        key = (node, meta["namespace"], meta["name"])
        domain = self.domains.get(key)
        if domain is not None and domain.uid != meta["uid"]:
            return None                                                      # HV:371-393 stale domain
        if domain is not None and (domain.status, domain.reason) == ("Shutoff", "Migrated"):
            del self.domains[key]                                            # HV:395-399 deleteVM
            return None
        if not meta.get("deletionTimestamp") and migration_in_progress(vmi, domain):
            return None                                                      # HV:409-412
        owned = meta.get("labels", {}).get(NODE_NAME_LABEL) == node or status.get("nodeName") == node
        if not owned or is_migration_source(vmi):
            return None                                                      # HV:414-422
        final = status.get("phase") in ("Succeeded", "Failed")
        if meta.get("deletionTimestamp") or final:
            self.domains.pop(key, None)                                      # HV:1488-1501 shutdown, delete
            return None
        if domain is None:
            if status.get("phase") != "Scheduled" or not self._launcher_ready(vmi, node, pods):
                return None
            # handleStartingVMI + syncVirtualMachine (HV:2043-2143): the launcher defines and starts it
            domain = self.domains[key] = Domain(meta["uid"])
        old, vmi = vmi, copy.deepcopy(vmi)
        st = vmi["status"]
        # HV:2319-2390 calculateVmPhaseForStatusReason: a running domain is a Running VMI
        if domain.status == "Running":
            st["phase"] = "Running"
        # HV:1063-1068 updateVMIStatusFromDomain -> updateSELinuxContext (HV:1033-1049): "none" on a
        # node without SELinux. The migration controller copies it into sourceState and will not
        # create a target pod without it (pkg/virt-controller/watch/migration/migration.go:858-868).
        st["selinuxContext"] = "none"
        self._conditions(node_obj, vmi)                                      # HV:1084-1095, 747-783
        set_phase_transition(vmi, old)                                       # HV:1124
        return self._update(node, old, vmi)

    @staticmethod
    def _conditions(node_obj: dict, vmi: dict) -> None:
        """updateLiveMigrationConditions (HV:747-783): LiveMigratable (calculateLiveMigrationCondition,
        HV:1247-1295: the first problem found, the disks' last), StorageLiveMigratable
        (calculateLiveStorageMigrationCondition, HV:1367-1402: every problem but the disks, as
        "reason: message, ...", HV:1322-1331) and the migration method (check_volumes)."""
        st = vmi["status"]
        cpu = vmi["spec"]["domain"].get("cpu") or {}
        labels = node_obj["metadata"].get("labels") or {}
        problems = []
        if cpu.get("model") == "host-model" and not any(k.startswith(HOST_MODEL_LABEL) for k in labels):
            # HV:2441-2450 isHostModelMigratable (hostCpuModel comes from node-labeller)
            problems.append(("CPUModeLiveMigratable",
                             f"the node \"{st.get('nodeName', '')}\" does not allow migration with host-model"))
        block, disks = check_volumes(vmi)
        live = {"type": "LiveMigratable", "status": "True", "lastProbeTime": None, "lastTransitionTime": None}
        storage = {"type": "StorageLiveMigratable", "status": "True", "lastProbeTime": None, "lastTransitionTime": None}
        first = problems[0] if problems else (("DisksNotLiveMigratable", disks) if disks else None)
        if first:
            live = dict(live, status="False", reason=first[0], message=first[1])
        if problems:
            storage = dict(storage, status="False", reason="NotMigratable",
                           message=", ".join(f"{r}: {m}" for r, m in problems))
        keep = [c for c in st.get("conditions") or [] if c["type"] not in ("LiveMigratable", "StorageLiveMigratable")]
        before = {c["type"]: c for c in st.get("conditions") or []}
        st["conditions"] = keep + [before.get(c["type"]) if _same(before.get(c["type"]), c) else c
                                   for c in (live, storage)]
        st["migrationMethod"] = "BlockMigration" if block else "LiveMigration"


def _same(a: dict | None, b: dict) -> bool:
    return a is not None and all(a.get(k) == b.get(k) for k in ("status", "reason", "message"))


# ---- KubeVirt's predicates on a VMI (staging/src/kubevirt.io/api/core/v1/types.go) ----

def decentralized(vmi: dict) -> bool:
    """IsDecentralizedMigration (types.go:676-681): exactly one side's syncAddress is set."""
    ms = vmi.get("status", {}).get("migrationState") or {}
    src = bool((ms.get("sourceState") or {}).get("syncAddress"))
    tgt = bool((ms.get("targetState") or {}).get("syncAddress"))
    return src != tgt


def is_migration_source(vmi: dict) -> bool:
    """IsMigrationSource (types.go:616-619)."""
    ts = (vmi.get("status", {}).get("migrationState") or {}).get("targetState") or {}
    return ts.get("syncAddress") is not None and ts.get("nodeAddress") is not None


def is_migration_target(vmi: dict) -> bool:
    """IsMigrationTarget (types.go:621-623)."""
    return (vmi["metadata"].get("annotations") or {}).get(CREATE_MIGRATION_TARGET) == "true"


def is_done(ms: dict | None) -> bool:
    """isMigrationDone (HS:617-619)."""
    return ms is None or (bool(ms.get("endTimestamp")) and bool(ms.get("completed") or ms.get("failed")))


def abort_in_progress(ms: dict | None) -> bool:
    """HT:319-322."""
    return ms is not None and bool(ms.get("abortRequested")) and not is_done(ms)


def needs_finalization(ms: dict | None) -> bool:
    """migrationNeedsFinalization (HT:723-729)."""
    return ms is not None and bool(ms.get("startTimestamp")) and bool(ms.get("endTimestamp")) \
        and not ms.get("completed") and not ms.get("failed")


def is_migrating(ms: dict | None) -> bool:
    """migrations.IsMigrating (pkg/util/migrations/migrations.go:75-97)."""
    if not ms or not ms.get("startTimestamp"):
        return False
    t = time.time()
    running = t >= _parse(ms["startTimestamp"])
    if ms.get("endTimestamp") and t >= _parse(ms["endTimestamp"]):
        running = False
    return running


def migration_in_progress(vmi: dict, domain: Domain | None) -> bool:
    """isMigrationInProgress (HC:376-406)."""
    ms = vmi.get("status", {}).get("migrationState") or {}
    if ms.get("startTimestamp") and not ms.get("endTimestamp"):
        return True
    if domain is not None:
        m = domain.migration or {}
        if m.get("startTimestamp") and not m.get("endTimestamp"):
            return True
        if domain.status == "Paused" and domain.reason in ("Migration", "StartingUp", "PostcopyMigration"):
            return True
    if is_migration_target(vmi):
        return not ms.get("completed")
    return False


def is_block_migration(vmi: dict, from_spec: bool = False) -> bool:
    """IsBlockMigration (types.go:546-549); from_spec: checkVolumesForMigration's verdict (check_volumes)."""
    st = vmi.get("status", {})
    if not from_spec:
        return st.get("migrationMethod") == "BlockMigration" or bool(st.get("migratedVolumes"))
    return check_volumes(vmi)[0]


NOT_SHARED = "cannot migrate VMI: PVC {} is not shared, live migration requires that all PVCs must be shared " \
             "(using ReadWriteMany access mode)"
UNKNOWN_SHARING = "cannot migrate VMI: Unable to determine if PVC {} is shared, live migration requires that all " \
                  "PVCs must be shared (using ReadWriteMany access mode)"


def check_volumes(vmi: dict) -> tuple[bool, str | None]:
    """checkVolumesForMigration (HV:1849-1925): (block migration, the error that makes the VMI's
    disks not live-migratable). A PVC or DataVolume must be ReadWriteMany or one of the VMI's
    migratedVolumes (the receiving VMI of a DLM has them all: virt-controller's
    GenerateReceiverMigratedVolumes, pkg/virt-controller/watch/vm/vm.go:870-886); the first one that
    is neither ends the check with block = True. Any other volume that is not a virtiofs filesystem
    or a read-only CD-ROM (a containerDisk, cloudInit, ...) is copied: a block migration."""
    st = vmi.get("status", {})
    status = {v["name"]: v for v in st.get("volumeStatus") or []}
    migrated = {v.get("volumeName") for v in st.get("migratedVolumes") or []}
    block = bool(migrated)
    devices = vmi["spec"]["domain"].get("devices") or {}
    filesystems = {f["name"] for f in devices.get("filesystems") or []}
    read_only = {d["name"] for d in devices.get("disks") or []        # isReadOnlyDisk (HV:1843-1847)
                 if "cdrom" in d and (d["cdrom"] or {}).get("readonly", True)}

    def shared(info: dict) -> bool:   # storagetypes.HasSharedAccessMode: ReadWriteMany
        return "ReadWriteMany" in (info.get("accessModes") or [])
    for v in vmi["spec"].get("volumes") or []:
        info = (status.get(v["name"]) or {}).get("persistentVolumeClaimInfo")
        if "persistentVolumeClaim" in v or "dataVolume" in v:
            claim = (v.get("persistentVolumeClaim") or {}).get("claimName") or (v.get("dataVolume") or {}).get("name")
            if info is None:
                return True, UNKNOWN_SHARING.format(claim)
            if not shared(info) and v["name"] not in migrated:
                return True, NOT_SHARED.format(claim)
        elif "hostDisk" in v:
            if info is not None:
                if not shared(info) and v["name"] not in migrated:
                    return True, NOT_SHARED.format(info.get("claimName"))
                continue
            if not v["hostDisk"].get("shared"):
                return True, "cannot migrate VMI with non-shared HostDisk"
        elif v["name"] not in filesystems and v["name"] not in read_only:
            block = True
    return block, None


def copied_volumes(vmi: dict) -> list[str]:
    """The volumes a block migration copies: every volume that is not shared storage (a
    ReadWriteMany claim, a shared hostDisk, a virtiofs filesystem, a read-only CD-ROM)."""
    st = vmi.get("status", {})
    status = {v["name"]: v for v in st.get("volumeStatus") or []}
    devices = vmi["spec"]["domain"].get("devices") or {}
    filesystems = {f["name"] for f in devices.get("filesystems") or []}
    read_only = {d["name"] for d in devices.get("disks") or []
                 if "cdrom" in d and (d["cdrom"] or {}).get("readonly", True)}
    copied = []
    for v in vmi["spec"].get("volumes") or []:
        info = (status.get(v["name"]) or {}).get("persistentVolumeClaimInfo") or {}
        if "persistentVolumeClaim" in v or "dataVolume" in v or ("hostDisk" in v and info):
            if "ReadWriteMany" not in (info.get("accessModes") or []):
                copied.append(v["name"])
        elif "hostDisk" in v:
            if not v["hostDisk"].get("shared"):
                copied.append(v["name"])
        elif v["name"] not in filesystems and v["name"] not in read_only:
            copied.append(v["name"])
    return copied


def monitor_options(vmi: dict, ms: dict) -> dict:
    """The migration monitor's options as virt-handler hands them to the launcher: from the VMI's
    migrationState.migrationConfiguration that virt-controller resolved (HS:518-545; without it
    the cluster's defaults, progressTimeout and completionTimeoutPerGiB 150: virt-config.go), the
    completion time scaled by the VM's data in GB, rounded up (ScaledValue(resource.Giga))."""
    config = ms.get("migrationConfiguration") or {}
    per_gib = int(config.get("completionTimeoutPerGiB", 150))
    disruption = config.get("allowWorkloadDisruption")
    return {"progress_timeout": int(config.get("progressTimeout", 150)),
            "completion_seconds": per_gib * math.ceil(data_total(vmi) / 10**9),
            "assist": bool(config.get("allowPostCopy") if disruption is None else disruption)}


def data_total(vmi: dict) -> int:
    """libvirt's DataTotal for the VMI's migration: its memory (as getVMIMigrationDataSize takes it,
    pkg/virt-launcher/virtwrap/manager.go:796-815: the requested memory, or the guest memory if set)
    and the capacity of each copied volume whose claim virt-controller recorded (volumeStatus)."""
    from tests.kubevirt.cdi import parse_quantity
    domain = vmi["spec"]["domain"]
    memory = (domain.get("memory") or {}).get("guest") or \
        ((domain.get("resources") or {}).get("requests") or {}).get("memory") or "0"
    total = parse_quantity(memory)
    copied = set(copied_volumes(vmi))
    for v in vmi.get("status", {}).get("volumeStatus") or []:
        capacity = ((v.get("persistentVolumeClaimInfo") or {}).get("capacity") or {}).get("storage")
        if v["name"] in copied and capacity:
            total += parse_quantity(capacity)
    return max(total, 1)


def target_detected_ready_domain(ms: dict) -> tuple[bool, float]:
    """hasTargetDetectedReadyDomain (HS:146-185): the target saw the running domain (through the
    sync controller); without it, 60 s after the end the source gives up."""
    if not ms.get("endTimestamp"):
        return False, 60
    ts = ms.get("targetState") or {}
    if ts.get("domainDetected") and ts.get("domainReadyTimestamp"):
        return True, 0
    return False, 60 - (time.time() - _parse(ms["endTimestamp"]))


def set_phase_transition(vmi: dict, old: dict | None = None) -> None:
    """controller.SetVMIPhaseTransitionTimestamp (pkg/controller/controller.go:389-404), which
    HV:1124 calls after every phase change."""
    st = vmi["status"]
    before = (old or {}).get("status", {}).get("phase") if old is not None else None
    if old is not None and before == st.get("phase"):
        return
    stamps = st.setdefault("phaseTransitionTimestamps", [])
    if st.get("phase") and not any(s.get("phase") == st["phase"] for s in stamps):
        stamps.append({"phase": st["phase"], "phaseTransitionTimestamp": now()})


# ---- one per cluster for the test session (tests/kubevirt/fixtures.py `handlers`) ----

NETWORK = Network()
_handlers: dict[int, Handler] = {}


def handler_for(install) -> Handler:
    """The cluster's played virt-handler, started on first use, with the played kubelet told when a
    launcher exits (nodes.NodeSide.exits)."""
    h = _handlers.get(id(install.cluster))
    if h is None:
        from tests.kubevirt.nodes import node_side
        side = node_side(install.cluster)
        if NETWORK.launcher_exit not in side.exits:
            side.exits.append(NETWORK.launcher_exit)
        h = _handlers[id(install.cluster)] = Handler(install, NETWORK).start()
    return h


def kill_launcher(h: Handler, namespace: str, name: str, *, target: bool, network: Network | None = None,
                  message: str = "virt-launcher crashed") -> None:
    """The virt-launcher of VMI namespace/name on h's cluster dies: the played kubelet reports its
    pod Failed (nodes.NodeSide.fail_pod) and the played libvirt loses its domain (Network.kill_*)."""
    from tests.kubevirt.nodes import node_side
    network = network or h.network
    try:
        vmi = h.cluster.request("GET", f"/apis/kubevirt.io/v1/namespaces/{namespace}/virtualmachineinstances/{name}")
    except ApiError as e:
        if e.status == 404:
            return
        raise
    uid = vmi["metadata"]["uid"]
    pods = h.cluster.request("GET", f"/api/v1/namespaces/{namespace}/pods?labelSelector=kubevirt.io%2Fcreated-by%3D{uid}")
    side = node_side(h.cluster)
    for pod in pods["items"]:
        if (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
            side.fail_pod(namespace, pod["metadata"]["name"], message)
    with network.lock:
        if target:
            network.kill_target(h, namespace, name)
        else:
            network.kill_source(h, namespace, name)


def kill_target_pod(install, namespace: str, name: str) -> None:
    """The receiving VMI's launcher pod dies now (faults: kill_target_pod)."""
    kill_launcher(handler_for(install), namespace, name, target=True)


def kill_source_pod(install, namespace: str, name: str) -> None:
    """The sending VMI's launcher pod dies now (faults: kill_source_pod)."""
    kill_launcher(handler_for(install), namespace, name, target=False)


MIGRATION_JOB_LABEL = "kubevirt.io/migrationJobUID"   # types.go:1165, on a migration's target pod


def target_pod_never_ready(installs, message: str = "virt-launcher failed to start") -> None:
    """The next migration target launcher pod on any of these clusters never runs (quota, image, a
    crash at start): the played kubelet reports it Failed instead of Running; one shot across them
    (faults: target_pod_never_ready). NodeSide.forget_fail_next disarms it."""
    from tests.kubevirt.nodes import node_side
    fired: list[str] = []

    def first_target(pod: dict) -> bool:
        if MIGRATION_JOB_LABEL not in (pod["metadata"].get("labels") or {}):
            return False
        if not fired:
            fired.append(pod["metadata"]["uid"])
        return fired[0] == pod["metadata"]["uid"]
    for install in installs:
        node_side(install.cluster).fail_next(first_target, message)


def stop_all() -> None:
    for h in _handlers.values():
        h.stop()
    _handlers.clear()

