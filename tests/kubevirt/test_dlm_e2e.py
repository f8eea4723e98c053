"""`kubectl dlm` end to end on KubeVirt's own virt-api, virt-controller and synchronization-controller;
virt-handler (tests/kubevirt/handler.py), the scheduler and kubelet are played.

Each test asserts the end state KubeVirt's controllers leave on both clusters, not only the plugin's
exit code. A test that also runs on the simulator tier (tests/e2e) says so.
"""
from __future__ import annotations

import pytest

from kubectl_dlm import cli, errors
from tests.harness.apiserver import ApiError
from tests.kubevirt.played import wait_for
from tests.kubevirt.test_live import vm_manifest

# --skip-checks: the synchronization controllers here listen on loopback addresses (one machine),
# which `check` rightly fails for a real pair of clusters (checks/cluster_rules.py classify_address).
FOLLOW = ("--sync-timeout", "60", "--timeout", "60", "-o", "plain", "--skip-checks")
KV = "/apis/kubevirt.io/v1/namespaces/{ns}/{kind}"


@pytest.fixture
def dlm(kubevirt_clusters, handlers, capsys):
    def run(*args: str):
        code = cli.run(list(args) + ["--kubeconfig", str(kubevirt_clusters.kubeconfig)])
        out = capsys.readouterr()
        return code, out.out, out.err
    return run


def get(cluster, ns: str, kind: str, name: str = ""):
    try:
        return cluster.request("GET", KV.format(ns=ns, kind=kind) + (f"/{name}" if name else ""))
    except ApiError as e:
        if e.status == 404:
            return None
        raise


def dump(kubevirt_clusters, ns: str) -> str:
    """For an assertion message: the launcher pods and VMIs of both clusters in this namespace."""
    import json
    lines = []
    for c in kubevirt_clusters:
        for p in c.request("GET", f"/api/v1/namespaces/{ns}/pods")["items"]:
            lines.append(f"{c.name} pod {p['metadata']['name']} node={p['spec'].get('nodeName')} "
                         f"status={json.dumps(p.get('status', {}))[:600]} nodeSelector={p['spec'].get('nodeSelector')} "
                         f"affinity={json.dumps(p['spec'].get('affinity'))}")
        for v in get(c, ns, "virtualmachineinstances")["items"]:
            lines.append(f"{c.name} vmi {v['metadata']['name']} {json.dumps(v.get('status', {}))[:1500]}")
    return "\n" + "\n".join(lines)


def start_vm(kubevirt_clusters, ns: str, name: str = "vm1", cluster: str = "source") -> dict:
    """Create a VM; the real virt-controller makes its VMI and launcher pod, the played scheduler,
    kubelet and virt-handler take it to Running."""
    c = kubevirt_clusters.by_name(cluster)
    c.request("POST", KV.format(ns=ns, kind="virtualmachines"), vm_manifest(name, "Always"))
    return wait_for(f"VMI {name} Running with LiveMigratable", lambda: (v := get(c, ns, "virtualmachineinstances", name))
                    and v.get("status", {}).get("phase") == "Running"
                    and any(x["type"] == "LiveMigratable" and x["status"] == "True"
                            for x in v["status"].get("conditions", [])) and v)


def assert_moved(kubevirt_clusters, src_cluster: str, src: str, dst_cluster: str, dst: str, name: str = "vm1"):
    """What KubeVirt leaves after a successful DLM: the receiving VM runs with its run strategy
    restored (pkg/virt-controller/watch/vm/vm.go restore-run-strategy), its VMI Running on its node
    with the migration completed; the source VM halted and its VMI gone (vm.go: an Always source
    whose decentralized migration completed is halted), the source VMIM deleted with its VMI
    (watch/migration/migration.go) or Succeeded."""
    s, d = kubevirt_clusters.by_name(src_cluster), kubevirt_clusters.by_name(dst_cluster)
    vm = wait_for("the receiving VM's runStrategy restored", lambda: (v := get(d, dst, "virtualmachines", name))
                  and v["spec"].get("runStrategy") == "Always" and v, timeout=30)
    assert vm["spec"]["runStrategy"] == "Always"
    vmi = get(d, dst, "virtualmachineinstances", name)
    assert vmi["status"]["phase"] == "Running"
    ms = vmi["status"]["migrationState"]
    assert ms["completed"] is True and not ms.get("failed")
    assert ms["targetNode"] == vmi["status"]["nodeName"] != ms["sourceNode"]
    assert ms["targetNodeAddress"] and ms["startTimestamp"] and ms["endTimestamp"]
    assert ms["targetNodeDomainReadyTimestamp"]
    assert "kubevirt.io/create-migration-target" not in (vmi["metadata"].get("annotations") or {})
    wait_for("the source VM halted", lambda: get(s, src, "virtualmachines", name)["spec"].get("runStrategy") == "Halted",
             timeout=30)
    wait_for("the source VMI gone", lambda: get(s, src, "virtualmachineinstances", name) is None, timeout=30)
    for vmim in get(s, src, "virtualmachineinstancemigrations")["items"]:
        assert vmim["status"]["phase"] == "Succeeded", vmim["status"]
    target_vmims = get(d, dst, "virtualmachineinstancemigrations")["items"]
    assert [m["status"]["phase"] for m in target_vmims if m["spec"].get("receive")] == ["Succeeded"]


def test_cross_cluster_move(kubevirt_clusters, kv_namespace, dlm):
    """Also on the simulator tier: tests/e2e/test_migrate.py::test_cross_cluster_move."""
    ns = kv_namespace
    start_vm(kubevirt_clusters, ns)
    code, out, err = dlm("migrate", "vm1", "--context", "source", "-n", ns, "--to-context", "target", *FOLLOW)
    assert code == errors.OK, out + err + dump(kubevirt_clusters, ns)
    assert "vm1: succeeded" in out
    assert_moved(kubevirt_clusters, "source", ns, "target", ns)
