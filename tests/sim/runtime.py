"""Controller plumbing: a de-duplicating work queue per controller, delayed requeues, retry on error.

Like a client-go controller: events only enqueue keys; one worker thread reconciles a key from the
current cache state; a conflict or an unreachable API server requeues the key with backoff.
"""
from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
import traceback
from typing import Hashable

from .kube import ApiError

log = logging.getLogger("kubevirt_sim")


class Requeue(Exception):
    """Raise (or return a float from reconcile) to come back to the key after `after` seconds."""

    def __init__(self, after: float):
        self.after = after


class Scheduler:
    """One thread that fires delayed enqueues for every controller."""

    def __init__(self, stop: threading.Event, on_error):
        self._on_error = on_error
        self._heap: list = []
        self._cv = threading.Condition()
        self._seq = itertools.count()
        self._stop = stop
        self.thread = threading.Thread(target=self._run, name="sim-scheduler", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def call_later(self, delay: float, fn, *args) -> None:
        with self._cv:
            heapq.heappush(self._heap, (time.monotonic() + delay, next(self._seq), fn, args))
            self._cv.notify()

    def wake(self) -> None:
        with self._cv:
            self._cv.notify_all()

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._cv:
                now = time.monotonic()
                due = []
                while self._heap and self._heap[0][0] <= now:
                    due.append(heapq.heappop(self._heap))
                if not due:
                    wait = self._heap[0][0] - now if self._heap else 0.5
                    self._cv.wait(min(wait, 0.5))
                    continue
            for _, _, fn, args in due:
                try:
                    fn(*args)
                except Exception:  # noqa: BLE001 - keep firing the others
                    self._on_error(f"scheduled {getattr(fn, '__qualname__', fn)}: {traceback.format_exc()}")


class Controller:
    """Subclasses implement reconcile(key). One worker thread per controller."""

    name = "controller"

    def __init__(self, sim, cluster):
        self.sim, self.cluster = sim, cluster
        self._cv = threading.Condition()
        self._queue: list[Hashable] = []
        self._queued: set[Hashable] = set()
        self._active: Hashable | None = None
        self._dirty: set[Hashable] = set()
        self._failures: dict[Hashable, int] = {}
        label = f"{self.name}@{cluster.name}" if cluster is not None else self.name
        self.thread = threading.Thread(target=self._run, name=label, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def enqueue(self, key: Hashable, after: float = 0) -> None:
        if after > 0:
            self.sim.scheduler.call_later(after, self.enqueue, key)
            return
        with self._cv:
            if key == self._active:
                self._dirty.add(key)  # re-run after the current pass, never concurrently
                return
            if key not in self._queued:
                self._queued.add(key)
                self._queue.append(key)
                self._cv.notify()

    def wake(self) -> None:
        with self._cv:
            self._cv.notify_all()

    def idle(self) -> bool:
        with self._cv:
            return not self._queue and self._active is None

    def reconcile(self, key: Hashable):  # pragma: no cover - abstract
        raise NotImplementedError

    def _run(self) -> None:
        stop = self.sim.stop_event
        while not stop.is_set():
            with self._cv:
                while not self._queue and not stop.is_set():
                    self._cv.wait(0.2)
                if stop.is_set():
                    return
                key = self._queue.pop(0)
                self._queued.discard(key)
                self._active = key
            after = None
            try:
                result = self.reconcile(key)
                self._failures.pop(key, None)
                if isinstance(result, (int, float)) and result > 0:
                    after = float(result)
            except Requeue as r:
                after = r.after
            except ApiError as e:
                n = self._failures[key] = self._failures.get(key, 0) + 1
                # 409: someone wrote first - retry at once from the fresher cache. Else back off.
                after = 0.01 if e.conflict else min(0.05 * 2 ** min(n, 6), 2.0)
                if e.status in (400, 422) and n == 1 and not stop.is_set():
                    # the API server refused what we wrote: a simulator bug, not a cluster condition
                    self.sim.record_error(f"{self.thread.name} {key}: {e}")
                elif not e.conflict and e.status not in (0, 403, 404, 429, 500, 503) and n == 1:
                    log.warning("%s %s: %s", self.name, key, e)
            except Exception:  # noqa: BLE001 - a sim bug: record it, keep the sim alive
                if not stop.is_set():
                    self.sim.record_error(f"{self.thread.name} {key}: {traceback.format_exc()}")
                after = 1.0
            with self._cv:
                self._active = None
                if key in self._dirty:
                    self._dirty.discard(key)
                    if key not in self._queued:
                        self._queued.add(key)
                        self._queue.append(key)
            if after is not None and not stop.is_set():
                self.enqueue(key, after)
