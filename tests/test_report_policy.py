"""`kubectl dlm report` keeps a tuned attempt's leftover MigrationPolicy: it is cluster-scoped on the
target, so nothing in the namespaces would show the support engineer that it is still there."""

from __future__ import annotations

import tarfile

from ruamel.yaml import YAML

from kubectl_dlm import errors

POLICIES = "/apis/migrations.kubevirt.io/v1alpha1/migrationpolicies"


def rendered_policy(cli, to_namespace: str) -> dict:
    """The MigrationPolicy exactly as `render --bandwidth` writes it for the built-in example."""
    result = cli("render", "--example", "--bandwidth", "64Mi", "--to-namespace", to_namespace)
    assert result.code == errors.OK, result.stderr
    docs = [d for d in YAML(typ="safe").load_all(result.stdout) if d]
    return next(d for d in docs if d["kind"] == "MigrationPolicy")


def test_report_archives_our_leftover_policy_for_this_namespace_only(clusters, namespaces, cli, tmp_path):
    src, dst, elsewhere = namespaces("source"), namespaces("target"), namespaces("target")
    ours, other = rendered_policy(cli, dst), rendered_policy(cli, elsewhere)
    assert ours["metadata"]["name"] != other["metadata"]["name"]
    for policy in (ours, other):
        clusters.target.request("POST", POLICIES, policy)
    try:
        out = tmp_path / "report.tar.gz"
        result = cli("report", "inventory-db", "--kubeconfig", str(clusters.kubeconfig), "--context", "source",
                     "-n", src, "--to-context", "target", "--to-namespace", dst, "--output-file", str(out))
        assert result.code == errors.OK, result.stderr
        with tarfile.open(out) as tar:
            names = set(tar.getnames())
            kept = tar.extractfile(f"dlm-report-inventory-db/target/migrationpolicy-{ours['metadata']['name']}.yaml")
            archived = YAML(typ="safe").load(kept.read().decode())
        assert archived["spec"] == ours["spec"]
        assert not any(other["metadata"]["name"] in n for n in names), names
    finally:
        for policy in (ours, other):
            clusters.target.request("DELETE", f"{POLICIES}/{policy['metadata']['name']}")
