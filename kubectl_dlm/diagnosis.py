"""Why a migration is stuck, from the freshest evidence, with its age. Pure: objects in, text out.

KubeVirt keeps the first message of a blocked condition: its condition managers replace a
condition only when status or reason change (pkg/controller/conditions.go:203-218 @v1.9.0) and
the synchronization controller always uses one reason, DecentralizedNotLiveMigratable
(pkg/synchronization-controller/synchronization-controller.go:418-461). So a target that later
cannot dial still says "waiting for incoming synchronization", and a first transient "unable to
locate VMI" hides a later x509 error. A condition's lastTransitionTime is when that first message
was written: the diagnosis shows it as the message's age and prefers newer evidence, Events
(newest first) over old conditions. The synchronization controller records no Events in v1.9.0
(its recorder is unused), so the Events are the migration controller's and virt-handler's.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

from kubectl_dlm.follow import BLOCKED_CONDITION, explain
from kubectl_dlm.model import Obj, meta

VMI_FAILURE_CONDITION = "DecentralizedLiveMigrationFailure"
SHOWN_EVENTS = 3


@dataclass
class Evidence:
    """What was read when the stall was diagnosed; `read_at` is when."""

    read_at: dt.datetime
    source_vmim: Optional[Obj] = None
    target_vmim: Optional[Obj] = None
    source_vmi: Optional[Obj] = None
    target_vmi: Optional[Obj] = None
    events: List[Tuple[str, Obj]] = field(default_factory=list)  # (side, Event) about our VMIMs/VMIs


@dataclass
class Diagnosis:
    why: str  # every piece of evidence, each with its age
    cause: str = ""
    fix: str = ""


def parse_time(text: Optional[str]) -> Optional[dt.datetime]:
    if not text:
        return None
    try:
        return dt.datetime.strptime(text.replace("Z", "+0000"), "%Y-%m-%dT%H:%M:%S%z")
    except ValueError:
        return None


def age(then: Optional[dt.datetime], now: dt.datetime) -> str:
    if then is None:
        return "age unknown"
    seconds = max(0, int((now - then).total_seconds()))
    return f"{seconds // 60}m{seconds % 60:02d}s ago" if seconds >= 60 else f"{seconds}s ago"


def _conditions(obj: Optional[Obj], kind: str) -> List[Obj]:
    return [c for c in ((obj or {}).get("status") or {}).get("conditions") or []
            if c.get("type") == kind and c.get("status") == "True"]


def _event_time(event: Obj) -> Optional[dt.datetime]:
    return parse_time(event.get("lastTimestamp") or event.get("eventTime") or event.get("firstTimestamp")
                      or meta(event).get("creationTimestamp"))


def diagnose(e: Evidence) -> Diagnosis:
    items: List[Tuple[Optional[dt.datetime], str, str]] = []  # (when, text for the user, text to explain)
    for side, vmim, vmi in (("source", e.source_vmim, e.source_vmi), ("target", e.target_vmim, e.target_vmi)):
        for obj, what, kind in ((vmim, "migration", BLOCKED_CONDITION), (vmi, "VMI", VMI_FAILURE_CONDITION)):
            for cond in _conditions(obj, kind):
                when = parse_time(cond.get("lastTransitionTime") or cond.get("lastProbeTime"))
                message = cond.get("message") or cond.get("reason") or ""
                items.append((when, f"{side} {what} {kind}: {message} (first reported {age(when, e.read_at)}; "
                                    "KubeVirt keeps the first message while it stays blocked)", message))
    state = ((e.source_vmi or {}).get("status") or {}).get("migrationState") or {}
    if state:
        parts = [f"{k}={state[k]}" for k in ("failed", "failureReason", "abortStatus") if state.get(k)]
        target = (state.get("targetState") or {}).get("syncAddress")
        if target:
            parts.append(f"targetState.syncAddress={target}")
        start = parse_time(state.get("startTimestamp"))
        parts.append(f"started {age(start, e.read_at)}" if start else "not started")
        items.append((None, "source VMI migrationState: " + ", ".join(parts), state.get("failureReason") or ""))
    events = sorted(e.events, key=lambda se: _event_time(se[1]) or dt.datetime.min.replace(tzinfo=dt.timezone.utc),
                    reverse=True)[:SHOWN_EVENTS]
    for side, event in events:
        when = _event_time(event)
        source = (event.get("source") or {}).get("component") or event.get("reportingComponent") or "?"
        involved = event.get("involvedObject") or {}
        items.append((when, f"{side} Event {event.get('type', '')} {event.get('reason', '')} on "
                            f"{involved.get('kind', '?')} {involved.get('name', '?')} from {source}: "
                            f"{event.get('message', '')} ({age(when, e.read_at)})", event.get("message") or ""))
    if not items:
        return Diagnosis(f"no condition, migration state or Event explains it (read {e.read_at:%H:%M:%S} UTC)")
    newest_first = sorted(items, key=lambda i: i[0] or dt.datetime.min.replace(tzinfo=dt.timezone.utc), reverse=True)
    cause, fix = "", ""
    for _, _, text in newest_first:  # the newest evidence KubeVirt's messages name a cause for
        cause, fix = explain(text)
        if cause:
            break
    return Diagnosis("; ".join(text for _, text, _ in items) + f" (read {e.read_at:%H:%M:%S} UTC)", cause, fix)
