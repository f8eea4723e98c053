"""The libvirt migration stream between a source and a target launcher, over a flat node network.

The target handler listens on its node address (HT:394-413); the source handler connects there and
the transfer runs for a configurable time (faults.transfer_seconds). Progress exists only here and in
the Prometheus metrics built from it (§0 "No progress field in status").
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass


STALL_AT = 0.25  # where a transfer that cannot converge (faults.dirty_rate) stops making progress


@dataclass(frozen=True)
class Endpoint:
    cluster: str
    namespace: str
    name: str
    uid: str
    node: str


class Transfer:
    def __init__(self, src: Endpoint, tgt: Endpoint, migration: str, total_bytes: int, seconds: float):
        self.src, self.tgt, self.migration = src, tgt, migration  # migration: the source VMIM uid
        self.total_bytes, self.seconds = max(int(total_bytes), 1), max(float(seconds), 0.01)
        self.started = time.monotonic()
        self.state = "running"  # running | completed | failed | aborted
        self.reason = ""
        self.ended = 0.0
        self._fraction_at_end: float | None = None
        self.dirty_rate = 0  # bytes/s (faults.dirty_rate when it started)

    def fraction(self) -> float:
        if self._fraction_at_end is not None:
            return self._fraction_at_end
        done = min(1.0, (time.monotonic() - self.started) / self.seconds)
        return min(done, STALL_AT) if self.dirty_rate >= self.rate else done

    def end(self, state: str, reason: str = "") -> bool:
        if self.state != "running":
            return False
        self._fraction_at_end = 1.0 if state == "completed" else self.fraction()
        self.state, self.reason, self.ended = state, reason, time.monotonic()
        return True

    @property
    def rate(self) -> int:
        return int(self.total_bytes / self.seconds)


class Fabric:
    def __init__(self, sim):
        self.sim = sim
        self._lock = threading.Lock()
        self._listeners: dict[str, Endpoint] = {}
        self._transfers: list[Transfer] = []

    def listen(self, address: str, target: Endpoint) -> None:
        with self._lock:
            self._listeners[address] = target

    def listen_on_free_port(self, host: str, first: int, target: Endpoint) -> int:
        """Listen on the lowest free even port from `first` on `host` (a port pair per migration)."""
        with self._lock:
            port = first
            while f"{host}:{port}" in self._listeners:
                port += 2
            self._listeners[f"{host}:{port}"] = target
            return port

    def close(self, address: str) -> None:
        with self._lock:
            self._listeners.pop(address, None)

    def connect(self, address: str, src: Endpoint, migration: str, total_bytes: int,
                seconds: float) -> Transfer | None:
        """Start streaming to whoever listens on `address`; None means connection refused."""
        with self._lock:
            tgt = self._listeners.get(address)
            if tgt is None:
                return None
            t = Transfer(src, tgt, migration, total_bytes, seconds)
            t.dirty_rate = self.sim.faults.dirty_rate
            self._transfers.append(t)
        self.sim.scheduler.call_later(t.seconds, self._finish, t)
        self.sim.faults.arm_transfer(t)
        return t

    def _finish(self, t: Transfer) -> None:
        if t.end("completed"):
            self.notify(t)

    def fail(self, t: Transfer, reason: str) -> None:
        if t.end("failed", reason):
            self.notify(t)

    def abort(self, t: Transfer) -> None:
        if t.end("aborted", "canceled by client"):
            self.notify(t)

    def notify(self, t: Transfer) -> None:
        for ep in (t.src, t.tgt):
            cluster = self.sim.clusters.get(ep.cluster)
            if cluster is not None:
                cluster.controllers["handler"].enqueue((ep.namespace, ep.name))

    def for_source(self, vmi_uid: str, migration: str | None) -> Transfer | None:
        with self._lock:
            ts = [t for t in self._transfers if t.src.uid == vmi_uid and t.migration == migration]
        return ts[-1] if ts else None

    def for_target(self, vmi_uid: str, migration: str | None) -> Transfer | None:
        with self._lock:
            ts = [t for t in self._transfers if t.tgt.uid == vmi_uid and t.migration == migration]
        return ts[-1] if ts else None

    def running(self) -> list[Transfer]:
        with self._lock:
            return [t for t in self._transfers if t.state == "running"]
