"""`--parallel auto`: as many VMs at once as the clusters' own migration limits let run. Pure.

KubeVirt v1.9.0 enforces its limits where the target pod is created, i.e. in the cluster that
receives (pkg/virt-controller/watch/migration/migration.go:1346-1389, handleTargetPodCreation):
  * parallelMigrationsPerCluster caps the running migrations there (findRunningMigrations,
    migration.go:2441-2467: Running VMIMs and pending ones whose target pod exists). Within one
    cluster a DLM is two VMIMs (source and target), both counted, so it takes two slots;
  * parallelOutboundMigrationsPerNode caps migrations per source node (outboundMigrationsOnNode,
    migration.go:2423-2436). We apply the source cluster's value to the nodes the VMs run on.
A migration beyond the limits is not refused, it waits in Pending; with `--sync-timeout` ticking
that would look like a stall, so `auto` starts no more than the limits let run.
Defaults when the KubeVirt CR leaves them out: pkg/virt-config/virt-config.go:44-45.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Dict, Optional, Sequence, Tuple

DEFAULT_PER_CLUSTER = 5  # ParallelMigrationsPerClusterDefault, pkg/virt-config/virt-config.go:45
DEFAULT_PER_NODE = 2  # ParallelOutboundMigrationsPerNodeDefault, pkg/virt-config/virt-config.go:44


def limits(kubevirt: Optional[Dict[str, Any]]) -> Tuple[int, int]:
    """(parallelMigrationsPerCluster, parallelOutboundMigrationsPerNode) of a KubeVirt CR, defaults filled in."""
    migrations = (((kubevirt or {}).get("spec") or {}).get("configuration") or {}).get("migrations") or {}
    per_cluster = migrations.get("parallelMigrationsPerCluster")
    per_node = migrations.get("parallelOutboundMigrationsPerNode")
    return (DEFAULT_PER_CLUSTER if per_cluster is None else int(per_cluster),
            DEFAULT_PER_NODE if per_node is None else int(per_node))


def auto(source_kubevirt: Optional[Dict[str, Any]], target_kubevirt: Optional[Dict[str, Any]], same_cluster: bool,
         source_nodes: Sequence[str]) -> Tuple[int, str]:
    """(how many VMs at once, why) for VMs running on `source_nodes` (one entry per VM, "" if unknown)."""
    per_cluster, _ = limits(target_kubevirt)
    _, per_node = limits(source_kubevirt)
    cluster_cap = per_cluster // 2 if same_cluster else per_cluster
    by_node = Counter(node for node in source_nodes)
    node_cap = sum(min(count, per_node) if node else count for node, count in by_node.items())
    vms = len(source_nodes)
    chosen = max(1, min(cluster_cap, node_cap, vms))
    why = (f"parallelMigrationsPerCluster {per_cluster} on the target cluster"
           + (" (2 migrations per VM within one cluster)" if same_cluster else "")
           + f", parallelOutboundMigrationsPerNode {per_node} on {len([n for n in by_node if n])} source node(s), "
           f"{vms} VM(s)")
    return chosen, why
