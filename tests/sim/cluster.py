"""One simulated KubeVirt installation: the caches of one API server and the controllers running on it."""
from __future__ import annotations

import copy
import logging
import random
import threading

from kubernetes import client as k8s_client

from . import ca
from . import kube as K
from .constants import (C_LIVE_MIGRATABLE, CA_BUNDLE_KEY, CM_CA, FEATURE_GATE, FINAL_PHASES,
                        INSTALL_NAMESPACE, LABEL_VMI_NAME)
from .objects import controlled_by, dig, now, short_id
from .pods import Pod, PodTable

log = logging.getLogger("kubevirt_sim")

KINDS = {"vm": K.VM, "vmi": K.VMI, "vmim": K.VMIM, "kubevirt": K.KUBEVIRT, "dv": K.DV, "pvc": K.PVC,
         "configmap": K.CONFIGMAP}


def fresh_api_client(api_client):
    """A private ApiClient with a pool big enough for ~7 long-lived watches plus requests."""
    cfg = copy.deepcopy(api_client.configuration)
    cfg.connection_pool_maxsize = 32
    return k8s_client.ApiClient(cfg)


class SimCluster:
    def __init__(self, sim, name: str, index: int, handle):
        self.sim, self.name, self.index, self.handle = sim, name, index, handle
        self.rng = random.Random(f"{name}-{index}")
        self.kube = K.Kube(fresh_api_client(handle.api_client()))
        self.stores = {k: K.Store(res) for k, res in KINDS.items()}
        self.pods = PodTable(self._pod_changed)
        self.nodes = [f"{name}-node{i:02d}" for i in (1, 2, 3)]
        self.rejected: set[str] = set()  # uids of objects a webhook would have denied (§3)
        self.vmi_history: dict[tuple[str, str], list[list]] = {}  # (ns,name) -> [[uid, created_rv, deleted_rv]]
        self.sim_generations: dict[str, set[int]] = {}  # VM uid -> generations produced by our own spec writes
        self._hist_lock = threading.Lock()
        self.watchers: list[K.Watcher] = []
        self.own_sync_address = ""
        self.own_ca: ca.Cert | None = None
        self.controllers = {}

    # ---- setup ----

    # What virt-handler's node-labeller puts on every node (all nodes of both clusters share one CPU),
    # the labels KubeVirt's migration controller selects the DLM target pod's node by
    # (pkg/virt-controller/watch/migration/migration.go:913-1004 @v1.9.0).
    NODE_LABELS = {"kubevirt.io/schedulable": "true",
                   "host-model-cpu.node.kubevirt.io/Skylake-Client-IBRS": "true",
                   "cpu-model-migration.node.kubevirt.io/Skylake-Client-IBRS": "true",
                   "cpu-vendor.node.kubevirt.io/Intel": "true"}

    def ensure_nodes(self) -> None:
        """The simulated nodes as Node objects, Ready, where the API server serves Nodes (kept between tests)."""
        for name in self.nodes:
            node = {"apiVersion": "v1", "kind": "Node",
                    "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **self.NODE_LABELS}}}
            try:
                self.kube.create(K.NODE, node, "kubevirt-sim")
            except K.ApiError as e:
                if e.not_found:
                    return  # this API server serves no Nodes
                if not e.conflict:
                    raise
            t = now()
            self.kube.patch(K.NODE, None, name, {"status": {"conditions": [
                {"type": "Ready", "status": "True", "reason": "KubeletReady", "lastHeartbeatTime": t,
                 "lastTransitionTime": t}]}}, "kubevirt-sim", status=True)

    def bootstrap(self) -> None:
        """Read what the operator would know about itself: its sync address and its own CA."""
        kvs, _ = self.kube.list(K.KUBEVIRT)
        addrs = dig(kvs[0], "status", "synchronizationAddresses") if kvs else None
        if addrs:
            self.own_sync_address = addrs[0]
        else:  # an installation the harness did not annotate: a TEST-NET address like the harness uses
            port = dig(kvs[0], "spec", "synchronizationPort") if kvs else None
            self.own_sync_address = f"192.0.2.{10 * (self.index + 1)}:{port or 9185}"
        cm = self.kube.get(K.CONFIGMAP, INSTALL_NAMESPACE, CM_CA)
        try:
            certs = ca.parse_bundle(dig(cm, "data", CA_BUNDLE_KEY))
        except ca.PemError:
            certs = []
        explicit = getattr(self.handle, "kubevirt_ca_pem", None)  # harness may say which CA is "own"
        if explicit:
            try:
                certs = ca.parse_bundle(_read_pem(explicit)) + certs
            except (ca.PemError, OSError):
                pass
        self.own_ca = certs[0] if certs else None  # MergeCABundle keeps the own CA first (SEC:687-747)
        self.ensure_nodes()

    def start_watches(self) -> None:
        for kind, store in self.stores.items():
            w = K.Watcher(self.kube, store, self._handler(kind), self.sim.stop_event, f"{self.name}/{kind}")
            self.watchers.append(w)
            w.start()

    def wait_synced(self, timeout: float) -> bool:
        return all(w.synced.wait(timeout) for w in self.watchers)

    def _handler(self, kind: str):
        def handle(etype: str, obj: dict, initial: bool) -> None:
            try:
                self.route(kind, etype, obj, initial)
            except Exception:  # noqa: BLE001
                import traceback
                self.sim.record_error(f"{self.name} event {kind} {etype}: {traceback.format_exc()}")
        return handle

    # ---- event routing: which controllers care about which change ----

    def route(self, kind: str, etype: str, obj: dict, initial: bool) -> None:
        c = self.controllers
        ns, name = obj["metadata"].get("namespace", ""), obj["metadata"]["name"]
        if kind == "vmi":
            self._record_vmi_history(etype, obj, initial)
        if kind in ("vm", "vmi", "vmim"):
            if not c["webhooks"].on_event(kind, etype, obj, initial):
                return
        if kind == "vm":
            c["vmc"].enqueue((ns, name))
        elif kind == "vmi":
            c["lc"].enqueue((ns, name))
            c["handler"].enqueue((ns, name))
            owner = controlled_by(obj, "VirtualMachine")
            if owner:
                c["vmc"].enqueue((ns, owner))
            for m in self.vmims_for_vmi(ns, name):
                c["mc"].enqueue(K.meta_key(m))
                c["sc"].enqueue(("vmim",) + K.meta_key(m))
            c["sc"].enqueue(("vmi", ns, name))
        elif kind == "vmim":
            c["mc"].enqueue((ns, name))
            c["sc"].enqueue(("vmim", ns, name))
        elif kind == "kubevirt":
            c["operator"].enqueue(("kubevirt", ns, name))
            for m in self.stores["vmim"].list():
                c["mc"].enqueue(K.meta_key(m))
                c["sc"].enqueue(("vmim",) + K.meta_key(m))
        elif kind in ("dv", "pvc"):
            c["cdi"].enqueue((kind, ns, name))
            if kind == "pvc":
                c["cdi"].enqueue(("dv", ns, name))
            for vm in self.stores["vm"].list(ns):
                c["vmc"].enqueue((ns, vm["metadata"]["name"]))
            for vmi in self.stores["vmi"].list(ns):
                c["handler"].enqueue(K.meta_key(vmi))
        elif kind == "configmap" and ns == INSTALL_NAMESPACE:
            c["operator"].enqueue(("ca",))
            for m in self.stores["vmim"].list():  # trust may have changed: let sync retry now
                c["sc"].enqueue(("vmim",) + K.meta_key(m))

    def _pod_changed(self, pod: Pod) -> None:
        c = self.controllers
        c["lc"].enqueue((pod.namespace, pod.vmi))
        c["handler"].enqueue((pod.namespace, pod.vmi))
        for m in self.vmims_for_vmi(pod.namespace, pod.vmi):
            c["mc"].enqueue(K.meta_key(m))

    def _record_vmi_history(self, etype: str, obj: dict, initial: bool) -> None:
        key, uid, rv = K.meta_key(obj), obj["metadata"]["uid"], K.rv_int(obj)
        with self._hist_lock:
            hist = self.vmi_history.setdefault(key, [])
            entry = next((h for h in hist if h[0] == uid), None)
            if entry is None:
                # live ADDED carries the creation revision; an initial list only says "existed before"
                entry = [uid, 0 if initial else rv, None]
                hist.append(entry)
            if etype == "DELETED":
                entry[2] = rv

    def note_vmi_created(self, obj: dict) -> None:
        """Our own create: its response carries the exact creation revision."""
        with self._hist_lock:
            hist = self.vmi_history.setdefault(K.meta_key(obj), [])
            if not any(h[0] == obj["metadata"]["uid"] for h in hist):
                hist.append([obj["metadata"]["uid"], K.rv_int(obj), None])

    def vmi_existed_at(self, namespace: str, name: str, rv: int) -> bool | None:
        with self._hist_lock:
            hist = list(self.vmi_history.get((namespace, name), []))
        if any(h[1] < rv and (h[2] is None or h[2] > rv) for h in hist):
            return True
        if any(h[1] > rv for h in hist):
            return False
        return None  # not seen (yet)

    def start_pod(self, pod: Pod, seconds: float = 0.05) -> Pod:
        """Create a launcher pod; it is Running and Ready `seconds` later (unless it died first)."""
        self.pods.add(pod)
        self.sim.scheduler.call_later(seconds, self._pod_up, pod)
        return pod

    def _pod_up(self, pod: Pod) -> None:
        if pod.down:
            return
        if not self.sim.faults.pod_comes_up(pod):
            self.pods.update(pod, phase="Failed", ready=False)
            return
        self.pods.update(pod, phase="Running", ready=True)

    def rng_id(self) -> str:
        """The random suffix of a generated pod name."""
        return short_id(self.rng)

    # ---- lookups ----

    def get(self, kind: str, namespace: str, name: str) -> dict | None:
        return self.stores[kind].get(namespace, name)

    def admitted(self, obj: dict | None) -> bool:
        return obj is not None and obj["metadata"]["uid"] not in self.rejected

    def vmims_for_vmi(self, namespace: str, vmi_name: str) -> list[dict]:
        return self.stores["vmim"].list(namespace, lambda m: dig(m, "spec", "vmiName") == vmi_name or
                                        dig(m, "metadata", "labels", LABEL_VMI_NAME) == vmi_name)

    def kubevirt_cr(self) -> dict | None:
        kvs = self.stores["kubevirt"].list()
        return kvs[0] if len(kvs) == 1 else None  # more than one is an error; none: nothing to copy

    def gate_enabled(self) -> bool:
        """DecentralizedLiveMigration is Beta: on unless disabled; an explicit enable wins (§2.8)."""
        kv = self.kubevirt_cr()
        dev = dig(kv, "spec", "configuration", "developerConfiguration", default={})
        if FEATURE_GATE in (dev.get("featureGates") or []):
            return True
        return FEATURE_GATE not in (dev.get("disabledFeatureGates") or [])

    def published_sync_addresses(self) -> list[str]:
        return list(dig(self.kubevirt_cr(), "status", "synchronizationAddresses", default=[]))

    def trusted_fingerprints(self) -> set[str]:
        cm = self.get("configmap", INSTALL_NAMESPACE, CM_CA)
        return ca.fingerprints(dig(cm, "data", CA_BUNDLE_KEY))

    def node_address(self, node: str) -> str:
        """Node IPs in TEST-NET-2, unique across the simulated clusters (a flat network)."""
        return f"198.51.100.{16 * (self.index + 1) + self.nodes.index(node) + 1}"

    # ---- writes (keep our cache current with the response, like an informer would soon be) ----

    def create(self, kind: str, obj: dict, manager: str) -> dict:
        out = self.kube.create(KINDS[kind], obj, manager)
        self.stores[kind].observe(out)
        return out

    def replace(self, kind: str, obj: dict, manager: str) -> dict:
        out = self.kube.replace(KINDS[kind], obj, manager)
        self.stores[kind].observe(out)
        return out

    def replace_status(self, kind: str, obj: dict, manager: str) -> dict:
        out = self.kube.replace_status(KINDS[kind], obj, manager)
        self.stores[kind].observe(out)
        return out

    def write_vm_spec(self, vm: dict, manager: str) -> dict:
        """A spec write by a KubeVirt component: the VM webhook must not judge it as a user's update.
        The next generation is noted before the write, as the watch event may beat the response."""
        gens = self.sim_generations.setdefault(vm["metadata"]["uid"], set())
        gens.add(vm["metadata"].get("generation", 0) + 1)
        out = self.replace("vm", vm, manager)
        gens.add(out["metadata"].get("generation", 0))
        return out

    def delete(self, kind: str, namespace: str, name: str, uid: str | None = None) -> None:
        self.kube.delete(KINDS[kind], namespace, name, uid)

    def enqueue_vmims_of(self, namespace: str, vmi_name: str) -> None:
        for m in self.vmims_for_vmi(namespace, vmi_name):
            self.controllers["mc"].enqueue(K.meta_key(m))
            self.controllers["sc"].enqueue(("vmim",) + K.meta_key(m))


def is_final_vmim(vmim: dict | None) -> bool:
    return dig(vmim, "status", "phase") in FINAL_PHASES


def live_migratable_condition(vmi: dict) -> dict | None:
    for c in dig(vmi, "status", "conditions", default=[]):
        if c.get("type") == C_LIVE_MIGRATABLE:
            return c
    return None


def _read_pem(value: str) -> str:
    if "-----BEGIN" in value:
        return value
    with open(value) as f:
        return f.read()
