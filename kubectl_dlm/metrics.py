"""Transfer progress from Prometheus: KubeVirt publishes it only as virt-handler metrics.

Queried over Prometheus' HTTP API with the standard library (no client dependency). When no
Prometheus is reachable the caller says so once and shows phases only.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Dict, Optional, Tuple

METRICS = {
    "processed": "kubevirt_vmi_migration_data_processed_bytes",
    "remaining": "kubevirt_vmi_migration_data_remaining_bytes",
    "rate": "kubevirt_vmi_migration_memory_transfer_rate_bytes",
    "dirty_rate": "kubevirt_vmi_migration_dirty_memory_rate_bytes",  # for the convergence verdict
}


class Prometheus:
    def __init__(self, url: str, timeout: float = 3.0):
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.unreachable: Optional[str] = None

    def query(self, expression: str) -> Optional[float]:
        query = urllib.parse.urlencode({"query": expression})
        try:
            with urllib.request.urlopen(f"{self.url}/api/v1/query?{query}", timeout=self.timeout) as response:
                body = json.load(response)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            self.unreachable = str(getattr(exc, "reason", exc))
            return None
        self.unreachable = None
        results = (body.get("data") or {}).get("result") or []
        if not results:
            return None
        return sum(float(r["value"][1]) for r in results)

    def progress(self, namespace: str, vmi: str) -> Optional[Dict[str, float]]:
        """processed/remaining bytes and rate for one source VMI, or None when nothing is published."""
        selector = f'{{namespace="{namespace}",name="{vmi}"}}'
        values = {key: self.query(metric + selector) for key, metric in METRICS.items()}
        if all(v is None for v in values.values()):
            return None
        return {k: v for k, v in values.items() if v is not None}


class HandlerMetrics:
    """Progress without Prometheus: the source node's virt-handler metrics through the API server's
    pod proxy (handler_metrics.py). When that is not possible (RBAC forbids pods/proxy, no
    virt-handler pod, a proxy that fails), it says why once and shows phases only."""

    def __init__(self, cluster, notice):
        self.cluster, self.notice = cluster, notice
        self.unavailable: Optional[str] = None
        self.kubevirt_namespace: Optional[str] = None
        self.pods: Dict[str, Optional[Tuple[str, int]]] = {}  # node -> virt-handler pod and its metrics port

    def _give_up(self, why: str) -> None:
        self.unavailable = why
        self.notice(f"no transfer progress: {why}; showing phases only (or give --prometheus-url)")

    def progress(self, namespace: str, vmi: str) -> Optional[Dict[str, float]]:
        from kubectl_dlm import handler_metrics, kube
        from kubectl_dlm.errors import DlmError

        if self.unavailable:
            return None
        try:
            if self.kubevirt_namespace is None:
                found = kube.list_objects(self.cluster, "KubeVirt")
                if not found:
                    self._give_up("no KubeVirt CR on the source cluster")
                    return None
                self.kubevirt_namespace = found[0]["metadata"]["namespace"]
            obj = kube.get(self.cluster, "VirtualMachineInstance", namespace, vmi) or {}
            status = obj.get("status") or {}
            node = (status.get("migrationState") or {}).get("sourceNode") or status.get("nodeName")
            if not node:
                return None
            if node not in self.pods:
                pods = kube.list_objects(self.cluster, "Pod", self.kubevirt_namespace, handler_metrics.HANDLER_LABELS)
                self.pods[node] = handler_metrics.handler_pod(pods, node)
            pod = self.pods[node]
            if pod is None:
                self._give_up(f"no running virt-handler pod on node {node} in namespace {self.kubevirt_namespace}")
                return None
            text = kube.proxy_text(self.cluster, self.kubevirt_namespace, pod[0], pod[1], handler_metrics.PATH)
        except DlmError as exc:
            forbidden = " refused to " in exc.message  # a 403 (kube.api_error), not "connection refused"
            self._give_up(exc.message + (f" (reading virt-handler's metrics needs list on pods and get on pods/proxy in "
                                         f"namespace {self.kubevirt_namespace})" if forbidden else ""))
            return None
        return handler_metrics.progress(text, namespace, vmi, node)
