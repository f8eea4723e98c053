"""Per-migration tuning (--bandwidth, --allow-post-copy, ...) as KubeVirt supports it: a
MigrationPolicy that selects only this migration's receiving VMI. Pure.

How KubeVirt v1.9.0 applies a policy (paths relative to the KubeVirt tree):
* It is matched once, at the hand-off of the TARGET migration to the target's virt-handler,
  against the receiving VMI as it is then (pkg/virt-controller/watch/migration/migration.go:1259,
  2601-2643): in a decentralized migration that is the target cluster. The resolved configuration
  is written to the target VMI's status.migrationState.migrationConfiguration and reaches the
  source through the synchronization controller (pkg/synchronization-controller/
  synchronization-controller.go:1299-1300, 1414-1421). So the policy lives on the target cluster.
* Matching is by the VMI's labels and its namespace's labels; every selector label must match; the
  policy with most matching labels wins, ties go to more VMI labels, then to the lexically first
  name (pkg/virt-controller/watch/migration/migrationpolicy.go:20-122). The VMI has labels at
  that point (migration.go:1240-1244 adds the target-node label first).
* Fields set in the policy replace the KubeVirt CR's migrations configuration; allowPostCopy also
  sets allowWorkloadDisruption when that is not set (migrationpolicy.go:126-145).

Our selector: the migration ID and VM labels the bundle puts on the receiving VM's template (so on
its VMI only: the ID is unique per VM and attempt, ids.py) and the target namespace's name label.
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Mapping, Optional, Tuple

from kubectl_dlm import quantity
from kubectl_dlm.errors import UsageError
from kubectl_dlm.model import LABEL_MIGRATION_ID, LABEL_VM, Obj, Tuning, meta

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"  # set on every Namespace by the API server
POLICY_PREFIX = "kubectl-dlm-"
# maxDowntimeMs bounds (staging/src/kubevirt.io/api/migrations/v1alpha1/types.go:58-60)
MAX_DOWNTIME_RANGE = (1, 2000000)
# virt-api refuses maxDowntimeMs unless this gate is on (pkg/virt-api/webhooks/validating-webhook/
# admitters/migrationpolicy-admitter.go:78-93; the gate is Alpha: pkg/virt-config/featuregate/active.go:337)
MAX_DOWNTIME_GATE = "MigrationStallDetection"
_DURATION = re.compile(r"^([0-9]+)(ms|s)$")

# flag -> MigrationPolicySpec field (types.go:43-65)
FIELDS = (("bandwidth", "bandwidthPerMigration"), ("allow_post_copy", "allowPostCopy"),
          ("completion_timeout_per_gib", "completionTimeoutPerGiB"), ("allow_auto_converge", "allowAutoConverge"),
          ("max_downtime_ms", "maxDowntimeMs"))


def parse(bandwidth: Optional[str] = None, allow_post_copy: Optional[bool] = None,
          completion_timeout_per_gib: Optional[int] = None, allow_auto_converge: Optional[bool] = None,
          max_downtime: Optional[str] = None) -> Optional[Tuning]:
    """The flags as a Tuning, or None when none was given. Bad values: UsageError (exit 2)."""
    if bandwidth is not None:
        try:
            negative = quantity.to_bytes(bandwidth) < 0
        except ValueError:
            raise UsageError(f"--bandwidth {bandwidth!r} is not a Kubernetes quantity",
                             "bytes per second, e.g. --bandwidth 64Mi (0: no limit)") from None
        if negative:  # migrationpolicy-admitter.go:143-157
            raise UsageError(f"--bandwidth {bandwidth} is negative", "e.g. --bandwidth 64Mi (0: no limit)")
    if completion_timeout_per_gib is not None and completion_timeout_per_gib < 1:
        # KubeVirt refuses a negative one (admitter :71-77); 0 leaves no time at all to complete
        raise UsageError(f"--completion-timeout-per-gib {completion_timeout_per_gib} is not a positive number of seconds",
                         "KubeVirt's default is 150 (seconds per GiB of memory and disk to copy)")
    downtime = None
    if max_downtime is not None:
        match = _DURATION.match(max_downtime.strip())
        if not match:
            raise UsageError(f"--max-downtime {max_downtime!r} is not a duration in ms or s", "e.g. --max-downtime 300ms")
        downtime = int(match.group(1)) * (1000 if match.group(2) == "s" else 1)
        low, high = MAX_DOWNTIME_RANGE
        if not low <= downtime <= high:
            raise UsageError(f"--max-downtime {max_downtime} is outside {low}ms..{high}ms (KubeVirt's bounds)",
                             "KubeVirt's default is 900ms")
    tuning = Tuning(bandwidth=bandwidth, allow_post_copy=allow_post_copy,
                    completion_timeout_per_gib=completion_timeout_per_gib,
                    allow_auto_converge=allow_auto_converge, max_downtime_ms=downtime)
    return tuning if tuning != Tuning() else None


def policy_name(migration_id: str) -> str:
    """Cluster-scoped, so named by the migration ID (a DNS label, names.migration_id_problem)."""
    return POLICY_PREFIX + migration_id


def vmi_labels(migration_id: str, vm_label: str) -> Dict[str, str]:
    """What the receiving VM's template (so its VMI) carries for the policy to select."""
    return {LABEL_MIGRATION_ID: migration_id, LABEL_VM: vm_label}


def selectors(migration_id: str, vm_label: str, namespace: str) -> Dict[str, Dict[str, str]]:
    return {"virtualMachineInstanceSelector": vmi_labels(migration_id, vm_label),
            "namespaceSelector": {NAMESPACE_NAME_LABEL: namespace}}


def spec_fields(tuning: Tuning) -> Dict[str, Any]:
    """The MigrationPolicySpec fields the user set (only those: the others stay the cluster's)."""
    return {field: getattr(tuning, attr) for attr, field in FIELDS if getattr(tuning, attr) is not None}


def flags_of(tuning: Tuning) -> List[str]:
    """The flags that make this Tuning, for messages."""
    out = []
    for attr, _ in FIELDS:
        value = getattr(tuning, attr)
        if value is None:
            continue
        flag = "--" + attr.replace("_", "-")
        if isinstance(value, bool):
            out.append(flag if value else flag.replace("--", "--no-", 1))
        elif attr == "max_downtime_ms":
            out.append(f"--max-downtime {value}ms")
        else:
            out.append(f"{flag} {value}")
    return out


# --- KubeVirt's matching (migrationpolicy.go), to tell which policy the controller will choose ---

def score(policy: Obj, vmi_labels: Mapping[str, str], namespace_labels: Mapping[str, str]) -> Optional[Tuple[int, int]]:
    """(matching VMI labels, matching namespace labels), or None when the policy does not match:
    countMatchingLabels (migrationpolicy.go:84-122), including its quirk that a namespace selector
    is only looked at when the VMI has labels (:112), which it always has at hand-off."""
    found = (policy.get("spec") or {}).get("selectors")
    if found is None:
        return None
    counts = []
    for key, labels in (("virtualMachineInstanceSelector", vmi_labels), ("namespaceSelector", namespace_labels)):
        wanted = found.get(key)
        if wanted is None or vmi_labels is None:
            counts.append(0)
            continue
        if any((labels or {}).get(k) != v for k, v in wanted.items()):
            return None
        counts.append(len(wanted))
    return counts[0], counts[1]


def _rank(found: Tuple[int, int]) -> Tuple[int, int]:
    """More labels in all, then more VMI labels (migrationPolicyMatchScore.greaterThan, :20-29)."""
    return sum(found), found[0]


def chosen(policies: List[Obj], vmi_labels: Mapping[str, str], namespace_labels: Mapping[str, str]) -> Optional[Obj]:
    """The policy KubeVirt applies: best rank, ties by the lexically first name (matchPolicy, :44-81)."""
    scored = [(p, score(p, vmi_labels, namespace_labels)) for p in policies]
    matching = [(p, s) for p, s in scored if s is not None]
    if not matching:
        return None
    best = max(_rank(s) for _, s in matching)
    return min((p for p, s in matching if _rank(s) == best), key=lambda p: meta(p).get("name", ""))


def rivals(policies: List[Obj], ours: Obj, vmi_labels: Mapping[str, str],
           namespace_labels: Mapping[str, str]) -> Tuple[Optional[Obj], bool]:
    """(the policy KubeVirt would choose instead of ours, or None; whether ours matches at all)."""
    others = [p for p in policies if meta(p).get("name") != meta(ours).get("name")]
    if score(ours, vmi_labels, namespace_labels) is None:
        return chosen(others, vmi_labels, namespace_labels), False
    winner = chosen(others + [ours], vmi_labels, namespace_labels)
    return (None if winner is ours else winner), True


# --- what KubeVirt resolved (status.migrationState.migrationConfiguration) ---

# VMIMConfigurationOptions (staging/src/kubevirt.io/api/core/v1/types.go:3480-3540): the fields shown
SHOWN = (("bandwidthPerMigration", "bandwidth"), ("allowPostCopy", "post-copy"),
         ("allowWorkloadDisruption", "workload disruption"), ("allowAutoConverge", "auto-converge"),
         ("completionTimeoutPerGiB", "completion timeout/GiB"), ("maxDowntimeMs", "max downtime"),
         ("progressTimeout", "progress timeout"))


def resolved(*objects: Optional[Obj], migration_uid: Optional[str] = None) -> Tuple[Optional[str], Optional[Dict[str, Any]]]:
    """(policy name, migrationConfiguration) KubeVirt wrote into the target VMI's migrationState at the
    hand-off (migration.go:2629-2643; the VMIM's status.migrationState may carry it too, types.go:1829),
    from the first object that has it for this migration (`migration_uid`: the target VMIM's uid), or
    (None, None) before the hand-off."""
    for obj in objects:
        state = ((obj or {}).get("status") or {}).get("migrationState") or {}
        if state.get("migrationConfiguration") is None:
            continue
        if migration_uid and state.get("migrationUid") not in (None, "", migration_uid):
            continue  # an earlier migration's
        return state.get("migrationPolicyName"), state["migrationConfiguration"]
    return None, None


def describe(policy: Optional[str], configuration: Optional[Mapping[str, Any]]) -> str:
    """One line: `policy P: bandwidth 64Mi, post-copy on, ...` (units as KubeVirt documents them)."""
    parts = []
    for field, label in SHOWN:
        value = (configuration or {}).get(field)
        if value is None:
            continue
        if isinstance(value, bool):
            parts.append(f"{label} {'on' if value else 'off'}")
        elif field == "bandwidthPerMigration":
            parts.append(f"{label} {'unlimited' if str(value) in ('0', '') else f'{value}/s'}")
        elif field == "maxDowntimeMs":
            parts.append(f"{label} {value}ms")
        elif field in ("completionTimeoutPerGiB", "progressTimeout"):
            parts.append(f"{label} {value}s")
    head = f"policy {policy}" if policy else "no migration policy (the cluster's configuration)"
    return head + (": " + ", ".join(parts) if parts else "")
