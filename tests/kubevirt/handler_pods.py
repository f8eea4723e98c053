"""virt-handler's Pods and their metrics endpoints on the KubeVirt tier, one per Node, reachable
through the API server's pod proxy, as a user's cluster has them.

virt-operator installs virt-handler as the DaemonSet `virt-handler` (pkg/virt-operator/resource/
generate/components/daemonsets.go:70-123 @v1.9.0); the harness has KubeVirt's own code print it
(`dlm-kubevirt-manifests`, tests/harness/kubevirt.py) and here each Node gets the Pod the DaemonSet
controller makes from its template (kubernetes pkg/controller/daemon syncNodes: the template's labels
kubevirt.io=virt-handler, prometheus.kubevirt.io=true, ...; generateName "virt-handler-"; a required
node affinity on the Node's metadata.name), bound to its Node, reported Running by the kubelet. Its
container port "metrics" (daemonsets.go:233-238) serves GET /metrics over TLS with the certificate of
Secret kubevirt-virt-handler-server-certs (cmd/virt-handler/virt-handler.go:131-132 its mount path,
639-661 runPrometheusServer). A node's virt-handler knows the VMIs of its own node
(virt-handler.go:268,536), so each Pod has its own server, which publishes the migration series of
pkg/monitoring/metrics/virt-handler/migrationdomainstats (names and help: migrationstats_collector.go
26-67, labels namespace/name/node: 127-130, the node being the VMI's status.nodeName, queue.go
124-127) for each transfer running out of its node, read from the played libvirt (handler.Network).

Where it is not KubeVirt:
- the port is a free one, not 8443: the four Pods share one pod IP (below), so they cannot share a port;
- the pod IP is this machine's own network address (tests/harness/apiserver.pod_address), since
  kube-apiserver proxies only to a global unicast pod IP, never loopback; a machine without one has
  no such Pods (tests skip);
- a reading is taken when scraped; virt-handler samples every 5 s (queue.go:39) and hands out what it
  sampled since the last scrape (queue.go:167-183);
- no DaemonSet object exists (the test API server serves no apps/v1 DaemonSets), so the Pods have no
  owner reference and no controller-revision-hash.
"""
from __future__ import annotations

import socket
import ssl
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.harness.apiserver import ApiError, pod_address

NAMESPACE = "kubevirt"
SERVER_CERTS = "kubevirt-virt-handler-server-certs"   # mounted at /etc/virt-handler/servercertificates
MERGE = "application/merge-patch+json"

METRICS = (  # name, type, help (migrationstats_collector.go:26-67), field of Transfer.figures()
    ("kubevirt_vmi_migration_data_bytes_total", "counter", "The total Guest OS data to be migrated to the new VM.",
     "total"),
    ("kubevirt_vmi_migration_data_remaining_bytes", "gauge",
     "The remaining guest OS data to be migrated to the new VM.", "remaining"),
    ("kubevirt_vmi_migration_data_processed_bytes", "gauge",
     "The total Guest OS data processed and migrated to the new VM.", "processed"),
    ("kubevirt_vmi_migration_dirty_memory_rate_bytes", "gauge", "The rate of memory being dirty in the Guest OS.",
     "dirty_rate"),
    ("kubevirt_vmi_migration_memory_transfer_rate_bytes", "gauge",
     "The rate at which the memory is being transferred.", "rate"),
)


def _escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def render(readings: list[tuple[str, str, str, dict]]) -> str:
    """The text exposition of (namespace, name, node, figures) readings."""
    lines = []
    for metric, mtype, help_text, key in METRICS:
        lines += [f"# HELP {metric} {help_text}", f"# TYPE {metric} {mtype}"]
        for ns, name, node, figures in readings:
            labels = f'name="{_escape(name)}",namespace="{_escape(ns)}",node="{_escape(node)}"'
            lines.append(f"{metric}{{{labels}}} {figures[key]}")
    return "\n".join(lines) + "\n"


def tls_context(install, directory: Path) -> ssl.SSLContext:
    """virt-handler's serving certificate, from the Secret virt-operator fills (the pod proxy does
    not verify it, as kube-apiserver's CreateProxyTransport does not)."""
    import base64
    secret = next(s for s in install.manifests["secrets"] if s["metadata"]["name"] == SERVER_CERTS)
    crt, key = directory / "tls.crt", directory / "tls.key"
    crt.write_bytes(base64.b64decode(secret["data"]["tls.crt"]))
    key.write_bytes(base64.b64decode(secret["data"]["tls.key"]))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(crt, key)
    return context


class MetricsServer:
    """One node's virt-handler metrics endpoint: https on (address, a free port)."""

    def __init__(self, readings, address: str, context: ssl.SSLContext, node: str):
        class Serve(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server API
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404)
                    return
                body = render(readings()).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the scraper gave up

            def log_message(self, *args):
                pass

        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        self.httpd = type("Server", (ThreadingHTTPServer,), {"address_family": family})((address, 0), Serve)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.stopped = False
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                         name=f"virt-handler-metrics-{node}", daemon=True).start()

    def stop(self) -> None:
        if not self.stopped:
            self.stopped = True
            self.httpd.shutdown()
            self.httpd.server_close()


def pod_for(template: dict, node: str, port: int) -> dict:
    """The Pod the DaemonSet controller creates for `node` from the template (syncNodes:
    ReplaceDaemonSetPodNodeNameNodeAffinity, generateName <DaemonSet name>-), its metrics port the
    server's (see the module docstring)."""
    import copy
    spec = copy.deepcopy(template["spec"])
    spec["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}]}}}
    for container in spec["containers"]:
        for p in container.get("ports") or []:
            if p.get("name") == "metrics":
                p["containerPort"] = port
    meta = template["metadata"]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"generateName": "virt-handler-", "namespace": NAMESPACE, "labels": dict(meta["labels"]),
                         "annotations": dict(meta.get("annotations") or {})},
            "spec": spec}


class HandlerPods:
    """The virt-handler Pods and metrics servers of one cluster; `sync(nodes)` keeps one per Node."""

    def __init__(self, install, readings):
        self.install = install
        self.cluster = install.cluster
        self.readings = readings          # node -> [(namespace, name, node, figures)]
        self.address = pod_address()
        self.pods: dict[str, str] = {}     # node -> pod name
        self.servers: dict[str, MetricsServer] = {}
        self.silent = False               # stop_serving(): the ports do not answer
        self._context: ssl.SSLContext | None = None
        self._dir = tempfile.TemporaryDirectory(prefix="kubevirt-handler-certs-")

    def sync(self, nodes: dict[str, dict]) -> None:
        if self.address is None:
            return
        for node in [n for n in self.pods if n not in nodes]:     # the DaemonSet's pod of a Node gone
            self._delete(node)
        for node, node_obj in nodes.items():
            if node not in self.pods:
                self._run(node, node_obj)

    def _run(self, node: str, node_obj: dict) -> None:
        if self._context is None:
            self._context = tls_context(self.install, Path(self._dir.name))
        template = next(d for d in self.install.manifests["daemonSets"]
                        if d["metadata"]["name"] == "virt-handler")["spec"]["template"]
        server = MetricsServer(lambda: self.readings(node), self.address, self._context, node)
        if self.silent:
            server.stop()
        req = self.cluster.request
        try:
            pod = req("POST", f"/api/v1/namespaces/{NAMESPACE}/pods", pod_for(template, node, server.port))
        except Exception:
            server.stop()
            raise
        name = pod["metadata"]["name"]
        self.servers[node], self.pods[node] = server, name
        # the scheduler's binding, then what the kubelet reports once the container runs
        req("POST", f"/api/v1/namespaces/{NAMESPACE}/pods/{name}/binding", {
            "apiVersion": "v1", "kind": "Binding", "metadata": {"name": name, "namespace": NAMESPACE},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node}})
        from tests.kubevirt.nodes import running_status
        host_ip = next((a["address"] for a in node_obj.get("status", {}).get("addresses", [])
                        if a["type"] == "InternalIP"), "")
        pod = req("GET", f"/api/v1/namespaces/{NAMESPACE}/pods/{name}")
        req("PATCH", f"/api/v1/namespaces/{NAMESPACE}/pods/{name}/status",
            {"status": running_status(pod, host_ip, self.address)}, content_type=MERGE)

    def _delete(self, node: str) -> None:
        name = self.pods.pop(node)
        self.servers.pop(node).stop()
        try:
            self.cluster.request("DELETE", f"/api/v1/namespaces/{NAMESPACE}/pods/{name}")
        except ApiError as e:
            if e.status != 404:
                raise

    def stop_serving(self) -> None:
        """Nothing answers on the metrics ports any more; the Pods stay Running (as while the
        container restarts after its liveness probe on that port failed, daemonsets.go:272-286)."""
        self.silent = True
        for server in self.servers.values():
            server.stop()

    def serve_again(self) -> None:
        """The ports answer again (new servers: the Pods are made anew on the next sync)."""
        self.silent = False
        for node in list(self.pods):
            self._delete(node)

    def stop(self) -> None:
        for node in list(self.pods):
            try:
                self._delete(node)
            except Exception:  # noqa: BLE001 - teardown goes on
                pass
        self._dir.cleanup()
