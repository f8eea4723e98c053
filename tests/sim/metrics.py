"""virt-handler's migration metrics, the only place transfer progress exists (§0).

Served per simulated cluster on 127.0.0.1:<free port>/metrics in the Prometheus text format, with
the names, help texts and labels (name, namespace, node) of
pkg/monitoring/metrics/virt-handler/migrationdomainstats. A series exists while its migration
is running on the source node; values are computed at scrape time (virt-handler samples every 5 s).
"""
from __future__ import annotations

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
    def __init__(self, fabric, cluster_name: str):
        fab = fabric

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server API
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404)
                    return
                body = render([t for t in fab.running() if t.src.cluster == cluster_name]).encode()
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

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/metrics"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       name=f"metrics-{cluster_name}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
