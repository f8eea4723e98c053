"""KubeVirtSim: KubeVirt's controllers for the two test clusters, running in threads against the real API servers."""
from __future__ import annotations

import copy
import threading
import time
import urllib.request
from typing import Callable

from . import kube as K
from .cdi import CDI
from .cluster import KINDS, SimCluster
from .faults import Faults
from .handler import Handler
from .handler_pods import HandlerPods
from .metrics import MetricsServer
from .migration_controller import MigrationController
from .operator import Operator
from .runtime import Scheduler
from .sync_controller import SyncController, SyncNetwork
from .transfer import Fabric
from .vm_controller import VMController
from .vmi_lifecycle import VMILifecycle
from .webhooks import Webhooks

CONTROLLERS = (("operator", Operator), ("cdi", CDI), ("vmc", VMController), ("lc", VMILifecycle),
               ("mc", MigrationController), ("handler", Handler), ("sc", SyncController))


class KubeVirtSim:
    """Usage: sim = KubeVirtSim(clusters).start(); ...; sim.stop(); sim.problems() -> [] when clean."""

    def __init__(self, clusters, names: tuple[str, ...] = ("source", "target")):
        self._handles = {n: getattr(clusters, n) for n in names}
        self.stop_event = threading.Event()
        self.scheduler = Scheduler(self.stop_event, self.record_error)
        self.faults = Faults(self)
        self.fabric = Fabric(self)
        self.sync = SyncNetwork(self)
        self.clusters: dict[str, SimCluster] = {}
        self.violations: list[str] = []
        self.errors: list[str] = []
        self._expected: list[str] = []
        self._metrics: dict[str, MetricsServer] = {}
        self.handler_pods = HandlerPods(self)
        self._lock = threading.Lock()
        self._started = False

    # ---- lifecycle ----

    def start(self, timeout: float = 30) -> "KubeVirtSim":
        self.scheduler.start()
        for i, (name, handle) in enumerate(self._handles.items()):
            c = SimCluster(self, name, i, handle)
            c.bootstrap()
            c.controllers = {"webhooks": Webhooks(self, c)}
            c.controllers.update({key: cls(self, c) for key, cls in CONTROLLERS})
            self.clusters[name] = c
        for c in self.clusters.values():
            for key, _ in CONTROLLERS:
                c.controllers[key].start()
            c.start_watches()
            c.controllers["operator"].enqueue(("ca",))
        for c in self.clusters.values():
            if not c.wait_synced(timeout):
                self.stop()
                raise RuntimeError(f"kubevirt-sim: the {c.name} caches did not sync within {timeout}s")
            server = self._metrics[c.name] = MetricsServer(self.fabric, c.name)
            server.start()
        self.handler_pods.start()
        self._started = True
        return self

    def stop(self) -> None:
        if self.stop_event.is_set():
            return
        try:
            self.faults.restore()
            for c in self.clusters.values():  # leave the shared installation as we found it
                self._wait(lambda c=c: c.kubevirt_cr() is None or
                           c.published_sync_addresses() == [c.own_sync_address], 10)
        except Exception as e:  # noqa: BLE001 - teardown goes on
            self.record_error(f"restoring the installation: {e}")
        self.stop_event.set()
        self.scheduler.wake()
        for c in self.clusters.values():
            c.kube.abort_watches()
            for key, _ in CONTROLLERS:
                c.controllers[key].wake()
        for c in self.clusters.values():
            for w in c.watchers:
                w.thread.join(5)
            for key, _ in CONTROLLERS:
                c.controllers[key].thread.join(5)
            c.kube.api.close()
        for server in self._metrics.values():
            server.stop()
        self.handler_pods.stop()

    # ---- findings ----

    def record_violation(self, message: str) -> None:
        with self._lock:
            self.violations.append(message)

    def record_error(self, message: str) -> None:
        with self._lock:
            self.errors.append(message)

    def expect_violations(self, *substrings: str) -> None:
        """Declare webhook denials this test provokes on purpose; each must occur at least once."""
        self._expected.extend(substrings)

    def problems(self) -> list[str]:
        out = [f"simulator error: {e}" for e in self.errors]
        for v in self.violations:
            if not any(s in v for s in self._expected):
                out.append(f"KubeVirt would have rejected: {v}")
        for s in self._expected:
            if not any(s in v for v in self.violations):
                out.append(f"expected violation did not happen: {s!r}")
        return out

    # ---- helpers for tests ----

    @property
    def metrics_url(self) -> str:
        """virt-handler metrics of the source cluster (transfers are reported on the source node)."""
        return self._metrics["source"].url

    @property
    def metrics_urls(self) -> dict[str, str]:
        return {name: s.url for name, s in self._metrics.items()}

    def scrape(self, cluster: str = "source") -> str:
        with urllib.request.urlopen(self._metrics[cluster].url, timeout=5) as r:
            return r.read().decode()

    def get(self, cluster: str, kind: str, namespace: str, name: str) -> dict | None:
        """A fresh read from the API server (kind: vm, vmi, vmim, kubevirt, dv, pvc, configmap)."""
        return self.clusters[cluster].kube.get(KINDS[kind], namespace, name)

    def wait_for(self, cluster: str, kind: str, namespace: str, name: str,
                 predicate: Callable[[dict | None], bool] | None = None, timeout: float = 20,
                 what: str = "") -> dict | None:
        """Poll the API server until predicate(obj) (default: it exists); return the object."""
        pred = predicate or (lambda o: o is not None)
        last = [None]

        def check():
            last[0] = self.get(cluster, kind, namespace, name)
            return pred(last[0])
        if not self._wait(check, timeout):
            state = (last[0] or {}).get("status") if last[0] else "<absent>"
            raise TimeoutError(f"{what or 'condition'} on {cluster} {kind} {namespace}/{name} not met in "
                               f"{timeout}s; last status: {state}")
        return last[0]

    def wait_gone(self, cluster: str, kind: str, namespace: str, name: str, timeout: float = 20) -> None:
        self.wait_for(cluster, kind, namespace, name, lambda o: o is None, timeout, "deletion")

    def run_vm(self, cluster: str, namespace: str, vm: dict, *, data_volumes=(), pvcs=(), secrets=(),
               timeout: float = 30) -> dict:
        """Create a VM (and the DataVolumes, PVCs and Secrets it needs) and wait for its VMI to be Running."""
        c = self.clusters[cluster]
        for res, objs in ((K.SECRET, secrets), (K.PVC, pvcs), (K.DV, data_volumes)):
            for obj in objs:
                obj = copy.deepcopy(obj)
                obj.setdefault("metadata", {})["namespace"] = namespace
                c.kube.create(res, obj, "kubevirt-sim-test")
        vm = copy.deepcopy(vm)
        vm.setdefault("apiVersion", "kubevirt.io/v1")
        vm.setdefault("kind", "VirtualMachine")
        vm["metadata"]["namespace"] = namespace
        c.kube.create(K.VM, vm, "kubevirt-sim-test")
        name = vm["metadata"]["name"]
        return self.wait_for(cluster, "vmi", namespace, name,
                             lambda o: o is not None and (o.get("status") or {}).get("phase") == "Running",
                             timeout, "VMI Running")

    def idle(self) -> bool:
        return all(c.controllers[k].idle() for c in self.clusters.values() for k, _ in CONTROLLERS)

    @staticmethod
    def _wait(check: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            if check():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(interval)
