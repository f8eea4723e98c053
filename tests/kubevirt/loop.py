"""The background loop every played component of the KubeVirt tier runs: `step()` every `period`
seconds in a daemon thread, per cluster, until stop(). A step that raises does not end the loop (a
server hiccup must not stop the kubelet); the last errors are kept for a failed test's report
(tests/kubevirt/fixtures.py)."""
from __future__ import annotations

import threading


class Loop:
    name = "loop"   # the thread's name, with the cluster's

    def __init__(self, cluster, period: float = 0.2):
        self.cluster, self.period = cluster, period
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def step(self) -> None:
        raise NotImplementedError

    def start(self):
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name=f"{self.name}-{self.cluster.name}", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=10)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.step()
            except Exception as e:   # keep playing; a test that waits on it shows this on failure
                self.errors.append(f"{type(e).__name__}: {e}")
                del self.errors[:-20]
            self._stop.wait(self.period)
