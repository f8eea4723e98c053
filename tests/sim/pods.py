"""virt-launcher pods, kept in memory (§6 "Internal - may skip": only their names reach status).

The test API server serves no Pod kind, so the simulator keeps the pods the real controllers would
create here: their name, node, phase and readiness drive the same transitions a real pod would.
"""
from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field


@dataclass
class Pod:
    namespace: str
    name: str
    vmi: str
    vmi_uid: str
    node: str
    migration_uid: str | None = None  # label kubevirt.io/migrationJobUID: a migration target pod (row 24)
    phase: str = "Pending"  # Pending | Running | Succeeded | Failed
    ready: bool = False
    deleted: bool = False
    uid: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def down(self) -> bool:
        return self.deleted or self.phase in ("Succeeded", "Failed")


class PodTable:
    def __init__(self, on_change):
        self._pods: dict[tuple[str, str], Pod] = {}
        self._lock = threading.Lock()
        self._on_change = on_change  # called with the pod after every change (enqueues controllers)

    def add(self, pod: Pod) -> Pod:
        with self._lock:
            self._pods[(pod.namespace, pod.name)] = pod
        self._on_change(pod)
        return pod

    def update(self, pod: Pod, **changes) -> None:
        with self._lock:
            for k, v in changes.items():
                setattr(pod, k, v)
        self._on_change(pod)

    def for_vmi(self, namespace: str, vmi_uid: str) -> list[Pod]:
        with self._lock:
            return [p for p in self._pods.values() if p.namespace == namespace and p.vmi_uid == vmi_uid]

    def launcher(self, namespace: str, vmi_uid: str, node: str | None = None) -> Pod | None:
        """The VMI's own (non-target) pod, or the pod on `node`; newest first."""
        pods = [p for p in self.for_vmi(namespace, vmi_uid) if not p.deleted and
                (p.node == node if node else p.migration_uid is None)]
        return pods[-1] if pods else None

    def for_migration(self, namespace: str, migration_uid: str) -> Pod | None:
        with self._lock:
            pods = [p for p in self._pods.values() if p.namespace == namespace and p.migration_uid == migration_uid]
        return pods[-1] if pods else None

    def known(self, namespace: str, vmi_uid: str) -> bool:
        return bool(self.for_vmi(namespace, vmi_uid))
