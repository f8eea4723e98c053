"""virt-synchronization-controller (SC): exchanges VMI status between the two sides of a DLM.

There is no gRPC here; `SyncNetwork` plays the network and mTLS between the simulated controllers:
a connectURL reaches the cluster whose KubeVirt CR publishes that address (§6 item 2), and each side
checks the peer's CA against its own kubevirt-ca (§2.7). Errors carry the wording gRPC would give.
"""
from __future__ import annotations

import copy
import threading
import time

from .constants import (C_DLM_FAILURE, FIN_SYNC, FINAL_PHASES, MGR_SYNC, MSG_WAITING_FOR_SYNC, P_WAITING_FOR_SYNC,
                        R_DLM_NOT_MIGRATABLE)
from .cluster import KINDS
from .kube import ApiError, meta_key
from .migration_controller import decentralized, is_source
from .objects import dig, now, remove_condition, set_condition, status_patch
from .runtime import Controller, Requeue


class SyncError(Exception):
    pass


def _unavailable(desc: str) -> SyncError:
    return SyncError(f'rpc error: code = Unavailable desc = connection error: desc = "{desc}"')


class SyncNetwork:
    def __init__(self, sim):
        self.sim = sim
        self._reported: set = set()
        self._lock = threading.Lock()

    def dial(self, client, address: str):
        """The peer's SyncController, or SyncError with what the gRPC client would report."""
        if ":" not in address:
            raise _unavailable(f"transport: Error while dialing: dial tcp: address {address}: missing port in address")
        server = next((c for c in self.sim.clusters.values()
                       if c.gate_enabled() and address in c.published_sync_addresses()), None)
        blocked = self.sim.faults.sync_blocked.get(server.name) if server else None
        if server is None or blocked == "refused":
            raise _unavailable(f"transport: Error while dialing: dial tcp {address}: connect: connection refused")
        if blocked == "timeout":
            time.sleep(self.sim.faults.dial_timeout)  # stands in for the 30 s call timeout (SC:56)
            raise SyncError("rpc error: code = DeadlineExceeded desc = context deadline exceeded")
        # mTLS (pkg/util/tls/tls.go): each side verifies the other against its own kubevirt-ca.
        if server.own_ca is not None and server.own_ca.sha256 not in client.trusted_fingerprints():
            self._violation(client, address, "the peer's CA is not in this cluster's kubevirt-ca")
            raise _unavailable("transport: authentication handshake failed: could not verify peer certificate: "
                               "x509: certificate signed by unknown authority")
        if client.own_ca is not None and client.own_ca.sha256 not in server.trusted_fingerprints():
            self._violation(client, address, f"this cluster's CA is not in {server.name}'s kubevirt-ca")
            raise _unavailable("error reading server preface: remote error: tls: bad certificate")
        return server.controllers["sc"]

    def _violation(self, client, address: str, why: str) -> None:
        key = (client.name, address, why)
        with self._lock:
            if key in self._reported:
                return
            self._reported.add(key)
        self.sim.record_violation(f"{client.name}: synchronization connection to {address} failed TLS "
                                  f"verification: {why}")


def _sync_condition(message: str) -> dict:
    return {"type": C_DLM_FAILURE, "status": "True", "reason": R_DLM_NOT_MIGRATABLE, "message": message,
            "lastProbeTime": None, "lastTransitionTime": now()}


class SyncController(Controller):
    name = "virt-synchronization-controller"

    def __init__(self, sim, cluster):
        super().__init__(sim, cluster)
        self._push_failures: dict = {}
        self._cancelled: set[str] = set()
        self._final_pushed: set[str] = set()
        self._known: dict[str, dict] = {}  # VMIM uid -> last seen VMIM (to push after it is gone, SC:381-386)
        self._last_push_after_gone: set[str] = set()

    # ---- the client side: reconcile one VMIM (or a VMI whose VMIM is gone) ----

    def reconcile(self, key):
        if not self.cluster.gate_enabled():
            return None  # §2.8: the operator deleted the virt-synchronization-controller Deployment
        if key[0] == "vmi":
            return self._orphan_push(key[1], key[2])
        _, ns, name = key
        c = self.cluster
        m = c.get("vmim", ns, name)
        if m is None or not c.admitted(m) or not decentralized(m):
            return None
        uid = m["metadata"]["uid"]
        self._known[uid] = m
        vmi = c.get("vmi", ns, dig(m, "spec", "vmiName"))
        fins = m["metadata"].get("finalizers") or []
        deleting = bool(m["metadata"].get("deletionTimestamp"))
        if dig(m, "status", "phase") in FINAL_PHASES:
            if not is_source(m) and not deleting and vmi is not None and uid not in self._final_pushed:
                self._final_pushed.add(uid)  # SC:743-748: a final target still pushes once, then closes
                self._push_target(m, vmi)  # (a deleting one pushes nothing, SC:364-372)
            if FIN_SYNC in fins:  # SC:475-479
                m["metadata"]["finalizers"] = [f for f in fins if f != FIN_SYNC]
                c.replace("vmim", m, MGR_SYNC)
            return None
        ms = dig(vmi, "status", "migrationState", default={})
        # SC finds a VMIM through its VMI: sourceState / targetState.migrationUID (rows 11, 15; SC:753-788)
        if dig(ms, "sourceState" if is_source(m) else "targetState", "migrationUID") != uid:
            return None
        if not deleting and FIN_SYNC not in fins:  # SC:473-495
            m["metadata"]["finalizers"] = fins + [FIN_SYNC]
            c.replace("vmim", m, MGR_SYNC)
            return None
        if is_source(m):
            if deleting:  # SC:350-360: push, then cancel the peer
                self._push_source(m, vmi, report=False)
                self._cancel(m, vmi, dig(ms, "targetState", "migrationUID"), dig(ms, "targetState", "syncAddress"))
                return None
            return self._push_source(m, vmi, report=True)
        if deleting:  # SC:364-372, 497-506: cancel, push nothing
            self._cancel(m, vmi, dig(ms, "sourceState", "migrationUID"), dig(ms, "sourceState", "syncAddress"))
            return None
        err = self._push_target(m, vmi) if dig(ms, "sourceState", "syncAddress") else None
        if dig(m, "status", "phase", default="") in ("", P_WAITING_FOR_SYNC):
            want = MSG_WAITING_FOR_SYNC  # SC:424-427
        else:
            want = err  # SC:418-422: the target only records its error; no retry of its own
        self._set_condition(vmi, want)
        return None

    def _orphan_push(self, ns: str, name: str):
        """SC:381-386, 397-406: the source VMIM vanished before the target saw the abort's endTimestamp;
        the source VMI still carries abortRequested and endTimestamp, so push it one last time."""
        vmi = self.cluster.get("vmi", ns, name)
        ms = dig(vmi, "status", "migrationState", default={})
        uid = dig(ms, "sourceState", "migrationUID")
        last = self._known.get(uid)
        if last is None or uid in self._last_push_after_gone:
            return None
        if self.cluster.get("vmim", ns, last["metadata"]["name"]) is not None:
            return None  # still there: its own reconcile pushes
        if not (ms.get("abortRequested") and ms.get("endTimestamp")):
            return None
        self._last_push_after_gone.add(uid)
        self._push_source(last, vmi, report=False)
        return None

    def _push_source(self, m: dict, vmi: dict, report: bool):
        address = dig(vmi, "status", "migrationState", "targetState", "syncAddress")
        if not address:
            return None  # MC has not written row 14 yet
        status = copy.deepcopy(vmi.get("status") or {})
        status["migrationState"].setdefault("sourceState", {})["syncAddress"] = self.cluster.own_sync_address
        key = m["metadata"]["uid"]
        try:
            peer = self.sim.sync.dial(self.cluster, address)
            peer.receive_source_state(dig(m, "spec", "sendTo", "migrationID"), status)
        except SyncError as e:
            if not report:
                return None
            self._set_condition(vmi, str(e))
            n = self._push_failures[key] = self._push_failures.get(key, 0) + 1
            raise Requeue(min(0.05 * 2 ** min(n, 6), 2.0))  # SC (src) returns the error: rate-limited retry
        self._push_failures.pop(key, None)
        if report:
            self._set_condition(vmi, None)  # SC:408-416
        return None

    def _push_target(self, m: dict, vmi: dict) -> str | None:
        address = dig(vmi, "status", "migrationState", "sourceState", "syncAddress")
        status = copy.deepcopy(vmi.get("status") or {})
        status["migrationState"].setdefault("targetState", {})["syncAddress"] = self.cluster.own_sync_address
        try:
            peer = self.sim.sync.dial(self.cluster, address)
            peer.receive_target_state(dig(m, "spec", "receive", "migrationID"), status)
        except SyncError as e:
            return str(e)
        return None

    def _cancel(self, m: dict, vmi: dict, peer_uid: str | None, address: str | None) -> None:
        """CancelMigration is looked up in the opposite connection map, which holds the migration only
        when one controller serves both sides (§2.5): across clusters it silently does nothing."""
        uid = m["metadata"]["uid"]
        if uid in self._cancelled or not peer_uid or not address:
            return
        self._cancelled.add(uid)
        try:
            peer = self.sim.sync.dial(self.cluster, address)
        except SyncError:
            return
        if peer is self:
            peer.cancel_migration(peer_uid)

    def _set_condition(self, vmi: dict, message: str | None) -> None:
        """VMI condition DecentralizedLiveMigrationFailure; never on a completed VMI (SC:1188-1192)."""
        ns, name = meta_key(vmi)
        for attempt in range(10):
            fresh = self.cluster.get("vmi", ns, name)
            if fresh is None or dig(fresh, "status", "migrationState", "completed"):
                return
            st = fresh.setdefault("status", {})
            changed = set_condition(st, _sync_condition(message)) if message else remove_condition(st, C_DLM_FAILURE)
            if not changed:
                return
            try:
                self.cluster.replace("vmi", fresh, MGR_SYNC)
                return
            except ApiError as e:
                if not e.conflict:
                    raise
                time.sleep(0.01 * (attempt + 1))  # let the cache catch up with the other writer

    # ---- the server side (what the peer's RPC does in this cluster) ----

    def _locate(self, migration_id: str, field: str, side: str):
        c = self.cluster
        ms = [m for m in c.stores["vmim"].list() if c.admitted(m) and
              dig(m, "spec", field, "migrationID") == migration_id]
        if not ms:
            raise SyncError(f"rpc error: code = Unknown desc = {side}: unable to locate VMI for migrationID "
                            f"{migration_id}")
        ms.sort(key=lambda m: (dig(m, "status", "phase") not in FINAL_PHASES, m["metadata"]["creationTimestamp"]))
        m = ms[-1]
        ns, name = m["metadata"]["namespace"], dig(m, "spec", "vmiName")
        vmi = c.get("vmi", ns, name)
        if vmi is None:
            raise SyncError(f"rpc error: code = Unknown desc = {side}: unable to locate VMI for migrationID "
                            f"{migration_id}, vmi: {ns}/{name}")
        return m, vmi

    def receive_source_state(self, migration_id: str, remote: dict) -> None:
        """SC:948-1030: the target side takes the source's sourceState and migration facts."""
        def apply(m, vmi):
            st = vmi.setdefault("status", {})
            ms = st.setdefault("migrationState", {})
            rms = remote.get("migrationState") or {}
            src = copy.deepcopy(rms.get("sourceState") or {})
            ms["sourceState"] = src
            for legacy, field in (("sourceNode", "node"), ("sourcePod", "pod")):
                if src.get(field):
                    ms[legacy] = src[field]
            for f in ("migrationMethod", "migrationTransport"):
                if remote.get(f):
                    st[f] = remote[f]
            if remote.get("migratedVolumes"):  # merged by volumeName
                mine = {v["volumeName"]: v for v in st.get("migratedVolumes") or []}
                for v in remote["migratedVolumes"]:
                    mine[v["volumeName"]] = v
                st["migratedVolumes"] = list(mine.values())
            if rms.get("abortRequested") and rms.get("endTimestamp"):  # SC:1393-1402
                for f in ("failed", "completed", "abortStatus", "failureReason"):
                    if rms.get(f):
                        ms[f] = rms[f]
            _copy_times(rms, ms)
        self._receive(migration_id, "receive", "source", apply)

    def receive_target_state(self, migration_id: str, remote: dict) -> None:
        """SC:1088-1164, 1361-1384: the source side takes the target's state wholesale."""
        def apply(m, vmi):
            ms = vmi.setdefault("status", {}).setdefault("migrationState", {})
            rms = remote.get("migrationState") or {}
            ms["targetState"] = copy.deepcopy(rms.get("targetState") or {})
            for f in ("targetNode", "targetPod", "targetNodeAddress", "targetDirectMigrationNodePorts",
                      "targetNodeDomainDetected", "targetNodeDomainReadyTimestamp", "completed", "failed"):
                if rms.get(f) not in (None, "", False, {}):
                    ms[f] = copy.deepcopy(rms[f])
                else:
                    ms.pop(f, None)
            _copy_times(rms, ms)
        self._receive(migration_id, "sendTo", "target", apply)

    def _receive(self, migration_id: str, field: str, side: str, apply) -> None:
        m, vmi = self._locate(migration_id, field, side)
        ms = dig(vmi, "status", "migrationState", default={})
        if dig(m, "status", "phase") in FINAL_PHASES:
            return  # accepted, ignored
        if ms.get("migrationUid") and ms["migrationUid"] != m["metadata"]["uid"]:
            return  # the VMI belongs to another migration
        if ms.get("completed"):
            return  # SC never patches a completed VMI (SC:1188-1192)
        before = copy.deepcopy(vmi.setdefault("status", {}))
        apply(m, vmi)
        ops = status_patch(before, vmi["status"])
        if not ops:
            return
        try:
            out = self.cluster.kube.patch(KINDS["vmi"], vmi["metadata"]["namespace"], vmi["metadata"]["name"], ops,
                                          MGR_SYNC, "application/json-patch+json")
            self.cluster.stores["vmi"].observe(out)
        except ApiError as e:
            raise SyncError(f"rpc error: code = Unknown desc = {e.message or e}") from None

    def cancel_migration(self, vmim_uid: str) -> None:
        """SC:1449-1470: delete our VMIM with that uid."""
        for m in self.cluster.stores["vmim"].list():
            if m["metadata"]["uid"] == vmim_uid and not m["metadata"].get("deletionTimestamp"):
                self.cluster.delete("vmim", m["metadata"]["namespace"], m["metadata"]["name"], vmim_uid)


def _copy_times(remote_ms: dict, ms: dict) -> None:
    """SC:1405-1419: timestamps and policy are copied when set."""
    for f in ("startTimestamp", "endTimestamp", "migrationPolicyName", "migrationConfiguration"):
        if remote_ms.get(f):
            ms[f] = copy.deepcopy(remote_ms[f])
