"""kubectl_dlm.rbac: the permission table `check` asks about, as Roles/ClusterRoles and bindings."""

from __future__ import annotations

import pytest
from ruamel.yaml import YAML

from kubectl_dlm import errors, rbac
from kubectl_dlm.checks.facts import Access
from kubectl_dlm.render import Renderer
from tests.harness.audit import Request
from tests.harness.rbac_authorizer import rule_allows

KV = "kubevirt.io"
TABLE = {
    "source": [Access("get", "virtualmachines", KV, "prod"), Access("watch", "virtualmachineinstances", KV, "prod"),
               Access("patch", "virtualmachineinstancemigrations", KV, "prod"),
               Access("delete", "virtualmachineinstancemigrations", KV, "prod"),
               Access("list", "kubevirts", KV), Access("get", "configmaps", "", "kubevirt", "kubevirt-ca")],
    "target": [Access("get", "namespaces", "", "", "prod-b"), Access("patch", "virtualmachines", KV, "prod-b"),
               Access("patch", "configmaps", "", "kubevirt", "kubevirt-external-ca")],
}


def allows(rule, access: Access) -> bool:
    resource, _, subresource = access.resource.partition("/")
    return rule_allows(rule, Request(access.verb, resource, subresource, access.group, access.namespace, access.name))


@pytest.mark.parametrize("rule, request_, allowed", [
    ({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}, Request("get", "pods", "proxy", "", "kv", "p"), False),
    ({"verbs": ["get"], "apiGroups": [""], "resources": ["pods/proxy"]}, Request("get", "pods", "proxy", "", "kv", "p"), True),
    ({"verbs": ["get"], "apiGroups": [""], "resources": ["*/proxy"]}, Request("get", "pods", "proxy", "", "kv", "p"), True),
    ({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}, Request("delete", "vms", "", KV, "ns", "x"), True),
    ({"verbs": ["get"], "apiGroups": [KV], "resources": ["vms"]}, Request("get", "vms", "", "", "ns", "x"), False),
    ({"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"], "resourceNames": ["a"]},
     Request("get", "secrets", "", "", "ns", "b"), False),
    ({"verbs": ["list"], "apiGroups": [""], "resources": ["secrets"], "resourceNames": ["a"]},
     Request("list", "secrets", "", "", "ns", ""), False),  # a list has no name: resourceNames never match it
    ({"verbs": ["get"], "nonResourceURLs": ["/apis/*"]}, Request("get", path="/apis/kubevirt.io/v1"), True),
    ({"verbs": ["get"], "nonResourceURLs": ["/apis"]}, Request("get", path="/apis/kubevirt.io"), False),
])
def test_rule_matching_as_kubernetes_rbac(rule, request_, allowed):
    assert rule_allows(rule, request_) is allowed


def test_objects_named_with_the_same_verbs_share_a_rule():
    table = [Access("get", "secrets", "", "prod", "b"), Access("get", "secrets", "", "prod", "a"),
             Access("get", "secrets", "", "prod", "c"), Access("patch", "secrets", "", "prod", "c"),
             Access("list", "secrets", "", "prod")]
    assert rbac.rules(table)["prod"] == [
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"], "resourceNames": ["a", "b"]},
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "patch"], "resourceNames": ["c"]},
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["list"]},
    ]


def documents(items):
    renderer = Renderer()
    return [(item.side, YAML(typ="safe").load(renderer.render_item(item).text)) for item in items]


@pytest.mark.parametrize("same_cluster", [False, True])
def test_every_access_is_granted_and_every_rule_is_used(same_cluster):
    who = rbac.Subject("ServiceAccount", "migrator", "gitops")
    docs = documents(rbac.items(TABLE, who, "kubectl-dlm", same_cluster))
    sides = {"source": TABLE["source"] + TABLE["target"]} if same_cluster else TABLE
    for side, accesses in sides.items():
        roles = {(d["kind"], d["metadata"].get("namespace", "")): d for s, d in docs if s == side and "rules" in d}
        bindings = [d for s, d in docs if s == side and "roleRef" in d]
        used = set()
        for access in accesses:
            role = roles["Role", access.namespace] if access.namespace else roles["ClusterRole", ""]
            hits = [i for i, rule in enumerate(role["rules"]) if allows(rule, access)]
            assert hits, f"{access.describe()} is not granted on the {side} cluster"
            used.update((id(role), i) for i in hits)
        assert used == {(id(r), i) for r in roles.values() for i in range(len(r["rules"]))}  # nothing unused
        assert sorted((b["roleRef"]["kind"], b["metadata"].get("namespace", "")) for b in bindings) == sorted(roles)
        for b in bindings:
            assert b["subjects"] == [{"kind": "ServiceAccount", "name": "migrator", "namespace": "gitops"}]
            assert b["roleRef"]["name"] == "kubectl-dlm" and b["kind"] == b["roleRef"]["kind"] + "Binding"


def test_rules_merge_verbs_and_keep_names():
    assert rbac.rules(TABLE["source"]) == {
        "": [{"apiGroups": [KV], "resources": ["kubevirts"], "verbs": ["list"]}],
        "kubevirt": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"], "resourceNames": ["kubevirt-ca"]}],
        "prod": [{"apiGroups": [KV], "resources": ["virtualmachineinstancemigrations"], "verbs": ["delete", "patch"]},
                 {"apiGroups": [KV], "resources": ["virtualmachineinstances"], "verbs": ["watch"]},
                 {"apiGroups": [KV], "resources": ["virtualmachines"], "verbs": ["get"]}],
    }


@pytest.mark.parametrize("flags, expected", [
    ({"user": "alice"}, rbac.Subject("User", "alice")),
    ({"group": "ops"}, rbac.Subject("Group", "ops")),
    ({"serviceaccount": "gitops:migrator"}, rbac.Subject("ServiceAccount", "migrator", "gitops")),
])
def test_subject(flags, expected):
    assert rbac.subject(**flags) == expected


@pytest.mark.parametrize("flags, message", [
    ({}, "give exactly one of --user, --group, --serviceaccount"),
    ({"user": "a", "group": "b"}, "give exactly one of --user, --group, --serviceaccount"),
    ({"serviceaccount": "migrator"}, "--serviceaccount 'migrator' is not NAMESPACE:NAME"),
])
def test_bad_subject(flags, message):
    with pytest.raises(errors.UsageError) as raised:
        rbac.subject(**flags)
    assert raised.value.message == message


def test_rbac_command_needs_a_subject_before_reading_a_cluster(cli):
    result = cli("rbac", "vm1", "--kubeconfig", "/nonexistent")
    assert result.code == errors.USAGE
    assert result.stderr.splitlines()[0] == "error: give exactly one of --user, --group, --serviceaccount"
