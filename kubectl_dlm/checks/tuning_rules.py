"""Rows for the tuning flags (--bandwidth ...): can the target take our MigrationPolicy, and will
KubeVirt choose it for the receiving VMI. Pure: Facts -> Check (tuning.py has KubeVirt's matching)."""

from __future__ import annotations

from typing import Any, List, Optional

from kubectl_dlm import tuning
from kubectl_dlm.checks.cluster_rules import cluster_scope
from kubectl_dlm.checks.facts import FAIL, PASS, UNKNOWN, Check, Facts
from kubectl_dlm.errors import DlmError
from kubectl_dlm.model import Obj, meta


def check_tuning_cluster(facts: Facts) -> List[Check]:
    """The target serves migrationpolicies; --max-downtime only where KubeVirt accepts it."""
    settings = facts.settings
    if settings.tuning is None:
        return []
    scope = cluster_scope(facts, "target")
    flags = " ".join(tuning.flags_of(settings.tuning))
    if facts.policies_served is False:
        rows = [Check("migration-policy-api", FAIL,
                      "the target serves no migrationpolicies.migrations.kubevirt.io (KubeVirt's MigrationPolicy CRD "
                      f"is not installed), which {flags} needs",
                      "install KubeVirt's CRDs on the target (virt-operator does), or leave out the tuning flags", scope)]
    elif facts.policies_error or facts.policies is None:
        rows = [Check("migration-policy-api", UNKNOWN, "could not list the target's MigrationPolicies: "
                      f"{facts.policies_error or 'the target was not contacted'}", "", scope)]
    else:
        rows = [Check("migration-policy-api", PASS,
                      f"the target serves MigrationPolicies ({len(facts.policies)} there now)", "", scope)]
    if settings.tuning.max_downtime_ms is not None:
        rows.append(_max_downtime(facts, scope))
    return rows


def _max_downtime(facts: Facts, scope: str) -> Check:
    """virt-api refuses a policy's maxDowntimeMs unless MigrationStallDetection is on (admitter :78-93);
    an Alpha gate is on only when listed in featureGates (pkg/virt-config/featuregate/feature-gates.go:91-111)."""
    cf = facts.clusters["target"]
    if cf.kubevirt is None:
        return Check("max-downtime", UNKNOWN, "could not read the target's KubeVirt CR to see whether --max-downtime is "
                     f"accepted: {cf.kubevirt_error or 'not found'}", "", scope)
    dev = (((cf.kubevirt.get("spec") or {}).get("configuration") or {}).get("developerConfiguration") or {})
    if tuning.MAX_DOWNTIME_GATE in (dev.get("featureGates") or []):
        return Check("max-downtime", PASS, f"the target's KubeVirt has the {tuning.MAX_DOWNTIME_GATE} feature gate "
                     "that a policy's maxDowntimeMs needs", "", scope)
    return Check("max-downtime", FAIL, f"the target's KubeVirt refuses a policy's maxDowntimeMs without the "
                 f"{tuning.MAX_DOWNTIME_GATE} feature gate (Alpha, not enabled there)",
                 f"enable it in the KubeVirt CR's spec.configuration.developerConfiguration.featureGates, or leave out "
                 "--max-downtime", scope)


def check_policy_choice(facts: Facts, vm_plan: Any, scope: str) -> Optional[Check]:
    """Will KubeVirt choose our policy for this VM's receiving VMI (tuning.rivals)? Judged with the
    labels the receiving VMI will have: its VM template's (pkg/virt-controller/watch/vm/vm.go:1868-1889),
    the ones KubeVirt adds later (node names) are not known yet."""
    if facts.settings.tuning is None or vm_plan is None or isinstance(vm_plan, DlmError):
        return None
    ours = _our_policy(vm_plan)
    vmi_labels = _template_labels(vm_plan)
    if ours is None or vmi_labels is None:
        return None
    if facts.policies is None or facts.target_namespace_labels is None:
        why = facts.policies_error or facts.namespace_error or "the target was not read"
        return Check("migration-policy", UNKNOWN, f"could not tell which MigrationPolicy KubeVirt will choose: {why}",
                     "", scope)
    rival, matches = tuning.rivals(facts.policies, ours, vmi_labels, facts.target_namespace_labels)
    name = meta(ours)["name"]
    if not matches:
        return Check("migration-policy", FAIL,
                     f"our MigrationPolicy {name} would not select the receiving VMI: namespace "
                     f"{facts.settings.target_namespace} lacks the label {tuning.NAMESPACE_NAME_LABEL}",
                     "the API server sets it on every Namespace since Kubernetes 1.21; add it, or leave out the "
                     "tuning flags", scope)
    if rival is not None:
        found = tuning.score(rival, vmi_labels, facts.target_namespace_labels) or (0, 0)
        mine = tuning.score(ours, vmi_labels, facts.target_namespace_labels) or (0, 0)
        return Check("migration-policy", FAIL,
                     f"KubeVirt would apply MigrationPolicy {meta(rival).get('name')} instead of ours ({name}): it "
                     f"matches {sum(found)} label(s) ({found[0]} of the VMI, {found[1]} of the namespace), ours "
                     f"{sum(mine)} ({mine[0]}, {mine[1]}); the most matching labels win, then VMI labels, then the "
                     "first name (pkg/virt-controller/watch/migration/migrationpolicy.go:20-81)",
                     f"narrow or remove MigrationPolicy {meta(rival).get('name')} for this migration, or leave out the "
                     "tuning flags and rely on it", scope)
    return Check("migration-policy", PASS, f"KubeVirt will choose our MigrationPolicy {name} for the receiving VMI "
                 f"({', '.join(tuning.flags_of(facts.settings.tuning))}); no other policy there out-ranks it", "", scope)


def _our_policy(vm_plan: Any) -> Optional[Obj]:
    for item in vm_plan.items:
        if item.kind == "MigrationPolicy":
            return {"metadata": {"name": item.name}, "spec": {"selectors": item.context["selectors"]}}
    return None


def _template_labels(vm_plan: Any) -> Optional[dict]:
    for item in vm_plan.items:
        if item.kind == "VirtualMachine" and item.phase == "prepare":
            template = (item.context.get("spec") or {}).get("template") or {}
            return dict((template.get("metadata") or {}).get("labels") or {})
    return None
