"""The placement row (kubectl_dlm.checks.placement_rules), pure: Nodes in, one row out.

The node selectors are the ones KubeVirt's migration controller puts on the DLM target pod
(pkg/virt-controller/watch/migration/migration.go:913-1004 @v1.9.0, read in placement_rules).
"""

from __future__ import annotations

from typing import Any, Dict, Optional

import pytest

from kubectl_dlm.checks import placement_rules as pr
from tests.test_checks import make_facts, make_kubevirt, make_vm, make_vmi

SCOPE = "vm prod/db"
SKYLAKE = {"host-model-cpu.node.kubevirt.io/Skylake-Client-IBRS": "true",
           "host-model-required-features.node.kubevirt.io/invtsc": "true",
           "cpu-vendor.node.kubevirt.io/Intel": "true",
           "cpu-model.node.kubevirt.io/Skylake-Client-IBRS": "true"}  # not copied by KubeVirt
SKYLAKE_TARGET = {"kubevirt.io/schedulable": "true",
                  "cpu-model-migration.node.kubevirt.io/Skylake-Client-IBRS": "true",
                  "cpu-feature.node.kubevirt.io/invtsc": "true",
                  "cpu-vendor.node.kubevirt.io/Intel": "true"}


def node(name: str, labels: Dict[str, str], ready: bool = True, cordoned: bool = False,
         hostname: Optional[str] = None) -> Dict[str, Any]:
    labels = {"kubernetes.io/hostname": hostname or name, **labels}
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels},
            "spec": {"unschedulable": True} if cordoned else {},
            "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def running_vmi(node_name: str = "west-node01"):
    vmi = make_vmi()
    vmi["status"]["nodeName"] = node_name
    return vmi


def facts_with(target_nodes, source_node=None, same_cluster=False, **kw):
    source = source_node if source_node is not None else node("west-node01", SKYLAKE)
    return make_facts(make_vm(), running_vmi(), same_cluster=same_cluster, target_nodes=target_nodes,
                      source_nodes={"west-node01": (source, "")}, **kw)


def row(facts, template=None):
    return pr.check_placement(facts, running_vmi(), template or {}, SCOPE)


def test_selectors_are_the_ones_the_migration_controller_builds_for_host_model():
    copied = pr.source_selectors(SKYLAKE)
    assert "cpu-model.node.kubevirt.io/Skylake-Client-IBRS" not in copied
    assert pr.required_selectors("host-model", copied, {}) == (SKYLAKE_TARGET, "")


def test_a_named_cpu_model_keeps_only_the_vendor():
    assert pr.required_selectors("Haswell", pr.source_selectors(SKYLAKE), {"zone": "a"}) == (
        {"kubevirt.io/schedulable": "true", "zone": "a", "cpu-vendor.node.kubevirt.io/Intel": "true"}, "")


def test_cpu_model_comes_from_the_template_then_the_target_kubevirt_then_host_model():
    kv = make_kubevirt()
    assert pr.cpu_model({}, kv) == "host-model"
    kv["spec"]["configuration"]["cpuModel"] = "Haswell"
    assert pr.cpu_model({}, kv) == "Haswell"
    assert pr.cpu_model({"domain": {"cpu": {"model": "EPYC"}}}, kv) == "EPYC"


def test_passes_naming_the_nodes_that_fit():
    r = row(facts_with([node("east-node01", SKYLAKE_TARGET), node("east-node02", SKYLAKE_TARGET)]))
    assert r.status == "pass"
    assert r.reason.startswith("2 target node(s) can take the receiving pod (east-node01, east-node02), with ")
    assert "cpu-model-migration.node.kubevirt.io/Skylake-Client-IBRS=true" in r.reason


@pytest.mark.parametrize("nodes, why", [
    ([node("east-node01", {**SKYLAKE_TARGET, "cpu-feature.node.kubevirt.io/invtsc": "false"})],
     "east-node01: lacks cpu-feature.node.kubevirt.io/invtsc=true (has false)"),
    ([node("east-node01", {k: v for k, v in SKYLAKE_TARGET.items() if "vendor" not in k})],
     "east-node01: lacks cpu-vendor.node.kubevirt.io/Intel=true"),
    ([node("east-node01", SKYLAKE_TARGET, cordoned=True)], "east-node01: cordoned (spec.unschedulable)"),
    ([node("east-node01", SKYLAKE_TARGET, ready=False)], "east-node01: not Ready"),
    ([node("node01", SKYLAKE_TARGET, hostname="west-node01")],
     "node01: its kubernetes.io/hostname is west-node01, the source node's name, which KubeVirt excludes"),
    ([], "none"),
])
def test_fails_naming_the_missing_label_and_the_nodes_looked_at(nodes, why):
    r = row(facts_with(nodes))
    assert r.status == "fail"
    assert r.reason.endswith(f"looked at {len(nodes)} node(s): {why}")
    assert "it needs a Ready node other than west-node01 with " in r.reason


def test_same_cluster_with_one_node_fails_it_needs_two():
    only = node("west-node01", {**SKYLAKE, **SKYLAKE_TARGET})
    r = row(facts_with([only], same_cluster=True))
    assert r.status == "fail"
    assert "same cluster: the receiving pod must run on another node than the source's, so it needs at least two" \
        in r.reason
    assert r.reason.endswith("west-node01: its kubernetes.io/hostname is west-node01, the source node's name, "
                             "which KubeVirt excludes")
    two = [only, node("west-node02", {**SKYLAKE, **SKYLAKE_TARGET})]
    assert row(facts_with(two, same_cluster=True)).status == "pass"


def test_source_node_without_host_model_label_fails_as_kubevirt_would():
    r = row(facts_with([node("east-node01", SKYLAKE_TARGET)], source_node=node("west-node01", {})))
    assert r.status == "fail"
    assert "no host-model-cpu.node.kubevirt.io/<model> label" in r.reason


def test_nodes_that_cannot_be_listed_are_unknown_never_pass():
    r = row(facts_with(None, target_nodes_error="nodes is forbidden"))
    assert (r.status, r.reason) == ("unknown", "could not verify: cannot list Nodes on the target: nodes is forbidden")


def test_unreadable_source_node_leaves_the_cpu_labels_unverified():
    facts = facts_with([node("east-node01", {"kubevirt.io/schedulable": "true"})])
    facts.source_nodes = {"west-node01": (None, "nodes \"west-node01\" is forbidden")}
    r = row(facts)
    assert r.status == "unknown"
    assert r.reason.startswith("could not verify the CPU labels: cannot read the source node west-node01")


def test_not_running_is_unknown():
    assert pr.check_placement(facts_with([]), None, {}, SCOPE).status == "unknown"
