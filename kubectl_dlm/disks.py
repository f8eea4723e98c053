"""Are the blank target DataVolumes ready for the receiving VM? Pure: DataVolumes in, verdict out.

KubeVirt's VM controller waits only for the DataVolumes of `dataVolumeTemplates` (Succeeded,
WaitForFirstConsumer or PendingPopulation: pkg/virt-controller/watch/vm/vm.go:556-567 @v1.9.0) and
the migration controller creates the target pod with no DataVolume check, so a plain
`dataVolume`/`persistentVolumeClaim` disk could still be importing when the receiver starts.
KubeVirt's own DLM e2e waits for every target DataVolume before it creates the receiving VM
(tests/migration/namespace.go:277-279,745-747 @d923fdb); `migrate` and `apply` do the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

from kubectl_dlm.model import Obj

READY_PHASES = ("Succeeded", "WaitForFirstConsumer", "PendingPopulation")
STALL_NOTICE = 120.0  # seconds a disk may stay not ready before the user is told why


@dataclass
class DiskVerdict:
    ready: bool
    failed: str = ""  # "DataVolume x failed: ..." when one failed
    waiting: List[str] = field(default_factory=list)  # "x (ImportInProgress: ...)" for each not ready


def condition_text(dv: Obj) -> str:
    """The most telling condition of a DataVolume: Running, then Ready, then Bound (reason: message)."""
    conditions = {c.get("type"): c for c in (dv.get("status") or {}).get("conditions") or []}
    for kind in ("Running", "Ready", "Bound"):
        cond = conditions.get(kind)
        if cond and (cond.get("message") or cond.get("reason")):
            reason, message = cond.get("reason") or "", cond.get("message") or ""
            return f"{kind}: {reason}{': ' if reason and message else ''}{message}"
    return "no condition reported"


def assess(expected: List[str], seen: Dict[str, Optional[Obj]]) -> DiskVerdict:
    """expected: the DataVolume names this migration created; seen: name -> the latest object (None: not yet)."""
    waiting = []
    for name in expected:
        dv = seen.get(name)
        phase = ((dv or {}).get("status") or {}).get("phase") or ""
        if phase == "Failed":
            return DiskVerdict(False, f"DataVolume {name} failed ({condition_text(dv or {})})")
        if phase not in READY_PHASES:
            waiting.append(f"{name} ({phase or 'no phase yet'}; {condition_text(dv or {})})")
    return DiskVerdict(not waiting, "", waiting)
