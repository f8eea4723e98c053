"""Small helpers over plain-dict objects: time, nested access, conditions, phase timestamps."""
from __future__ import annotations

import datetime as _dt
import random
import re
import uuid


def now() -> str:
    """RFC 3339 with second precision, as metav1.Time serialises."""
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def dig(obj: dict | None, *path, default=None):
    cur = obj
    for p in path:
        if not isinstance(cur, dict) or p not in cur:
            return default
        cur = cur[p]
    return cur if cur is not None else default


def ensure(obj: dict, *path) -> dict:
    """obj[path...] as a dict, created if missing."""
    cur = obj
    for p in path:
        if not isinstance(cur.get(p), dict):
            cur[p] = {}
        cur = cur[p]
    return cur


def labels(obj: dict) -> dict:
    return ensure(obj, "metadata", "labels")


def annotations(obj: dict) -> dict:
    return ensure(obj, "metadata", "annotations")


def owner_ref(owner: dict, controller: bool = True) -> dict:
    return {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": owner["metadata"]["name"],
            "uid": owner["metadata"]["uid"], "controller": controller, "blockOwnerDeletion": True}


def controlled_by(obj: dict, kind: str) -> str | None:
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("kind") == kind and ref.get("controller"):
            return ref["name"]
    return None


# ---- conditions (pkg/controller/conditions.go) ----

def get_condition(status: dict | None, ctype: str) -> dict | None:
    for c in (status or {}).get("conditions") or []:
        if c.get("type") == ctype:
            return c
    return None


def set_condition(status: dict, cond: dict) -> bool:
    """Add `cond`, or replace an existing one only when status or reason changed (COND:127-141),
    so with a constant reason the first message sticks. Returns True if anything changed."""
    conds = status.setdefault("conditions", [])
    for i, c in enumerate(conds):
        if c.get("type") == cond["type"]:
            if c.get("status") == cond.get("status") and c.get("reason", "") == cond.get("reason", ""):
                return False
            conds[i] = cond
            return True
    conds.append(cond)
    return True


def remove_condition(status: dict, ctype: str) -> bool:
    conds = status.get("conditions") or []
    kept = [c for c in conds if c.get("type") != ctype]
    if len(kept) == len(conds):
        return False
    status["conditions"] = kept
    return True


def add_phase_timestamp(status: dict, phase: str) -> None:
    """One entry per phase, never repeated (CTL:389-421)."""
    ptt = status.setdefault("phaseTransitionTimestamps", [])
    if not any(p.get("phase") == phase for p in ptt):
        ptt.append({"phase": phase, "phaseTransitionTimestamp": now()})


def set_phase(status: dict, phase: str) -> None:
    status["phase"] = phase
    add_phase_timestamp(status, phase)


def status_patch(before: dict, after: dict) -> list[dict]:
    """JSON-patch ops turning `before` status into `after`, field by field (two levels: status and
    status.migrationState), with no resourceVersion test: like SC's field-level patches (SC:1187-1308)
    they never conflict with writers of other fields."""
    ops = []

    def esc(k: str) -> str:
        return k.replace("~", "~0").replace("/", "~1")
    for key in sorted(set(before) | set(after)):
        b, a = before.get(key), after.get(key)
        if b == a:
            continue
        if key == "migrationState" and isinstance(b, dict) and isinstance(a, dict):
            for sub in sorted(set(b) | set(a)):
                if b.get(sub) == a.get(sub):
                    continue
                path = f"/status/migrationState/{esc(sub)}"
                ops.append({"op": "remove", "path": path} if sub not in a else {"op": "add", "path": path,
                                                                               "value": a[sub]})
            continue
        path = f"/status/{esc(key)}"
        ops.append({"op": "remove", "path": path} if key not in after else {"op": "add", "path": path, "value": a})
    return ops


# ---- misc ----

_QUANTITY = re.compile(r"^([0-9.]+)([a-zA-Z]*)$")
_UNITS = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30,
          "Ti": 2**40}


def quantity_bytes(q, default: int) -> int:
    m = _QUANTITY.match(str(q or "").strip())
    if not m or m.group(2) not in _UNITS:
        return default
    return int(float(m.group(1)) * _UNITS[m.group(2)])


def random_mac(rng: random.Random) -> str:
    return "02:" + ":".join(f"{rng.randrange(256):02x}" for _ in range(5))


def short_id(rng: random.Random, n: int = 5) -> str:
    return "".join(rng.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(n))


def new_uuid() -> str:
    return str(uuid.uuid4())
