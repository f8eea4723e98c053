"""Pre-flight checks: find every reason a migration would fail before anything is created.

    run_checks(request) -> Report        (rows of Check; report.failed)

Two layers. `gather` (gather.py) reads what the checks need from both clusters into `Facts`
(facts.py; each read may fail on its own: that row then says "could not verify", status unknown,
never pass). `evaluate` is pure: Facts -> rows (cluster_rules.py, vm_rules.py, bundle_rules.py),
one row per condition, so the user sees every problem at once, not the first one. The plan
(plan.plan) is run too, and a refusal becomes a row of its own. table.py prints the rows.

Nothing here opens a connection to a synchronization address or prints a Secret value: Secrets
are compared by the SHA-256 of their data and named by their keys only.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, List, Optional

from kubectl_dlm import pem
from kubectl_dlm.checks.bundle_rules import (check_bundle, check_collisions, check_copies, check_macs, check_referenced,
                                             content_digest)
from kubectl_dlm.checks.cluster_rules import (check_access, check_dlm_enabled, check_sync_addresses,
                                              check_target_namespace, check_trust, check_version, classify_address,
                                              cluster_scope, expiry_row, parse_version)
from kubectl_dlm.checks.facts import FAIL, PASS, STATUSES, UNKNOWN, WARN, Access, Check, ClusterFacts, Facts, Report
from kubectl_dlm.checks.gather import gather, required_access
from kubectl_dlm.checks.table import format_report, format_table
from kubectl_dlm.checks.tuning_rules import check_policy_choice, check_tuning_cluster
from kubectl_dlm.checks.vm_rules import (check_migratable_conditions, check_networks, check_other_migrations,
                                         check_persistent_state, check_running, check_storage_classes, check_vm,
                                         check_volumes)

__all__ = [
    "run_checks", "gather_for", "evaluate", "gather", "required_access", "format_table", "format_report",
    "Check", "Report", "Access", "ClusterFacts", "Facts", "PASS", "WARN", "FAIL", "UNKNOWN", "STATUSES",
    "cluster_scope", "check_dlm_enabled", "check_version", "parse_version", "classify_address", "check_sync_addresses",
    "check_trust", "expiry_row", "check_access", "check_target_namespace",
    "check_vm", "check_running", "check_migratable_conditions", "check_other_migrations", "check_volumes",
    "check_persistent_state", "check_storage_classes", "check_networks",
    "check_collisions", "check_macs", "check_referenced", "content_digest", "check_copies", "check_bundle",
]


def run_checks(request: Any, *, now: Optional[dt.datetime] = None, access_reviews: bool = True,
               read: Optional[tuple] = None) -> Report:
    """Every pre-flight check for `request` (a pipeline.Request). Errors that make checking
    impossible (no such VM, bad flags, a cluster that cannot be reached) are raised; anything
    else becomes a row. `read`: (source, source cluster, namespace, names, target cluster) as
    pipeline read them for this request already (migrate checks each VM of a batch on the one
    reading and the connections its plan used, instead of connecting and listing again per VM)."""
    from kubectl_dlm import pipeline

    if read is None:
        source, source_cluster, namespace, names = pipeline.read_source(request)
        target_cluster = pipeline.connect_target(request, source_cluster)
    else:
        source, source_cluster, namespace, names, target_cluster = read
    settings = pipeline.make_settings(request, namespace, source_cluster, target_cluster)
    facts = gather(source, names, settings, source_cluster, target_cluster, access_reviews=access_reviews)
    report = Report(rows=evaluate(facts, now or pem.now()), plan=facts.plan, source=source)
    report.clusters = {k: v for k, v in (("source", source_cluster), ("target", target_cluster)) if v is not None}
    return report


def gather_for(request: Any) -> Facts:
    """The facts `check` judges, without the access reviews: what `kubectl dlm rbac` grants."""
    from kubectl_dlm import pipeline

    source, source_cluster, namespace, names = pipeline.read_source(request)
    target_cluster = pipeline.connect_target(request, source_cluster)
    settings = pipeline.make_settings(request, namespace, source_cluster, target_cluster)
    return gather(source, names, settings, source_cluster, target_cluster, access_reviews=False)


def evaluate(facts: Facts, now: dt.datetime) -> List[Check]:
    rows: List[Check] = []
    s = facts.settings
    roles = ("source",) if facts.same_cluster else ("source", "target")
    for role in roles:
        scope = cluster_scope(facts, role)
        rows.append(check_dlm_enabled(facts.clusters[role], scope))
        rows.append(check_version(facts.clusters[role], scope))
    rows.extend(check_sync_addresses(facts))
    rows.extend(check_trust(facts, now))
    for role in ("source", "target"):
        rows.append(check_access(facts.clusters[role], f"{role} namespace "
                                 f"{s.source_namespace if role == 'source' else s.target_namespace} on {facts.clusters[role].label}"))
    rows.append(check_target_namespace(facts))
    rows.extend(check_tuning_cluster(facts))
    for name in facts.names:
        rows.extend(check_vm(facts, name))
    if "*" in facts.vm_plans:
        error = facts.vm_plans["*"]
        rows.append(Check("bundle", FAIL, error.message, error.hint, "all VMs"))
    return rows
