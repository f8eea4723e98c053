"""Building blocks for the simulator's own tests: VM manifests and the steps an orchestrator takes (LM:122-144).

Everything is done with the kubernetes client directly, as kubectl-dlm or the e2e helper would.
"""
from __future__ import annotations

import copy
import uuid

from . import kube as K

MEMORY = "128Mi"


def vm_manifest(name: str, run_strategy: str = "Always", disk_size: str = "1Gi", access_mode: str = "ReadWriteOnce",
                firmware_uuid: str | None = None, annotations: dict | None = None) -> dict:
    """A small VM with one DataVolume disk on the pod network (masquerade)."""
    dv = f"{name}-disk"
    domain = {"devices": {"disks": [{"name": "root", "disk": {"bus": "virtio"}}],
                          "interfaces": [{"name": "default", "masquerade": {}}]},
              "resources": {"requests": {"memory": MEMORY}}}
    if firmware_uuid:
        domain["firmware"] = {"uuid": firmware_uuid}
    return {
        "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
        "metadata": {"name": name, "annotations": dict(annotations or {})},
        "spec": {
            "runStrategy": run_strategy,
            "dataVolumeTemplates": [{"metadata": {"name": dv},
                                     "spec": {"source": {"blank": {}},
                                              "storage": {"accessModes": [access_mode],
                                                          "resources": {"requests": {"storage": disk_size}}}}}],
            "template": {"metadata": {"labels": {"kubevirt.io/domain": name}},
                         "spec": {"domain": domain, "networks": [{"name": "default", "pod": {}}],
                                  "volumes": [{"name": "root", "dataVolume": {"name": dv}}]}},
        },
    }


def receiver_manifest(source_vm: dict, restore: str | None = "Always") -> dict:
    """The target VM an orchestrator renders: WaitAsReceiver, the source's firmware UUID, the original
    run strategy in kubevirt.io/restore-run-strategy."""
    vm = copy.deepcopy(source_vm)
    for k in ("uid", "resourceVersion", "generation", "creationTimestamp", "managedFields", "finalizers",
              "namespace"):
        vm["metadata"].pop(k, None)
    vm.pop("status", None)
    vm["spec"]["runStrategy"] = "WaitAsReceiver"
    vm["spec"].pop("running", None)
    if restore:
        vm["metadata"].setdefault("annotations", {})["kubevirt.io/restore-run-strategy"] = restore
    return vm


def vmim(name: str, vmi_name: str, migration_id: str, connect_url: str | None = None) -> dict:
    spec = {"vmiName": vmi_name}
    if connect_url is None:
        spec["receive"] = {"migrationID": migration_id}
    else:
        spec["sendTo"] = {"migrationID": migration_id, "connectURL": connect_url}
    return {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstanceMigration",
            "metadata": {"name": name}, "spec": spec}


def new_id() -> str:
    return uuid.uuid4().hex[:8]


def create(sim, cluster: str, kind: str, namespace: str, obj: dict) -> dict:
    obj = copy.deepcopy(obj)
    obj["metadata"]["namespace"] = namespace
    return sim.clusters[cluster].kube.create({"vm": K.VM, "vmim": K.VMIM, "vmi": K.VMI, "dv": K.DV,
                                              "configmap": K.CONFIGMAP}[kind], obj, "test-orchestrator")


def delete(sim, cluster: str, kind: str, namespace: str, name: str) -> None:
    sim.clusters[cluster].kube.delete({"vm": K.VM, "vmim": K.VMIM, "vmi": K.VMI}[kind], namespace, name)


def trust_each_other(sim, a: str = "source", b: str = "target", timeout: float = 10) -> None:
    """Post each cluster's CA into the other's kubevirt-external-ca and wait for the merge (§5)."""
    for mine, peer in ((a, b), (b, a)):
        pem = sim.clusters[peer].own_ca.pem
        c = sim.clusters[mine]
        c.kube.patch(K.CONFIGMAP, "kubevirt", "kubevirt-external-ca", {"data": {"ca-bundle": pem}}, "test-orchestrator")
    for mine, peer in ((a, b), (b, a)):
        want = sim.clusters[peer].own_ca.sha256
        sim._wait(lambda: want in sim.clusters[mine].trusted_fingerprints(), timeout)


def phases(obj: dict | None) -> list[str]:
    return [p["phase"] for p in ((obj or {}).get("status") or {}).get("phaseTransitionTimestamps") or []]


def phase(obj: dict | None) -> str | None:
    return ((obj or {}).get("status") or {}).get("phase")


def condition(obj: dict | None, ctype: str) -> dict | None:
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == ctype:
            return c
    return None


class Migration:
    """One DLM of VM `name` from (src, ns) to (tgt, ns): the objects and the steps."""

    def __init__(self, sim, namespace: str, name: str = "vm1", src: str = "source", tgt: str = "target",
                 tgt_namespace: str | None = None, restore: str | None = "Always", run_strategy: str = "Always"):
        self.sim, self.ns, self.name, self.src, self.tgt = sim, namespace, name, src, tgt
        self.tgt_ns = tgt_namespace or namespace
        self.id = new_id()
        self.restore, self.run_strategy = restore, run_strategy
        self.src_vmim, self.tgt_vmim = f"{name}-out-{self.id}", f"{name}-in-{self.id}"
        self.connect_url = sim.clusters[tgt].own_sync_address

    def start_source(self) -> dict:
        return self.sim.run_vm(self.src, self.ns, vm_manifest(self.name, self.run_strategy))

    def create_receiver(self) -> dict:
        src_vm = self.sim.get(self.src, "vm", self.ns, self.name)
        create(self.sim, self.tgt, "vm", self.tgt_ns, receiver_manifest(src_vm, self.restore))
        return self.sim.wait_for(self.tgt, "vmi", self.tgt_ns, self.name, lambda o: phase(o) == "WaitingForSync",
                                 what="receiver VMI WaitingForSync")

    def create_target_vmim(self) -> dict:
        return create(self.sim, self.tgt, "vmim", self.tgt_ns, vmim(self.tgt_vmim, self.name, self.id))

    def create_source_vmim(self, connect_url: str | None = None) -> dict:
        return create(self.sim, self.src, "vmim", self.ns,
                      vmim(self.src_vmim, self.name, self.id, connect_url or self.connect_url))

    def prepare(self) -> None:
        self.start_source()
        self.create_receiver()

    def wait_vmim(self, side: str, predicate, timeout: float = 20, what: str = "") -> dict | None:
        cluster, ns, name = ((self.src, self.ns, self.src_vmim) if side == "source" else
                             (self.tgt, self.tgt_ns, self.tgt_vmim))
        return self.sim.wait_for(cluster, "vmim", ns, name, predicate, timeout, what or f"{side} VMIM")

    def wait_phase(self, side: str, want: str, timeout: float = 20) -> dict:
        return self.wait_vmim(side, lambda o: phase(o) == want, timeout, f"{side} VMIM {want}")


class Recorder:
    """Watches VMs, VMIs and VMIMs on every cluster with its own client, as `kubectl get -w` would,
    and keeps every version seen: sequences stay checkable after an object is deleted."""

    def __init__(self, sim, kinds=("vm", "vmi", "vmim")):
        import threading

        from .cluster import KINDS, fresh_api_client
        self.events: dict[tuple, list] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._kubes = []
        self._threads = []
        for name, c in sim.clusters.items():
            kube = K.Kube(fresh_api_client(c.handle.api_client()))
            self._kubes.append(kube)
            for kind in kinds:
                _, rv = kube.list(KINDS[kind])
                t = threading.Thread(target=self._run, args=(kube, name, kind, KINDS[kind], rv), daemon=True)
                t.start()
                self._threads.append(t)

    def _run(self, kube, cluster, kind, res, rv):
        while not self._stop.is_set():
            try:
                for ev in kube.watch(res, rv):
                    obj = ev["object"]
                    rv = obj["metadata"]["resourceVersion"]
                    if ev["type"] in ("BOOKMARK", "ERROR"):
                        continue
                    key = (cluster, kind, obj["metadata"]["namespace"], obj["metadata"]["name"])
                    with self._lock:
                        self.events.setdefault(key, []).append((ev["type"], obj))
            except K.ApiError:
                self._stop.wait(0.1)

    def history(self, cluster, kind, namespace, name) -> list[tuple[str, dict]]:
        with self._lock:
            return list(self.events.get((cluster, kind, namespace, name), []))

    def sequence(self, cluster, kind, namespace, name, field=lambda o: phase(o)) -> list:
        """Distinct consecutive values of field(obj) over every version seen (None skipped)."""
        out = []
        for _, obj in self.history(cluster, kind, namespace, name):
            v = field(obj)
            if v is not None and (not out or out[-1] != v):
                out.append(v)
        return out

    def last(self, cluster, kind, namespace, name) -> dict | None:
        h = self.history(cluster, kind, namespace, name)
        return h[-1][1] if h else None

    def deleted(self, cluster, kind, namespace, name) -> bool:
        h = self.history(cluster, kind, namespace, name)
        return bool(h) and h[-1][0] == "DELETED"

    def stop(self):
        self._stop.set()
        for kube in self._kubes:
            kube.abort_watches()
        for t in self._threads:
            t.join(5)
        for kube in self._kubes:
            kube.api.close()
