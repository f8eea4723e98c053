"""virt-handler's pods and their metrics endpoints, one per node, reachable through the pod proxy.

virt-operator runs virt-handler as a DaemonSet in its install namespace
(pkg/virt-operator/resource/generate/components/daemonsets.go:70-123 @v1.9.0): one pod per node,
labelled as its pod template (deployments.go:157-164: kubevirt.io=virt-handler,
prometheus.kubevirt.io=true, np.kubevirt.io/allow-access-cluster-services=true; the DaemonSet
selects kubevirt.io=virt-handler, daemonsets.go:117-120), with the container port "metrics"
(daemonsets.go:233-238) on which virt-handler serves /metrics over TLS
(cmd/virt-handler/virt-handler.go:652-661). Each reports the VMIs of its own node
(virt-handler.go:268,536), so each pod here has its own server (metrics.MetricsServer with `node`).

Where it is not KubeVirt: the port is a free one, not 8443 (several simulators share one machine),
and the pod IP is this machine's own network address (tests/harness/apiserver.pod_address), because
kube-apiserver proxies only to global unicast pod IPs, never loopback. No pods (and no progress
through the proxy) on a machine without such an address.
"""
from __future__ import annotations

import random
import shutil
import ssl
import subprocess
import tempfile
from pathlib import Path

from ..harness.apiserver import pod_address
from . import kube as K
from .constants import INSTALL_NAMESPACE
from .metrics import MetricsServer
from .objects import short_id

LABELS = {"kubevirt.io": "virt-handler", "prometheus.kubevirt.io": "true",
          "np.kubevirt.io/allow-access-cluster-services": "true"}


def _tls_context(address: str, directory: Path) -> ssl.SSLContext:
    """virt-handler's serving certificate comes from virt-operator's CA; the API server's pod proxy
    does not verify it, so a self-signed one is as good here."""
    crt, key = directory / "virt-handler.crt", directory / "virt-handler.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", str(key), "-out", str(crt), "-days", "1", "-subj", "/CN=virt-handler",
                    "-addext", f"subjectAltName=IP:{address}"], check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(crt, key)
    return context


class HandlerPods:
    """Start: a metrics server and a Running Pod per node of every cluster; stop: both gone."""

    def __init__(self, sim):
        self.sim = sim
        self.address = pod_address()
        self.servers: dict[tuple[str, str], MetricsServer] = {}  # (cluster, node) -> server
        self.pods: dict[tuple[str, str], str] = {}  # (cluster, node) -> pod name
        self._dir: Path | None = None

    def start(self) -> None:
        if self.address is None:
            return
        self._dir = Path(tempfile.mkdtemp(prefix="kubevirt-sim-handler-"))
        context = _tls_context(self.address, self._dir)
        for c in self.sim.clusters.values():
            for node in c.nodes:
                server = MetricsServer(self.sim.fabric, c.name, node, self.address, context)
                server.start()
                self.servers[(c.name, node)] = server
                self.pods[(c.name, node)] = self._run_pod(c, node, server.port)

    def _run_pod(self, c, node: str, port: int) -> str:
        name = "virt-handler-" + short_id(random.Random(node))  # the DaemonSet's generateName + 5
        c.kube.delete(K.POD, INSTALL_NAMESPACE, name)  # one a killed test run left behind
        c.kube.create(K.POD, {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": INSTALL_NAMESPACE, "labels": dict(LABELS)},
            "spec": {"nodeName": node, "containers": [{
                "name": "virt-handler", "image": "virt-handler",
                "ports": [{"name": "metrics", "protocol": "TCP", "containerPort": port},
                          {"name": "vmstats", "protocol": "TCP", "containerPort": 8187}]}]}}, "kube-controller-manager")
        # what the kubelet reports once the container runs
        c.kube.patch(K.POD, INSTALL_NAMESPACE, name, {"status": {
            "phase": "Running", "podIP": self.address, "podIPs": [{"ip": self.address}]}}, "kubelet", status=True)
        return name

    def stop_serving(self, cluster: str) -> None:
        """virt-handler's metrics endpoint on every node of `cluster` stops answering (the pods stay)."""
        for (name, _), server in self.servers.items():
            if name == cluster:
                server.stop()

    def stop(self) -> None:
        for (cluster, _), pod in self.pods.items():
            try:
                self.sim.clusters[cluster].kube.delete(K.POD, INSTALL_NAMESPACE, pod)
            except Exception as e:  # noqa: BLE001 - teardown goes on
                self.sim.record_error(f"deleting {cluster} pod {pod}: {e}")
        for server in self.servers.values():
            server.stop()
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)
