"""Keep a live copy of some objects on one cluster: list, then watch from the list's resourceVersion.

Each watcher runs in its own thread and puts what it sees on a shared queue. It survives what a
long migration meets: a watch that times out (reconnect from the last resourceVersion), one that
expired (410: list again), and an API server that goes away and comes back (retry with backoff,
say so once).
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from kubectl_dlm import kube
from kubectl_dlm.errors import DlmError
from kubectl_dlm.model import meta


@dataclass
class Event:
    tag: str  # which watcher: e.g. "target/VirtualMachineInstance"
    type: str  # "LIST" (full snapshot), "ADDED", "MODIFIED", "DELETED", "LOST", "BACK"
    objects: List[Dict[str, Any]]
    message: str = ""


class Watcher(threading.Thread):
    def __init__(self, cluster: kube.Cluster, kind: str, namespace: str, events: "queue.Queue[Event]",
                 tag: str, selector: str = ""):
        super().__init__(daemon=True, name=f"watch-{tag}")
        self.cluster, self.kind, self.namespace, self.selector = cluster, kind, namespace, selector
        self.events, self.tag = events, tag
        self.stopped = threading.Event()
        self.handle: Optional[kube.WatchHandle] = None

    def stop(self) -> None:
        """Ask the thread to end and close its connection, so that join() returns promptly."""
        self.stopped.set()
        if self.handle is not None:
            self.handle.close()

    def run(self) -> None:
        delay, lost = 0.5, False
        while not self.stopped.is_set():
            try:
                version = self._list()
                if lost:
                    self.events.put(Event(self.tag, "BACK", [], f"reconnected to {self.cluster.describe()}"))
                    lost = False
                delay = 0.5
                while not self.stopped.is_set():
                    version = self._watch(version)
            except kube.Expired:
                continue  # list again
            except Exception as exc:  # noqa: BLE001 - see below
                if self.stopped.is_set():
                    break  # our own close() broke the connection, whatever the library made of that
                if not isinstance(exc, (kube.Disconnected, DlmError)):
                    raise
                if not lost:
                    self.events.put(Event(self.tag, "LOST", [], f"lost {self.cluster.describe()}: {exc}; retrying"))
                    lost = True
                self.stopped.wait(delay)
                delay = min(delay * 2, 5.0)

    def _list(self) -> str:
        body = kube.call(self.cluster, "GET", kube._path(self.kind, self.namespace),
                         f"list {self.kind} in namespace {self.namespace}",
                         query={"labelSelector": self.selector} if self.selector else None, attempts=1)
        self.events.put(Event(self.tag, "LIST", body.get("items") or []))
        return (body.get("metadata") or {}).get("resourceVersion", "")

    def _watch(self, version: str) -> str:
        self.handle = kube.WatchHandle()
        if self.stopped.is_set():
            return version
        for event in kube.watch(self.cluster, self.kind, self.namespace, version, selector=self.selector, timeout=30,
                                handle=self.handle):
            if self.stopped.is_set():
                break
            obj = event["object"] or {}
            version = meta(obj).get("resourceVersion", version)
            if event["type"] != "BOOKMARK":
                self.events.put(Event(self.tag, event["type"], [obj]))
        return version


def stop_all(watchers: List[Watcher], timeout: float = 5.0) -> List[Watcher]:
    """Stop every watcher, close its connection and join its thread; those still alive after
    `timeout` seconds are returned (the caller may say so; they are daemon threads)."""
    for watcher in watchers:
        watcher.stop()
    deadline = time.monotonic() + timeout
    for watcher in watchers:
        if watcher.is_alive():
            watcher.join(max(0.0, deadline - time.monotonic()))
    return [w for w in watchers if w.is_alive()]


def drain(events: "queue.Queue[Event]", wait: float) -> List[Event]:
    """Everything queued, waiting up to `wait` seconds for the first event."""
    out: List[Event] = []
    try:
        out.append(events.get(timeout=wait))
        while True:
            out.append(events.get_nowait())
    except queue.Empty:
        return out


def wait_until(deadline: Optional[float]) -> float:
    return 1.0 if deadline is None else max(0.0, min(1.0, deadline - time.monotonic()))
