"""--parallel auto (kubectl_dlm.parallelism): table-tested against KubeVirt v1.9.0's limits."""

from __future__ import annotations

import pytest

from kubectl_dlm import errors, parallelism


def kv(per_cluster=None, per_node=None):
    migrations = {}
    if per_cluster is not None:
        migrations["parallelMigrationsPerCluster"] = per_cluster
    if per_node is not None:
        migrations["parallelOutboundMigrationsPerNode"] = per_node
    return {"spec": {"configuration": {"migrations": migrations}}}


@pytest.mark.parametrize("kubevirt, expected", [
    (None, (5, 2)),  # pkg/virt-config/virt-config.go:44-45
    ({"spec": {}}, (5, 2)),
    (kv(per_cluster=20), (20, 2)),
    (kv(per_node=4), (5, 4)),
    (kv(0, 0), (0, 0)),
])
def test_limits_with_kubevirts_defaults(kubevirt, expected):
    assert parallelism.limits(kubevirt) == expected


@pytest.mark.parametrize("source, target, same, nodes, expected", [
    (None, None, False, ["n1", "n2", "n3"] * 3, 5),  # 9 VMs on 3 nodes: 6 by nodes, 5 by the target cluster
    (None, None, True, ["n1", "n2", "n3"] * 3, 2),  # same cluster: two VMIMs per VM -> 5 // 2
    (None, None, False, ["n1"] * 6, 2),  # all on one node: its outbound limit
    (kv(per_node=10), kv(per_cluster=3), False, ["n1"] * 6, 3),  # the source's node limit, the target's cluster limit
    (kv(per_cluster=50), None, False, ["n1"] * 6, 2),  # the source's cluster limit does not bind the receiving side
    (None, kv(per_cluster=50), False, ["n1", "n2"], 2),  # never more than the VMs
    (None, None, False, ["", "", ""], 3),  # unknown node: not capped by a node
    (None, kv(per_cluster=1), True, ["n1", "n2"], 1),  # 1 // 2 is still one at a time
])
def test_auto(source, target, same, nodes, expected):
    chosen, why = parallelism.auto(source, target, same, nodes)
    assert chosen == expected
    assert "parallelMigrationsPerCluster" in why and "parallelOutboundMigrationsPerNode" in why


@pytest.mark.parametrize("value, ok", [("auto", True), ("3", True), ("0", False), ("-1", False), ("many", False)])
def test_parallel_flag(cli, fixture_path, value, ok):
    result = cli("apply", "-f", str(fixture_path("pvc-volumes").parent), "--parallel", value)
    if ok:
        assert "--parallel" not in result.stderr  # accepted; what fails next is the directory, not the flag
    else:
        assert result.code == errors.USAGE
        assert f"'{value}' is neither a positive number nor 'auto'" in result.stderr
