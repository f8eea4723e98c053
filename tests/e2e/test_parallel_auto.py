"""`--parallel auto` reads the limits from the clusters' KubeVirt CRs and the VMs' nodes (the KubeVirt tier)."""

from __future__ import annotations

import json

from kubectl_dlm import errors
from tests.e2e.conftest import start_vm

KUBEVIRT = "/apis/kubevirt.io/v1/namespaces/kubevirt/kubevirts/kubevirt"


def set_limits(cluster, migrations):
    cluster.request("PATCH", KUBEVIRT, {"spec": {"configuration": {"migrations": migrations}}},
                    content_type="application/merge-patch+json")


def test_parallel_auto_takes_the_target_clusters_limit(kubevirt, dlm):
    clusters = kubevirt.clusters
    ns = kubevirt.namespaces("source", "target")
    for name in ("vm1", "vm2", "vm3"):
        start_vm(kubevirt, "source", ns, name)
    nodes = {kubevirt.get("source", "vmi", ns, n)["status"]["nodeName"] for n in ("vm1", "vm2", "vm3")}
    set_limits(clusters.target, {"parallelMigrationsPerCluster": 2})
    set_limits(clusters.source, {"parallelMigrationsPerCluster": 50, "parallelOutboundMigrationsPerNode": 7})
    try:
        code, out, err = dlm("migrate", "vm1", "vm2", "vm3", "--context", "source", "-n", ns, "--to-context", "target",
                             "--parallel", "auto", "--dry-run=server", "-o", "json")
    finally:
        set_limits(clusters.target, {"parallelMigrationsPerCluster": None})
        set_limits(clusters.source, {"parallelMigrationsPerCluster": None, "parallelOutboundMigrationsPerNode": None})
    assert code == errors.OK, out + err
    notices = [json.loads(line)["message"] for line in out.splitlines()
               if line.startswith("{") and json.loads(line).get("event") == "notice"]
    assert (f"--parallel auto: 2 at a time (parallelMigrationsPerCluster 2 on the target cluster, "
            f"parallelOutboundMigrationsPerNode 7 on {len(nodes)} source node(s), 3 VM(s))") in notices
