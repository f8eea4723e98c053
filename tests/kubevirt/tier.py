"""The KubeVirt tier behind one object, for tests that drive `kubectl dlm` end to end (tests/e2e).

    def test_x(kubevirt, dlm):                        # fixture: tests/kubevirt/fixtures.py
        ns = kubevirt.namespaces("source", "target")  # the same fresh name on both clusters
        kubevirt.run_vm("source", ns, vm_manifest("vm1"))       # Running and LiveMigratable
        kubevirt.faults.transfer_seconds = 5                   # put back after the test
        kubevirt.get("target", "vmi", ns, "vm1")               # None when absent
        kubevirt.list("source", "vmim", ns)

Everything here is read from and written to the API servers: what runs is KubeVirt's own virt-api,
virt-controller and synchronization-controller (tests/harness/kubevirt.py) with the played node side
(nodes.py), CDI (cdi.py) and virt-handler (handler.py). Nothing here answers for KubeVirt.

`Faults` gathers the knobs of the played parts, with the meanings the simulator (tests/sim, gone
since issue 9) gave them; a knob lives in the module that plays the part, this class only names it
and puts it back.
"""
from __future__ import annotations

import copy
import json
import secrets
import time
from typing import Callable

from tests.harness.apiserver import ApiError
from tests.kubevirt import handler

# kind -> (API path prefix, plural); namespaced unless the prefix is cluster-wide
KINDS = {
    "vm": ("/apis/kubevirt.io/v1", "virtualmachines"),
    "vmi": ("/apis/kubevirt.io/v1", "virtualmachineinstances"),
    "vmim": ("/apis/kubevirt.io/v1", "virtualmachineinstancemigrations"),
    "kubevirt": ("/apis/kubevirt.io/v1", "kubevirts"),
    "dv": ("/apis/cdi.kubevirt.io/v1beta1", "datavolumes"),
    "pvc": ("/api/v1", "persistentvolumeclaims"),
    "configmap": ("/api/v1", "configmaps"),
    "secret": ("/api/v1", "secrets"),
    "pod": ("/api/v1", "pods"),
}
CLUSTER_KINDS = {
    "migrationpolicy": ("/apis/migrations.kubevirt.io/v1alpha1", "migrationpolicies"),
    "node": ("/api/v1", "nodes"),
    "cdiconfig": ("/apis/cdi.kubevirt.io/v1beta1", "cdiconfigs"),
}
MEMORY = "128Mi"


def path(kind: str, namespace: str | None = None, name: str = "") -> str:
    if kind in CLUSTER_KINDS:
        prefix, plural = CLUSTER_KINDS[kind]
        base = f"{prefix}/{plural}"
    else:
        prefix, plural = KINDS[kind]
        base = f"{prefix}/namespaces/{namespace}/{plural}"
    return f"{base}/{name}" if name else base


def vm_manifest(name: str, run_strategy: str = "Always", *, data_volume: bool = False, disk_size: str = "1Gi",
                access_mode: str = "ReadWriteOnce") -> dict:
    """A small VM on the pod network (masquerade). Its root disk is a containerDisk, or with
    data_volume=True a blank DataVolume from the VM's dataVolumeTemplates (CDI: cdi.py)."""
    if data_volume:
        root = {"name": "root", "dataVolume": {"name": f"{name}-disk"}}
    else:
        root = {"name": "root", "containerDisk": {"image": "example.invalid/cirros:1"}}
    vm = {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "metadata": {"name": name},
          "spec": {"runStrategy": run_strategy, "template": {
              "metadata": {"labels": {"kubevirt.io/vm": name}},
              "spec": {"domain": {"devices": {"disks": [{"name": "root", "disk": {"bus": "virtio"}}],
                                              "interfaces": [{"name": "default", "masquerade": {}}]},
                                  "resources": {"requests": {"memory": MEMORY}}},
                       "networks": [{"name": "default", "pod": {}}],
                       "volumes": [root]}}}}
    if data_volume:
        vm["spec"]["dataVolumeTemplates"] = [{"metadata": {"name": f"{name}-disk"}, "spec": {
            "source": {"blank": {}},
            "storage": {"accessModes": [access_mode], "resources": {"requests": {"storage": disk_size}}}}}]
    return vm


def phase(obj: dict | None) -> str | None:
    return ((obj or {}).get("status") or {}).get("phase")


def condition(obj: dict | None, ctype: str) -> dict | None:
    return next((c for c in ((obj or {}).get("status") or {}).get("conditions") or [] if c.get("type") == ctype),
                None)


def live_migratable(vmi: dict | None) -> bool:
    """Running, and migratable as virt-api admits a decentralized migration: LiveMigratable True,
    or False only because of its disks (DisksNotLiveMigratable: a claim that is not ReadWriteMany,
    which DLM copies; migration-create-admitter.go:59-72)."""
    cond = condition(vmi, "LiveMigratable") or {}
    return phase(vmi) == "Running" and (cond.get("status") == "True" or cond.get("reason") == "DisksNotLiveMigratable")


class _NetworkKnob:
    """A knob of the played libvirt network (handler.NETWORK, one per session), named on Faults so a
    test reads and sets it there; Faults.restore puts it back."""

    def __init__(self, doc: str):
        self.__doc__ = doc

    def __set_name__(self, owner, name: str) -> None:
        self.name = name

    def __get__(self, faults, owner=None):
        return self if faults is None else getattr(handler.NETWORK, self.name)

    def __set__(self, faults, value) -> None:
        setattr(handler.NETWORK, self.name, value)


class Faults:
    """Knobs of the played parts. Each is put back after the test (Tier.close)."""

    def __init__(self, tier: "Tier"):
        self._tier = tier
        self._saved_transfer_seconds = handler.NETWORK.transfer_seconds
        self._never_ready = False
        self._metrics_stopped: set[str] = set()

    # ---- played libvirt (handler.Network) ----

    transfer_seconds = _NetworkKnob("How long a transfer takes (default 1 s).")
    transfer_bytes = _NetworkKnob("DataTotal of the next transfers (default: guest memory + the copied disks' capacity).")
    dirty_rate = _NetworkKnob("Bytes/s the guest dirties during the next transfers; at or above the transfer rate "
                              "pre-copy makes no headway: the remaining bytes stand still until the transfer's time is up.")
    fail_target_at = _NetworkKnob("The target's launcher pod dies at this share of the next transfer (one shot).")
    fail_source_at = _NetworkKnob("The source's launcher pod dies at this share of the next transfer (one shot). Nothing "
                                  "on the source side reports an end; the target's QEMU loses its stream and exits, and "
                                  "KubeVirt v1.9.0 fails the target migration (tests/kubevirt/test_handler_faults.py).")

    def fail_next_transfer(self, reason: str) -> None:
        """The next transfer breaks halfway with this libvirt error (handler.Network)."""
        handler.NETWORK.fail_next_transfer(reason)

    def kill_target_pod(self, cluster: str, namespace: str, vmi_name: str) -> None:
        """The receiving VMI's launcher pod dies now (its incoming domain with it)."""
        handler.kill_target_pod(self._tier.clusters.kubevirt[cluster], namespace, vmi_name)

    def kill_source_pod(self, cluster: str, namespace: str, vmi_name: str) -> None:
        """The sending VMI's launcher pod dies now (its domain with it)."""
        handler.kill_source_pod(self._tier.clusters.kubevirt[cluster], namespace, vmi_name)

    @property
    def target_pod_never_ready(self) -> bool:
        return bool(self._never_ready)

    @target_pod_never_ready.setter
    def target_pod_never_ready(self, on: bool) -> None:
        """True: the next migration target launcher pod (on either cluster) is reported Failed
        instead of Running (quota, image, a crash at start); one shot."""
        if on and not self._never_ready:
            self._never_ready = True
            handler.target_pod_never_ready([self._tier.clusters.kubevirt[c] for c in self._tier.node_sides])
        elif not on:
            self._never_ready = False
            for side in self._tier.node_sides.values():
                side.forget_fail_next()

    # ---- virt-handler's Pods (handler_pods.py) ----

    def stop_handler_metrics(self, cluster: str) -> None:
        """virt-handler's pods stay Running but nothing answers on their "metrics" port any more."""
        self._metrics_stopped.add(cluster)
        self._tier.handlers[cluster].stop_metrics()

    # ---- played kubelet (nodes.NodeSide) ----

    def failing_pods(self, cluster: str, predicate: Callable[[dict], bool], message: str = "virt-launcher crashed"):
        """Context manager: the cluster's pods matching predicate fail as a crashed virt-launcher."""
        return self._tier.node_sides[cluster].failing(predicate, message)

    def replace_nodes(self, cluster: str, wanted: list[dict]):
        """Context manager: the cluster has these Nodes (nodes.node(...)) instead of the session's."""
        return self._tier.node_sides[cluster].replace_nodes(wanted)

    # ---- played CDI (cdi.CDI) ----

    def hold_disks(self, cluster: str, namespace: str) -> None:
        """The importers of new DataVolumes in the namespace keep running: ImportInProgress."""
        self._tier.cdis[cluster].hold_imports(namespace)

    def fail_disks(self, cluster: str, namespace: str, message: str = "Unable to process data: blank image: "
                   "no space left") -> None:
        """The importers of new DataVolumes in the namespace keep failing with this message (CDI restarts
        them: the DataVolume stays ImportInProgress with Running False, reason Error)."""
        self._tier.cdis[cluster].fail_imports(namespace, message)

    # ---- the real synchronization controllers and the played virt-operator (tests/harness/kubevirt.py) ----

    def block_sync(self, cluster: str, mode: str = "refused") -> None:
        """Its synchronization controller stops answering at its published address: "refused" (the
        process is gone) or "timeout" (it hangs: TCP accepted, TLS never answered)."""
        self._tier.clusters.kubevirt[cluster].block_sync(mode)

    def unblock_sync(self, cluster: str) -> None:
        """Its synchronization controller's container restarted: serving again at the same address."""
        self._tier.clusters.kubevirt[cluster].unblock_sync()

    def move_sync_leader(self, cluster: str) -> str:
        """The leader moved to a new Pod at a new address (returned), which virt-operator publishes;
        the old address refuses. Takes ~15-20 s (the old holder's Lease must expire). Unlike the
        simulator's knob the address is not chosen by the test: on one machine it differs by port."""
        return self._tier.clusters.kubevirt[cluster].move_sync_leader()

    def disable_feature_gate(self, cluster: str) -> None:
        """DLM off as an admin turns it off (featureGates -> disabledFeatureGates); the real virt-api and
        virt-controller react, virt-operator removes the synchronization controller and its address."""
        self._tier.clusters.kubevirt[cluster].disable_feature_gate()

    def restore(self) -> None:
        handler.NETWORK.reset()
        handler.NETWORK.transfer_seconds = self._saved_transfer_seconds
        self.target_pod_never_ready = False
        for cluster in self._metrics_stopped:
            self._tier.handlers[cluster].serve_metrics()
        self._metrics_stopped.clear()
        for cdi in self._tier.cdis.values():
            cdi.import_faults.clear()
        for install in self._tier.clusters.kubevirt.values():
            install.restore()


class Tier:
    """The KubeVirt tier for one test (fixture `kubevirt`). `.clusters`: the KubeVirtClusters
    (tests/harness/kubevirt.py: .kubeconfig, .by_name, .source, .target, .kubevirt[name])."""

    def __init__(self, clusters, node_sides: dict, cdis: dict, handlers: dict, stem: str = "t"):
        self.clusters = clusters
        self.node_sides, self.cdis, self.handlers = node_sides, cdis, handlers
        self.faults = Faults(self)
        self._stem = stem
        self._namespaces: list[tuple[str, str]] = []

    # ---- namespaces ----

    def namespaces(self, *on: str) -> str:
        """A fresh namespace (the same name on each cluster named; default source), deleted after the test."""
        name = f"t-{self._stem}-{secrets.token_hex(3)}"
        for cluster in on or ("source",):
            self.clusters.by_name(cluster).create_namespace(name)
            self._namespaces.append((cluster, name))
        return name

    def close(self) -> None:
        """Put every knob back and delete the test's namespaces."""
        self.faults.restore()
        for cluster, name in reversed(self._namespaces):
            self.clusters.by_name(cluster).delete_namespace(name)

    # ---- reads ----

    def request(self, cluster: str, method: str, url: str, body=None, content_type: str = "application/json"):
        return self.clusters.by_name(cluster).request(method, url, body, content_type=content_type)

    def get(self, cluster: str, kind: str, namespace: str | None, name: str) -> dict | None:
        """A fresh read from the API server (kind: vm vmi vmim kubevirt dv pvc configmap secret pod,
        migrationpolicy node); None when absent."""
        try:
            return self.request(cluster, "GET", path(kind, namespace, name))
        except ApiError as e:
            if e.status == 404:
                return None
            raise

    def list(self, cluster: str, kind: str, namespace: str | None = None) -> list[dict]:
        return self.request(cluster, "GET", path(kind, namespace))["items"]

    def wait_for(self, cluster: str, kind: str, namespace: str | None, name: str,
                 predicate: Callable[[dict | None], bool] | None = None, timeout: float = 30,
                 what: str = "") -> dict | None:
        """Poll the API server until predicate(obj) (default: it exists); return the object."""
        pred = predicate or (lambda o: o is not None)
        deadline = time.monotonic() + timeout
        while True:
            obj = self.get(cluster, kind, namespace, name)
            if pred(obj):
                return obj
            if time.monotonic() > deadline:
                state = (obj or {}).get("status") if obj else "<absent>"
                raise TimeoutError(f"{what or 'condition'} on {cluster} {kind} {namespace}/{name} not met in "
                                   f"{timeout}s; last status: {state}")
            time.sleep(0.1)

    def wait_gone(self, cluster: str, kind: str, namespace: str | None, name: str, timeout: float = 30) -> None:
        self.wait_for(cluster, kind, namespace, name, lambda o: o is None, timeout, "deletion")

    # ---- writes ----

    def create(self, cluster: str, kind: str, namespace: str | None, obj: dict) -> dict:
        obj = copy.deepcopy(obj)
        if kind not in CLUSTER_KINDS:
            obj.setdefault("metadata", {})["namespace"] = namespace
        return self.request(cluster, "POST", path(kind, namespace), obj)

    def delete(self, cluster: str, kind: str, namespace: str | None, name: str) -> None:
        try:
            self.request(cluster, "DELETE", path(kind, namespace, name))
        except ApiError as e:
            if e.status != 404:
                raise

    def run_vm(self, cluster: str, namespace: str, vm: dict, *, data_volumes=(), pvcs=(), secrets=(),
               timeout: float = 60) -> dict:
        """Create the Secrets, PVCs and DataVolumes the VM needs, then the VM; the real virt-controller
        makes its VMI and launcher pod, the played scheduler, kubelet, CDI and virt-handler take it to
        Running with LiveMigratable True. Returns that VMI."""
        for kind, objs in (("secret", secrets), ("pvc", pvcs), ("dv", data_volumes)):
            for obj in objs:
                self.create(cluster, kind, namespace, obj)
        vm = copy.deepcopy(vm)
        vm.setdefault("apiVersion", "kubevirt.io/v1")
        vm.setdefault("kind", "VirtualMachine")
        self.create(cluster, "vm", namespace, vm)
        return self.wait_for(cluster, "vmi", namespace, vm["metadata"]["name"], live_migratable, timeout,
                             "VMI Running and LiveMigratable")

    # ---- what KubeVirt leaves ----

    def assert_moved(self, src_cluster: str, src: str, dst_cluster: str, dst: str, name: str = "vm1",
                     run_strategy: str = "Always") -> dict:
        """What KubeVirt leaves after a successful DLM: the receiving VM runs with its run strategy
        restored (pkg/virt-controller/watch/vm/vm.go restore-run-strategy), its VMI Running on its
        node with the migration completed; the source VMIM Succeeded (or deleted with its VMI,
        watch/migration/migration.go) and the target VMIM Succeeded. An Always source is halted and
        its VMI deleted (vm.go: an Always source whose decentralized migration completed is halted).
        Returns the receiving VMI."""
        vm = self.wait_for(dst_cluster, "vm", dst, name, lambda v: v and v["spec"].get("runStrategy") == run_strategy,
                           30, "the receiving VM's runStrategy restored")
        assert vm["spec"]["runStrategy"] == run_strategy
        # virt-controller may restore the run strategy before virt-handler reports the received
        # domain Running (seen once in CI at high load: VMI still Scheduled, migrationState completed)
        vmi = self.wait_for(dst_cluster, "vmi", dst, name, lambda v: phase(v) == "Running", 30, "the receiving VMI Running")
        ms = vmi["status"]["migrationState"]
        assert ms["completed"] is True and not ms.get("failed"), ms
        assert ms["targetNode"] == vmi["status"]["nodeName"] != ms["sourceNode"]
        assert ms["targetNodeAddress"] and ms["startTimestamp"] and ms["endTimestamp"]
        assert ms["targetNodeDomainReadyTimestamp"]
        assert "kubevirt.io/create-migration-target" not in (vmi["metadata"].get("annotations") or {})
        if run_strategy == "Always":
            self.wait_for(src_cluster, "vm", src, name, lambda v: v["spec"].get("runStrategy") == "Halted", 30,
                          "the source VM halted")
            self.wait_gone(src_cluster, "vmi", src, name)
        for vmim in self.list(src_cluster, "vmim", src):
            if vmim["spec"]["vmiName"] == name and vmim["spec"].get("sendTo"):
                assert phase(vmim) == "Succeeded", vmim["status"]
        receiving = [m for m in self.list(dst_cluster, "vmim", dst)
                     if m["spec"]["vmiName"] == name and m["spec"].get("receive")]
        assert [phase(m) for m in receiving] == ["Succeeded"]
        return vmi

    def dump(self, *namespaces: str) -> str:
        """For an assertion message: the pods, VMIMs and VMIs of both clusters in these namespaces."""
        lines = []
        for c in self.clusters:
            for ns in namespaces:
                for p in self.list(c.name, "pod", ns):
                    lines.append(f"{c.name} pod {ns}/{p['metadata']['name']} node={p['spec'].get('nodeName')} "
                                 f"phase={phase(p)}")
                for m in self.list(c.name, "vmim", ns):
                    lines.append(f"{c.name} vmim {ns}/{m['metadata']['name']} {phase(m)} "
                                 f"deleting={bool(m['metadata'].get('deletionTimestamp'))} "
                                 f"conditions={(m.get('status') or {}).get('conditions')}")
                for v in self.list(c.name, "vmi", ns):
                    lines.append(f"{c.name} vmi {ns}/{v['metadata']['name']} {phase(v)} "
                                 f"{json.dumps((v.get('status') or {}).get('migrationState'))}")
        return "\n" + "\n".join(lines)
