"""Watchers end when asked, even while blocked reading an idle watch: the process never exits
with a thread inside network I/O (issue 13.11: SIGABRT after 'succeeded')."""

from __future__ import annotations

import queue
import threading
import time

from kubectl_dlm import kube
from kubectl_dlm.watcher import Watcher, drain, stop_all


def test_stop_all_joins_watchers_blocked_on_an_idle_watch(clusters, namespaces):
    ns = namespaces("source")
    cluster = kube.connect(str(clusters.kubeconfig), "source")
    events: "queue.Queue" = queue.Queue()
    watchers = [Watcher(cluster, kind, ns, events, kind) for kind in ("ConfigMap", "VirtualMachineInstanceMigration")]
    for w in watchers:
        w.start()
    assert events.get(timeout=20).type == "LIST" and events.get(timeout=20).type == "LIST"
    deadline = time.monotonic() + 10
    while any(w.handle is None or w.handle.response is None for w in watchers):  # both inside the watch read
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.5)
    started = time.monotonic()
    assert stop_all(watchers, timeout=10) == []
    assert time.monotonic() - started < 3  # not the 30 s the server would take to end the watch
    assert not [t for t in threading.enumerate() if t.name.startswith("watch-")]
    while not events.empty():  # a stop is not a lost cluster
        assert events.get_nowait().type not in ("LOST",)


def test_drain_without_wait_returns_what_is_queued_at_once():
    """The engine drains with no wait right after it starts a run (engine.run): an empty queue gives
    nothing rather than blocking, a full one gives everything in order."""
    events: "queue.Queue" = queue.Queue()
    assert drain(events, 0.0) == []
    for i in range(3):
        events.put(i)
    assert drain(events, 0.0) == [0, 1, 2]
    assert drain(events, 0.0) == []
