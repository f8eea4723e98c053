"""virt-handler's migration metrics, the only place transfer progress exists (§0).

Served per simulated cluster on 127.0.0.1:<free port>/metrics in the Prometheus text format, with
the names, help texts and labels (name, namespace, node) of
pkg/monitoring/metrics/virt-handler/migrationdomainstats. A series exists while its migration
is running on the source node; values are computed at scrape time (virt-handler samples every 5 s).
"""
from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

METRICS = (  # name, type, help, field of the sample
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


def _sample(t) -> dict:
    """One consistent reading of a transfer (libvirt's domain job info)."""
    processed = int(t.total_bytes * t.fraction())
    return {"total": t.total_bytes, "processed": processed, "remaining": t.total_bytes - processed,
            "rate": t.rate, "dirty_rate": t.dirty_rate}


def render(transfers) -> str:
    readings = [(t, _sample(t)) for t in transfers]
    lines = []
    for name, mtype, help_text, field in METRICS:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {mtype}")
        for t, sample in readings:
            labels = f'name="{_escape(t.src.name)}",namespace="{_escape(t.src.namespace)}",node="{_escape(t.src.node)}"'
            lines.append(f"{name}{{{labels}}} {sample[field]}")
    return "\n".join(lines) + "\n"


class MetricsServer:
    """One cluster's figures for Prometheus (plain http on loopback); or, with `node`, one node's
    virt-handler metrics endpoint (handler_pods.py): only the VMIs whose source is that node, as
    virt-handler collects from its node's VMIs (cmd/virt-handler/virt-handler.go:268,536), over TLS."""

    def __init__(self, fabric, cluster_name: str, node: str | None = None, address: str = "127.0.0.1",
                 context=None):
        fab = fabric

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server API
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404)
                    return
                body = render([t for t in fab.running() if t.src.cluster == cluster_name
                               and node in (None, t.src.node)]).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the scraper gave up (its timeout); nothing to report

            def log_message(self, *args):
                pass

        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        self.httpd = type("Server", (ThreadingHTTPServer,), {"address_family": family})((address, 0), Handler)
        if context is not None:
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        host = f"[{address}]" if family == socket.AF_INET6 else address
        self.url = f"{'https' if context else 'http'}://{host}:{self.port}/metrics"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       name=f"metrics-{node or cluster_name}", daemon=True)
        self.stopped = False

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        self.httpd.shutdown()
        self.httpd.server_close()
