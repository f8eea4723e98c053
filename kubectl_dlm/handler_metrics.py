"""Transfer progress straight from the source node's virt-handler, without Prometheus. Pure.

virt-handler publishes a running migration's figures on its metrics port (the DaemonSet's container
port named "metrics", 8443, pkg/virt-operator/resource/generate/components/daemonsets.go:233-238;
https, cmd/virt-handler/virt-handler.go:652-661)
in the Prometheus text format, one series per migrating VMI with the labels namespace, name and
node (pkg/monitoring/metrics/virt-handler/migrationdomainstats/migrationstats_collector.go:127-130).
We read it through the API server's pod proxy (kube.proxy_text) and pick the series of exactly
this VMI on exactly its source node.

The total is `kubevirt_vmi_migration_data_bytes_total` since v1.8.0 (migrationstats_collector.go:43);
before, `kubevirt_vmi_migration_data_total_bytes` (kept as a deprecated recording rule,
pkg/monitoring/rules/recordingrules/deprecated_recordingrules.go:113-120). Both are accepted.
"""

from __future__ import annotations

import re
from typing import Dict, List, Optional, Tuple

PORT = 8443  # when the pod names no "metrics" port
PATH = "metrics"
HANDLER_LABELS = "kubevirt.io=virt-handler"  # the DaemonSet's pod label (daemonsets.go:119)
FIELDS = {
    "kubevirt_vmi_migration_data_bytes_total": "total",
    "kubevirt_vmi_migration_data_total_bytes": "total",  # before v1.8.0
    "kubevirt_vmi_migration_data_processed_bytes": "processed",
    "kubevirt_vmi_migration_data_remaining_bytes": "remaining",
    "kubevirt_vmi_migration_memory_transfer_rate_bytes": "rate",
    "kubevirt_vmi_migration_dirty_memory_rate_bytes": "dirty_rate",
}
_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def _unescape(value: str) -> str:
    return re.sub(r'\\(.)', lambda m: {"n": "\n"}.get(m.group(1), m.group(1)), value)


def samples(text: str) -> List[Tuple[str, Dict[str, str], float]]:
    """(metric, labels, value) of every sample line of the text exposition format."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if not match:
            continue
        try:
            value = float(match.group(3))
        except ValueError:
            continue
        labels = {k: _unescape(v) for k, v in _LABEL.findall(match.group(2) or "")}
        out.append((match.group(1), labels, value))
    return out


def progress(text: str, namespace: str, vmi: str, node: str) -> Optional[Dict[str, float]]:
    """The figures of exactly this VMI on exactly this node, or None when it has no series (yet)."""
    found: Dict[str, float] = {}
    for metric, labels, value in samples(text):
        field = FIELDS.get(metric)
        if field and labels.get("namespace") == namespace and labels.get("name") == vmi and labels.get("node") == node:
            found[field] = value
    return found or None


def metrics_port(pod: dict) -> int:
    """The pod's container port named "metrics" (the DaemonSet declares it, daemonsets.go:233-238, as
    Prometheus' ServiceMonitor finds it by that name); PORT when the pod does not name one."""
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == "metrics" and port.get("containerPort"):
                return int(port["containerPort"])
    return PORT


def handler_pod(pods: List[dict], node: str) -> Optional[Tuple[str, int]]:
    """The name and metrics port of the running virt-handler pod on `node`."""
    for pod in sorted(pods, key=lambda p: (p.get("metadata") or {}).get("name") or ""):
        if (pod.get("spec") or {}).get("nodeName") == node and (pod.get("status") or {}).get("phase") == "Running":
            return pod["metadata"]["name"], metrics_port(pod)
    return None
