"""`kubectl dlm rbac` against the KubeVirt tier (tests/kubevirt): the rules for a real VM, split by cluster."""

from __future__ import annotations

import pytest
from ruamel.yaml import YAML

from kubectl_dlm import errors

pytest.importorskip("tests.kubevirt.tier", reason="the KubeVirt tier (tests/kubevirt) is not in this tree")

from tests.kubevirt.tier import vm_manifest  # noqa: E402


def rules_by_role(text):
    docs = [d for d in YAML(typ="safe").load_all(text) if d]
    return {(d["kind"], d["metadata"].get("namespace", "")): d["rules"] for d in docs if "rules" in d}, docs


def test_rbac_for_a_cross_cluster_move(kubevirt, cli):
    clusters = kubevirt.clusters
    ns = kubevirt.namespaces("source", "target")
    kubevirt.run_vm("source", ns, vm_manifest("vm1", data_volume=True))
    args = ["rbac", "vm1", "--kubeconfig", str(clusters.kubeconfig), "--context", "source", "-n", ns,
            "--to-context", "target", "--serviceaccount", "gitops:migrator"]
    result = cli(*args, "--side", "source")
    assert result.code == errors.OK, result.stderr
    source, docs = rules_by_role(result.stdout)
    assert all(d["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "kubectl-dlm"} for d in docs)
    assert {"apiGroups": ["kubevirt.io"], "resources": ["virtualmachineinstancemigrations"],
            "verbs": ["delete", "get", "list", "patch", "watch"]} in source["Role", ns]
    assert source["ClusterRole", ""] == [  # the source node (check), KubeVirt CRs, migration IDs taken
        {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]},
        {"apiGroups": ["kubevirt.io"], "resources": ["kubevirts"], "verbs": ["list"]},
        {"apiGroups": ["kubevirt.io"], "resources": ["virtualmachineinstancemigrations"], "verbs": ["list"]}]
    assert source["Role", "kubevirt"] == [  # the CA exchange; virt-handler's metrics through the pod proxy
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "update"],
         "resourceNames": ["kubevirt-external-ca"]},
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "watch"], "resourceNames": ["kubevirt-ca"]},
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
        {"apiGroups": [""], "resources": ["pods/proxy"], "verbs": ["get"]}]
    assert "# source cluster source: Role" in result.stdout and "# target cluster" not in result.stdout

    result = cli(*args, "--side", "target")
    assert result.code == errors.OK, result.stderr
    target, _ = rules_by_role(result.stdout)
    assert {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get"], "resourceNames": [ns]} in \
        target["ClusterRole", ""]
    assert {"apiGroups": ["kubevirt.io"], "resources": ["virtualmachines"],
            "verbs": ["delete", "get", "list", "patch", "watch"]} in target["Role", ns]

    both = cli(*args)
    assert both.code == errors.OK and both.stdout == cli(*args).stdout  # deterministic
    assert both.stdout.count("kind: RoleBinding") == len([k for k in source if k[0] == "Role"]) + \
        len([k for k in target if k[0] == "Role"])
