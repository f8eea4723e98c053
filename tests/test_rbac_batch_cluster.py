"""A big batch's Secrets: read in one LIST where allowed, by name otherwise, and `kubectl dlm rbac` says so.

One VM's Secrets are read by name (a GET each), so RBAC can grant exactly those (resourceNames);
past refs.BY_NAME_MAX names per namespace the reader lists the kind once (kube.read_named), and
`rbac` prints that `list` as an optional rule. Against the real test API server: the request counts
of each way, and the audit log of a big-batch `render` and `check` judged against the rules `rbac`
printed for that batch (tests/harness/rbac_authorizer.py, as tests/e2e/test_rbac_audit.py does for
one VM): every request granted, the optional `list secrets` used on both clusters.
"""
from __future__ import annotations

import pytest
from ruamel.yaml import YAML

from kubectl_dlm import errors, kube, refs
from tests.harness.audit import AuditWindow
from tests.harness.rbac_authorizer import allowed_by, bootstrap_grants, grants, used_atoms
from tests.test_benchmarks import load_bench

SUBJECT = {"kind": "ServiceAccount", "name": "migrator", "namespace": "gitops"}
BATCH = refs.BY_NAME_MAX // 2 + 1  # two Secrets per VM: just past the threshold


@pytest.fixture(scope="module")
def bench():
    return load_bench()


def populate(bench, cluster, ns: str, count: int) -> None:
    """The benchmark's VMs (VM, VMI, DataVolume, two PVCs, two Secrets each), created with their status."""
    for i in range(count):
        for obj in bench.vm_objects(i, ns):
            bench.create(cluster, obj)


def test_few_names_are_read_by_name_many_in_one_list(clusters, namespaces, bench):
    ns = namespaces()
    populate(bench, clusters.source, ns, BATCH)
    clusters.source.request("POST", f"/api/v1/namespaces/{ns}/secrets", {  # not referenced: never kept
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "unrelated"}, "data": {"k": "dg=="}})
    cluster = kube.connect(str(clusters.kubeconfig), "source")
    names = [f"vm-{i:04d}-{suffix}" for i in range(BATCH) for suffix in ("ci", "ssh")] + ["missing"]

    few = kube.read_named(cluster, "Secret", ns, names[:refs.BY_NAME_MAX])
    assert sorted(few) == sorted(names[:refs.BY_NAME_MAX]) and cluster.requests == refs.BY_NAME_MAX  # a GET each
    cluster.requests = 0
    many = kube.read_named(cluster, "Secret", ns, names)
    assert sorted(many) == sorted(names[:-1]) and cluster.requests == 1  # one LIST page; "missing" is absent
    assert many["vm-0000-ci"]["data"] == {"userdata": "I2Nsb3VkLWNvbmZpZwo="} and many["vm-0000-ci"]["kind"] == "Secret"


def test_a_refused_list_falls_back_to_a_get_per_name(clusters, namespaces, bench, monkeypatch):
    """The test API server has no RBAC authorizer (only system:masters), so the 403 is the one
    kube.api_error makes of the server's Forbidden status, on the LIST only; the GETs are real."""
    from kubernetes.client.exceptions import ApiException

    ns = namespaces()
    populate(bench, clusters.source, ns, BATCH)
    cluster = kube.connect(str(clusters.kubeconfig), "source")
    listed = []

    def forbidden(cluster, kind, namespace=None, *args, **kwargs):
        listed.append(kind)
        exc = ApiException(status=403, reason="Forbidden")
        exc.body = '{"kind":"Status","message":"secrets is forbidden: User \\"migrator\\" cannot list resource"}'
        raise kube.api_error(cluster, exc, f"list secrets in namespace {namespace}")

    monkeypatch.setattr(kube, "list_objects", forbidden)
    names = [f"vm-{i:04d}-{suffix}" for i in range(BATCH) for suffix in ("ci", "ssh")]
    found = kube.read_named(cluster, "Secret", ns, names)
    assert listed == ["Secret"] and sorted(found) == sorted(names) and cluster.requests == len(names)


def printed_rules(cli, kubeconfig, *args) -> dict:
    out = {}
    for side in ("source", "target"):
        result = cli("rbac", *args, "--kubeconfig", kubeconfig, "--serviceaccount", "gitops:migrator", "--side", side)
        assert result.code == errors.OK, result.stderr
        out[side] = [d for d in YAML(typ="safe").load_all(result.stdout) if d]
    return out


def test_a_big_batch_lists_its_secrets_with_the_optional_rule_rbac_prints(clusters, namespaces, bench, cli):
    ns = namespaces("source", "target")
    populate(bench, clusters.source, ns, BATCH)
    kubeconfig = str(clusters.kubeconfig)
    where = ("-l", "app=bench", "--context", "source", "-n", ns, "--to-context", "target")
    rules = printed_rules(cli, kubeconfig, *where)
    for side in ("source", "target"):
        role = next(d for d in rules[side] if d["kind"] == "Role" and d["metadata"]["namespace"] == ns)
        assert {"apiGroups": [""], "resources": ["secrets"], "verbs": ["list"]} in role["rules"]
        named = next(r for r in role["rules"] if r["resources"] == ["secrets"] and "get" in r["verbs"])
        assert len(named["resourceNames"]) == 2 * BATCH  # the GETs by name stay: what goes without the list
    windows = {side: AuditWindow(clusters.by_name(side)) for side in rules}

    rendered = cli("render", *where, "--kubeconfig", kubeconfig)
    assert rendered.code == errors.OK, rendered.stderr
    checked = cli("check", *where, "--kubeconfig", kubeconfig)
    assert checked.code in (errors.OK, errors.REFUSED), checked.stderr  # no KubeVirt runs here: rows may fail
    assert "I2Nsb3VkLWNvbmZpZwo=" not in rendered.stderr + checked.stdout + checked.stderr  # only the bundle copies it

    for side, window in windows.items():
        granted = grants(rules[side], SUBJECT)
        requests = window.requests("kubectl-dlm/")
        denied = [r.describe() for r in requests if allowed_by(r, granted) is None and allowed_by(r, bootstrap_grants()) is None]
        assert not denied, f"not granted on the {side} cluster: {denied}"
        lists = [r for r in requests if (r.verb, r.resource, r.namespace) == ("list", "secrets", ns)]
        gets = [r for r in requests if (r.verb, r.resource) == ("get", "secrets")]
        assert lists and not gets, f"{side}: {len(lists)} lists, {len(gets)} gets of Secrets"
        used = set().union(*(used_atoms(r, g) for r in lists for g in allowed_by(r, granted)))
        assert {a[2:] for a in used} == {("list", "", "secrets")}
