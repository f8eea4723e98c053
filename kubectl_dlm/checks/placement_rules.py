"""The placement row (pure): can the target cluster schedule the receiving virt-launcher pod?

KubeVirt's migration controller builds the DLM target pod's placement from the source, all at
pkg/virt-controller/watch/migration/migration.go @v1.9.0 (MC):

* required node affinity `kubernetes.io/hostname NotIn [source node name]` (MC:913-935), so a
  same-cluster move needs a second node, and a target node whose hostname equals the source
  node's name (two clusters, each with a node01) is never chosen;
* the source node's `host-model-cpu.node.kubevirt.io/*`, `host-model-required-features.node.kubevirt.io/*`
  and `cpu-vendor.node.kubevirt.io/*` labels, copied into the VMI's sourceState.nodeSelectors
  (decentralized.go:142-146, MC:1175-1190);
* for a host-model CPU (KubeVirt's default, schema.go DefaultCPUModel) they become node selectors
  `cpu-model-migration.node.kubevirt.io/<model>` and `cpu-feature.node.kubevirt.io/<feature>`
  (MC:966-984, getHostCpuModelFromMap MC:2554-2578); a source node without a host-model label
  makes creating the pod fail ("unable to locate host cpu model");
* the source node's CPU vendor label, `cpu-vendor.node.kubevirt.io/<vendor>: "true"` (MC:986-1004);
* and as for every launcher pod `kubevirt.io/schedulable: "true"` plus the VMI's own nodeSelector
  (pkg/virt-controller/services/nodeselectorrenderer.go:39, template.go:862-866).

An unschedulable target pod is deleted after 300 s (MC:86) and the target migration fails.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

from kubectl_dlm.checks.facts import FAIL, PASS, UNKNOWN, Check, Facts
from kubectl_dlm.model import Obj, meta

HOSTNAME = "kubernetes.io/hostname"
SCHEDULABLE = "kubevirt.io/schedulable"
HOST_MODEL_CPU = "host-model-cpu.node.kubevirt.io/"
HOST_MODEL_FEATURES = "host-model-required-features.node.kubevirt.io/"
CPU_VENDOR = "cpu-vendor.node.kubevirt.io/"
MIGRATION_CPU = "cpu-model-migration.node.kubevirt.io/"
CPU_FEATURE = "cpu-feature.node.kubevirt.io/"
HOST_MODEL = "host-model"
SHOWN_NODES = 8


def cpu_model(template_spec: Obj, target_kubevirt: Optional[Obj]) -> str:
    """The receiving VMI's CPU model: the VM template's, else the target KubeVirt's default
    (spec.configuration.cpuModel), else host-model (staging/src/kubevirt.io/api/core/v1/schema.go:38)."""
    model = (((template_spec.get("domain") or {}).get("cpu") or {}).get("model"))
    if model:
        return model
    config = ((target_kubevirt or {}).get("spec") or {}).get("configuration") or {}
    return config.get("cpuModel") or HOST_MODEL


def source_selectors(source_node_labels: Dict[str, str]) -> Dict[str, str]:
    """What KubeVirt copies from the source node into sourceState.nodeSelectors (MC:1175-1190)."""
    return {k: v for k, v in source_node_labels.items()
            if k.startswith((HOST_MODEL_CPU, HOST_MODEL_FEATURES, CPU_VENDOR))}


def required_selectors(model: str, copied: Dict[str, str], vmi_selector: Dict[str, str]) -> Tuple[Dict[str, str], str]:
    """(node selector of the target pod, "" or why KubeVirt cannot build it)."""
    selector = {SCHEDULABLE: "true", **vmi_selector}
    if model == HOST_MODEL:
        found = [k for k in copied if k.startswith(HOST_MODEL_CPU)]
        if not found:
            return selector, (f"the source node has no {HOST_MODEL_CPU}<model> label, so KubeVirt cannot build the "
                              "host-model node selector (\"unable to locate host cpu model\")")
        for key in sorted(found):  # KubeVirt keeps the last one it iterates; nodes carry one
            selector[MIGRATION_CPU + key[len(HOST_MODEL_CPU):]] = copied[key]
        for key, value in copied.items():
            if key.startswith(HOST_MODEL_FEATURES):
                selector[CPU_FEATURE + key[len(HOST_MODEL_FEATURES):]] = value
    if not any(k.startswith(CPU_VENDOR) for k in selector):
        vendor = sorted(k for k in copied if k.startswith(CPU_VENDOR))
        if vendor:
            selector[vendor[0]] = "true"
    return selector, ""


def _ready(node: Obj) -> bool:
    for cond in (node.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return False


def why_not(node: Obj, selector: Dict[str, str], source_node: str) -> str:
    """"" when the node can take the receiving pod, else the first reason it cannot."""
    labels = meta(node).get("labels") or {}
    if (node.get("spec") or {}).get("unschedulable"):
        return "cordoned (spec.unschedulable)"
    if not _ready(node):
        return "not Ready"
    if HOSTNAME in labels and labels[HOSTNAME] == source_node:
        return f"its {HOSTNAME} is {source_node}, the source node's name, which KubeVirt excludes"
    for key in sorted(selector):
        if labels.get(key) != selector[key]:
            have = f" (has {labels[key]})" if key in labels else ""
            return f"lacks {key}={selector[key]}{have}"
    return ""


def check_placement(facts: Facts, vmi: Optional[Obj], template_spec: Obj, scope: str) -> Check:
    name = "placement"
    if vmi is None:
        return Check(name, UNKNOWN, "could not verify: the VM is not running (no source node)", "", scope)
    source_node = (vmi.get("status") or {}).get("nodeName") or ""
    if not source_node:
        return Check(name, UNKNOWN, "could not verify: the source VMI names no node (status.nodeName)", "", scope)
    if facts.target_nodes is None:
        return Check(name, UNKNOWN, f"could not verify: cannot list Nodes on the target: {facts.target_nodes_error}",
                     "use a context that may list nodes, or check by hand that a Ready node other than "
                     f"{source_node} carries the source node's CPU labels", scope)
    model = cpu_model(template_spec, facts.clusters["target"].kubevirt)
    vmi_selector = dict(template_spec.get("nodeSelector") or {})
    node_obj, node_error = facts.source_nodes.get(source_node, (None, "not read"))
    labels_known = node_obj is not None
    copied = source_selectors(meta(node_obj or {}).get("labels") or {})
    selector, broken = required_selectors(model, copied, vmi_selector)
    if labels_known and broken:
        return Check(name, FAIL, f"{broken} (source node {source_node}, CPU model {model})",
                     "check that virt-handler on the source node labels it (node-labeller), or give the VM an "
                     "explicit CPU model", scope)
    verdicts = [(meta(n).get("name", "?"), why_not(n, selector, source_node)) for n in facts.target_nodes]
    fits = sorted(n for n, why in verdicts if not why)
    wanted = ", ".join(f"{k}={v}" for k, v in sorted(selector.items()))
    if not fits:
        looked = "; ".join(f"{n}: {why}" for n, why in sorted(verdicts)[:SHOWN_NODES])
        more = f"; and {len(verdicts) - SHOWN_NODES} more" if len(verdicts) > SHOWN_NODES else ""
        same = " (same cluster: the receiving pod must run on another node than the source's, so it needs at " \
               "least two)" if facts.same_cluster else ""
        return Check(name, FAIL, f"no target node can take the receiving pod{same}; it needs a Ready node other "
                                 f"than {source_node} with {wanted}; looked at {len(verdicts)} node(s): "
                                 f"{looked or 'none'}{more}",
                     "add or uncordon a node with these labels on the target (a node with the same CPU model "
                     "and vendor), or give the VM a CPU model both clusters have", scope)
    if not labels_known:
        return Check(name, UNKNOWN, f"could not verify the CPU labels: cannot read the source node {source_node}: "
                                    f"{node_error}; {len(fits)} node(s) are Ready and not the source "
                                    f"node: {', '.join(fits[:SHOWN_NODES])}", "", scope)
    return Check(name, PASS, f"{len(fits)} target node(s) can take the receiving pod ({', '.join(fits[:SHOWN_NODES])}"
                             f"{', ...' if len(fits) > SHOWN_NODES else ''}), with {wanted}", "", scope)
