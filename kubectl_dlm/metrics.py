"""Transfer progress from Prometheus: KubeVirt publishes it only as virt-handler metrics.

Queried over Prometheus' HTTP API with the standard library (no client dependency). When no
Prometheus is reachable the caller says so once and shows phases only.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Dict, Optional

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
