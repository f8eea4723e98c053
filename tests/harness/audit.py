"""The requests a client made to a test cluster, from the API server's audit log.

Every test API server writes k8s.io/apiserver's audit log at Metadata level (tests/harness/apiserver.py).
`AuditWindow(cluster)` marks where the log ends now; `.requests("kubectl-dlm/")` later returns the
requests made since then by clients whose User-Agent starts so (the plugin sends
`kubectl-dlm/<version>`, kubectl_dlm/kube.py), one per audit ID, as the authorizer sees them.
"""
from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass

from .apiserver import ApiError


@dataclass(frozen=True)
class Request:
    """The attributes the authorizer judges (k8s.io/apiserver authorizer.Attributes, as the audit
    event's objectRef carries them: audit/request.go NewEventFromRequest)."""

    verb: str
    resource: str = ""  # "" for a non-resource request
    subresource: str = ""
    group: str = ""
    namespace: str = ""
    name: str = ""
    path: str = ""  # the request URI (query included)

    @property
    def is_resource(self) -> bool:
        return bool(self.resource)

    def describe(self) -> str:
        if not self.is_resource:
            return f"{self.verb} {self.path}"
        what = self.resource + (f"/{self.subresource}" if self.subresource else "")
        what += f".{self.group}" if self.group else ""
        where = f" in namespace {self.namespace}" if self.namespace else " (cluster-wide)"
        return f"{self.verb} {what}{' ' + self.name if self.name else ''}{where}"


def request_of(event: dict) -> Request:
    ref = event.get("objectRef")
    if not ref or not ref.get("resource"):
        return Request(verb=event["verb"], path=event["requestURI"].split("?")[0])
    return Request(verb=event["verb"], resource=ref["resource"], subresource=ref.get("subresource", ""),
                   group=ref.get("apiGroup", ""), namespace=ref.get("namespace", ""), name=ref.get("name", ""),
                   path=event["requestURI"])


class AuditWindow:
    """The audit events a cluster logs from now on."""

    def __init__(self, cluster):
        self.cluster = cluster
        self.path = cluster.api.audit_log
        self.offset = self.path.stat().st_size if self.path.exists() else 0

    def events(self, timeout: float = 10) -> list[dict]:
        """Every event since the window opened. A request's event is written after its response, so
        make one request of our own and read until its event is there: the ones before it are too."""
        mark = f"audit-mark-{secrets.token_hex(4)}"
        try:
            self.cluster.request("GET", f"/api/v1/namespaces/{mark}")
        except ApiError as e:
            assert e.status == 404, e
        deadline = time.monotonic() + timeout
        while True:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                lines = f.read().decode().splitlines()
            events = [json.loads(line) for line in lines if line.strip()]
            if any((e.get("objectRef") or {}).get("name") == mark for e in events):
                return events
            assert time.monotonic() < deadline, f"{self.path}: the marker request was never logged"
            time.sleep(0.05)

    def requests(self, user_agent_prefix: str) -> list[Request]:
        """One Request per audit ID (a watch logs ResponseStarted and later ResponseComplete)."""
        seen: dict[str, Request] = {}
        for event in self.events():
            if (event.get("userAgent") or "").startswith(user_agent_prefix):
                seen.setdefault(event["auditID"], request_of(event))
        return list(seen.values())
