"""Fault knobs: things that go wrong in a real installation, injected the way they would happen.

    sim.faults.transfer_seconds = 5          # a slow transfer (default 1 s)
    sim.faults.transfer_bytes = 8 * 2**30    # how much it moves (default: guest memory + disks)
    sim.faults.fail_target_at = 0.5          # the target pod dies half-way through the next transfer (§2.1)
    sim.faults.fail_source_at = 0.5          # the source pod dies half-way (§2.2)
    sim.faults.target_pod_never_ready = True # the next target launcher pod fails to start (quota, image
                                             # pull, scheduling): the target fails before the hand-off
    sim.faults.kill_target_pod("target", ns, vmi) / kill_source_pod(...)   # right now
    sim.faults.block_sync("target")          # its sync controller is unreachable: refused (or mode="timeout")
    sim.faults.disable_feature_gate("target")   # via KubeVirt spec...disabledFeatureGates (§2.8)
    sim.faults.expire_ca_overlap("source")   # own CA older than its overlap: merged CAs pruned (§5)
    sim.faults.stop_handler_metrics("source")   # virt-handler's metrics port stops answering (handler_pods.py)

An API server restart is the harness's: clusters.source.restart_apiserver(); the simulator's watches
retry, resume and relist on 410 by themselves.
"""
from __future__ import annotations

import copy

from . import kube as K
from .constants import FEATURE_GATE

BROKEN_STREAM = "Unable to read from socket: Connection reset by peer"


class Faults:
    def __init__(self, sim):
        self.sim = sim
        self.transfer_seconds: float = 1.0
        self.transfer_bytes: int | None = None
        # bytes/s the guest dirties during the next transfers; at or above the transfer rate pre-copy cannot
        # converge: the remaining bytes stop falling (at STALL_AT) until the transfer's time is up
        self.dirty_rate: int = 0
        self.fail_target_at: float | None = None
        self.fail_source_at: float | None = None
        self.target_pod_never_ready: bool = False
        self.dial_timeout: float = 0.5  # a blocked ("timeout") peer answers after this, not gRPC's 30 s
        self.sync_blocked: dict[str, str] = {}
        self.ca_overlap_elapsed: dict[str, bool] = {}
        self._saved_dev_config: dict[str, dict] = {}
        self.disk_faults: dict[tuple[str, str], str] = {}  # (cluster, namespace) -> "hold" | "fail" (cdi.py)
        self._saved_sync_address: dict[str, str] = {}

    # ---- virt-handler's metrics endpoint ----

    def stop_handler_metrics(self, cluster: str) -> None:
        """virt-handler's pods stay Running but nothing answers on their "metrics" port any more
        (as while the container restarts after its liveness probe on that port failed,
        pkg/virt-operator/resource/generate/components/daemonsets.go:272-286 @v1.9.0)."""
        self.sim.handler_pods.stop_serving(cluster)

    # ---- sync controller leader ----

    def move_sync_leader(self, cluster: str, address: str) -> None:
        """The sync controller's leader moved (a restart, a reschedule): virt-operator publishes the new
        pod's address (apply/core.go:811-872 @v1.9.0) and the migration controller copies it into
        every VMIM's status.synchronizationAddresses; the old address no longer answers."""
        c = self.sim.clusters[cluster]
        self._saved_sync_address.setdefault(cluster, c.own_sync_address)
        c.own_sync_address = address
        self._republish(cluster)

    def _republish(self, cluster: str) -> None:
        c = self.sim.clusters[cluster]
        kv = c.kubevirt_cr()
        if kv is not None:
            c.controllers["operator"].enqueue(("kubevirt", kv["metadata"]["namespace"], kv["metadata"]["name"]))

    # ---- CDI ----

    def hold_disks(self, cluster: str, namespace: str) -> None:
        """New DataVolumes in the namespace stay ImportInProgress."""
        self.disk_faults[(cluster, namespace)] = "hold"

    def fail_disks(self, cluster: str, namespace: str) -> None:
        """New DataVolumes in the namespace end Failed, with the Running condition CDI gives."""
        self.disk_faults[(cluster, namespace)] = "fail"

    # ---- transfer ----

    def arm_transfer(self, t) -> None:
        if self.fail_target_at is not None:
            at, self.fail_target_at = self.fail_target_at, None  # one shot
            self.sim.scheduler.call_later(t.seconds * at, self.kill_target_pod, t.tgt.cluster, t.tgt.namespace,
                                          t.tgt.name)
        if self.fail_source_at is not None:
            at, self.fail_source_at = self.fail_source_at, None
            self.sim.scheduler.call_later(t.seconds * at, self.kill_source_pod, t.src.cluster, t.src.namespace,
                                          t.src.name)

    def pod_comes_up(self, pod) -> bool:
        """False (once) for a migration target pod while target_pod_never_ready is armed."""
        if pod.migration_uid and self.target_pod_never_ready:
            self.target_pod_never_ready = False
            return False
        return True

    def kill_target_pod(self, cluster: str, namespace: str, vmi_name: str) -> None:
        c = self.sim.clusters[cluster]
        vmi = c.get("vmi", namespace, vmi_name)
        if vmi is None:
            return
        for pod in c.pods.for_vmi(namespace, vmi["metadata"]["uid"]):
            if pod.migration_uid and not pod.down:
                c.pods.update(pod, phase="Failed", ready=False)
        for t in self.sim.fabric.running():
            if t.tgt.uid == vmi["metadata"]["uid"]:
                self.sim.fabric.fail(t, BROKEN_STREAM)

    def kill_source_pod(self, cluster: str, namespace: str, vmi_name: str) -> None:
        c = self.sim.clusters[cluster]
        vmi = c.get("vmi", namespace, vmi_name)
        if vmi is None:
            return
        pod = c.pods.launcher(namespace, vmi["metadata"]["uid"], node=(vmi.get("status") or {}).get("nodeName"))
        if pod is not None and not pod.down:
            c.pods.update(pod, phase="Failed", ready=False)
        for t in self.sim.fabric.running():
            if t.src.uid == vmi["metadata"]["uid"]:
                self.sim.fabric.fail(t, BROKEN_STREAM)

    # ---- synchronization ----

    def block_sync(self, cluster: str, mode: str = "refused") -> None:
        assert mode in ("refused", "timeout"), mode
        self.sync_blocked[cluster] = mode
        self._poke_sync()

    def unblock_sync(self, cluster: str) -> None:
        self.sync_blocked.pop(cluster, None)
        self._poke_sync()

    def _poke_sync(self) -> None:
        for c in self.sim.clusters.values():
            for m in c.stores["vmim"].list():
                c.controllers["sc"].enqueue(("vmim",) + K.meta_key(m))

    # ---- installation ----

    def disable_feature_gate(self, cluster: str) -> None:
        """Off the way an admin turns it off: out of featureGates (an explicit enable wins) and into
        disabledFeatureGates (§2.8). stop() puts the developerConfiguration back as it was."""
        def edit(dev: dict) -> None:
            if cluster not in self._saved_dev_config:
                self._saved_dev_config[cluster] = copy.deepcopy(dev)
            dev["featureGates"] = [g for g in dev.get("featureGates") or [] if g != FEATURE_GATE]
            dev["disabledFeatureGates"] = [g for g in dev.get("disabledFeatureGates") or []
                                           if g != FEATURE_GATE] + [FEATURE_GATE]
        self._edit_dev_config(cluster, edit)

    def enable_feature_gate(self, cluster: str) -> None:
        saved = self._saved_dev_config.pop(cluster, None)

        def edit(dev: dict) -> None:
            if saved is not None:
                dev.clear()
                dev.update(saved)
            else:
                dev["disabledFeatureGates"] = [g for g in dev.get("disabledFeatureGates") or [] if g != FEATURE_GATE]
        self._edit_dev_config(cluster, edit)

    def _edit_dev_config(self, cluster: str, edit) -> None:
        c = self.sim.clusters[cluster]
        for _ in range(5):
            kv = copy.deepcopy(c.kube.list(K.KUBEVIRT)[0][0])
            dev = kv.setdefault("spec", {}).setdefault("configuration", {}).setdefault("developerConfiguration", {})
            edit(dev)
            for k in ("featureGates", "disabledFeatureGates"):
                if k in dev and not dev[k]:
                    del dev[k]
            try:
                c.replace("kubevirt", kv, "kubevirt-sim-test")
                return
            except K.ApiError as e:
                if not e.conflict:
                    raise

    def expire_ca_overlap(self, cluster: str) -> None:
        self.ca_overlap_elapsed[cluster] = True
        self.sim.clusters[cluster].controllers["operator"].enqueue(("ca",))

    def restore(self) -> None:
        """Undo what outlives the simulator (the KubeVirt CR is the harness's, shared by all tests)."""
        for cluster, address in self._saved_sync_address.items():
            self.sim.clusters[cluster].own_sync_address = address
            self._republish(cluster)
        for cluster in list(self._saved_dev_config):
            try:
                self.enable_feature_gate(cluster)
            except K.ApiError:
                pass
