"""checks/tuning_rules.py from Facts built here (the rows `check` prints for the tuning flags), and the
Reporter's line and JSON event for what KubeVirt resolved."""

from __future__ import annotations

import io
import json

import pytest

from kubectl_dlm import progress
from kubectl_dlm.checks.facts import FAIL, PASS, UNKNOWN
from kubectl_dlm.checks.tuning_rules import check_policy_choice, check_tuning_cluster
from kubectl_dlm.model import LABEL_MIGRATION_ID, LABEL_VM, Tuning
from kubectl_dlm.plan import plan
from tests.test_checks import base_objects, make_facts, make_kubevirt, settings

NAME_LABEL = {"kubernetes.io/metadata.name": "prod"}


def facts_with(tuning=Tuning(bandwidth="64Mi"), policies=(), served=True, ns_labels=NAME_LABEL, **kw):
    s = settings(tuning=tuning, connect_url="192.0.2.20:9185")
    facts = make_facts(*base_objects(), the_settings=s, policies=list(policies) if served else None,
                       policies_served=served, target_namespace_labels=ns_labels, **kw)
    facts.plan = plan(facts.source, ["db"], s, facts.target)
    facts.vm_plans = {v.vm: v for v in facts.plan.vms}
    return facts


def row(facts):
    return check_policy_choice(facts, facts.vm_plans["db"], "vm prod/db")


def test_no_rows_without_tuning_flags():
    facts = facts_with(tuning=None)
    assert check_tuning_cluster(facts) == [] and row(facts) is None


def test_api_served_and_ours_chosen():
    facts = facts_with()
    [api] = check_tuning_cluster(facts)
    assert (api.name, api.status) == ("migration-policy-api", PASS)
    choice = row(facts)
    assert choice.status == PASS and "--bandwidth 64Mi" in choice.reason


def test_crd_absent_is_a_failure_that_says_so():
    [api] = check_tuning_cluster(facts_with(served=False, policies_error="not found"))
    assert api.status == FAIL
    assert api.reason == ("the target serves no migrationpolicies.migrations.kubevirt.io (KubeVirt's MigrationPolicy "
                          "CRD is not installed), which --bandwidth 64Mi needs")


def test_unreadable_policies_are_unknown():
    facts = facts_with(served=None, policies_error="east refused to list migrationpolicies")
    facts.policies = None
    [api] = check_tuning_cluster(facts)
    assert api.status == UNKNOWN and row(facts).status == UNKNOWN


@pytest.mark.parametrize("gates, status", [(("MigrationStallDetection",), PASS), ((), FAIL)])
def test_max_downtime_needs_the_gate(gates, status):
    facts = facts_with(tuning=Tuning(max_downtime_ms=300))
    facts.clusters["target"].kubevirt = make_kubevirt(gates=gates)
    rows = {r.name: r for r in check_tuning_cluster(facts)}
    assert rows["max-downtime"].status == status


def test_a_policy_with_more_matching_labels_out_ranks_ours():
    ns_labels = {**NAME_LABEL, "team": "db", "env": "prod"}
    rival = {"metadata": {"name": "team-db"}, "spec": {"selectors": {
        "virtualMachineInstanceSelector": {LABEL_VM: "db"}, "namespaceSelector": ns_labels}}}
    elsewhere = {"metadata": {"name": "a-elsewhere"}, "spec": {"selectors": {
        "virtualMachineInstanceSelector": {LABEL_VM: "db"},
        "namespaceSelector": {"kubernetes.io/metadata.name": "other", "team": "db", "env": "prod"}}}}
    assert row(facts_with(policies=[elsewhere], ns_labels=ns_labels)).status == PASS  # does not match at all
    choice = row(facts_with(policies=[rival, elsewhere], ns_labels=ns_labels))
    assert choice.status == FAIL
    assert choice.reason.startswith("KubeVirt would apply MigrationPolicy team-db instead of ours (kubectl-dlm-")
    assert "it matches 4 label(s) (1 of the VMI, 3 of the namespace), ours 3 (2, 1)" in choice.reason
    assert choice.fix.startswith("narrow or remove MigrationPolicy team-db")


def test_tie_in_total_goes_to_vmi_labels_then_names():
    ours_id = facts_with().vm_plans["db"].migration_id
    # 3 labels, 1 of the VMI: ours has 3 with 2 of the VMI -> ours wins
    weaker = {"metadata": {"name": "aaa"}, "spec": {"selectors": {
        "virtualMachineInstanceSelector": {LABEL_VM: "db"},
        "namespaceSelector": {"kubernetes.io/metadata.name": "prod", "team": "db"}}}}
    assert row(facts_with(policies=[weaker], ns_labels={**NAME_LABEL, "team": "db"})).status == PASS
    # 3 labels, 2 of the VMI, a name before ours -> it wins the tie
    same = {"metadata": {"name": "aaa"}, "spec": {"selectors": {
        "virtualMachineInstanceSelector": {LABEL_VM: "db", LABEL_MIGRATION_ID: ours_id},
        "namespaceSelector": {"kubernetes.io/metadata.name": "prod"}}}}
    choice = row(facts_with(policies=[same]))
    assert choice.status == FAIL and "MigrationPolicy aaa instead of ours" in choice.reason


def test_namespace_without_its_name_label():
    choice = row(facts_with(ns_labels={}))
    assert choice.status == FAIL and "lacks the label kubernetes.io/metadata.name" in choice.reason


CONFIG = {"bandwidthPerMigration": "64Mi", "allowPostCopy": True}


def test_reporter_shows_the_resolved_configuration():
    out = io.StringIO()
    progress.Reporter("plain", out).configuration("db", "kubectl-dlm-abc", CONFIG)
    assert out.getvalue().endswith(" db: KubeVirt applies policy kubectl-dlm-abc: bandwidth 64Mi/s, post-copy on\n")
    out = io.StringIO()
    progress.Reporter("json", out).configuration("db", "kubectl-dlm-abc", CONFIG)
    event = json.loads(out.getvalue())
    assert {k: event[k] for k in ("vm", "event", "migrationPolicy", "migrationConfiguration")} == {
        "vm": "db", "event": "configuration", "migrationPolicy": "kubectl-dlm-abc", "migrationConfiguration": CONFIG}


def test_the_permission_table_has_the_policy_requests():
    """With the tuning flags: read back (get), which policy wins (list), apply (patch), remove (delete);
    without: cleanup/cancel's optional look for a leftover one (tests/e2e/test_rbac_audit.py proves both)."""
    from kubectl_dlm.checks.gather import required_access

    def policy_rows(facts):
        return sorted((a.verb, bool(a.optional)) for a in required_access(facts, {})["target"]
                      if a.resource == "migrationpolicies" and a.group == "migrations.kubevirt.io")

    assert policy_rows(facts_with()) == [("delete", False), ("get", False), ("list", False), ("patch", False)]
    assert policy_rows(facts_with(tuning=None)) == [("list", True)]
