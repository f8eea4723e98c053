"""`kubectl dlm check` on KubeVirt's own components: it passes as the tier is installed (the
synchronization controllers on this machine's network address, each cluster on the port its
KubeVirt CR names), and fails for the reasons a real installation gives it."""
from __future__ import annotations

import json

import pytest

from kubectl_dlm import errors
from tests.harness.apiserver import ApiError
from tests.harness.kubevirt import join_host_port
from tests.kubevirt.played import wait_for
from tests.kubevirt.test_dlm_e2e import dlm, start_vm  # noqa: F401  (dlm: the fixture)
from tests.kubevirt.test_live import vm_manifest

KUBEVIRT = "/apis/kubevirt.io/v1/namespaces/kubevirt/kubevirts/kubevirt"


def check(dlm, ns: str, *extra: str):
    code, out, err = dlm("check", "vm1", "--context", "source", "-n", ns, *extra, "-o", "json")
    assert code in (errors.OK, errors.REFUSED), out + err
    return code, json.loads(out)["checks"]


def rows(checks, status: str) -> dict[tuple[str, str], str]:
    return {(c["name"], c["scope"]): c["reason"] for c in checks if c["status"] == status}


def published(cluster) -> list[str] | None:
    return cluster.request("GET", KUBEVIRT).get("status", {}).get("synchronizationAddresses")


def test_check_passes_across_the_clusters(kubevirt_clusters, kv_namespace, dlm):
    start_vm(kubevirt_clusters, kv_namespace)
    code, checks = check(dlm, kv_namespace, "--to-context", "target")
    assert code == errors.OK, rows(checks, "fail")
    assert not rows(checks, "fail") and not rows(checks, "unknown"), checks
    sync = {scope: reason for (name, scope), reason in rows(checks, "pass").items() if name == "sync-address"}
    for c in kubevirt_clusters:
        install = kubevirt_clusters.kubevirt[c.name]
        address = join_host_port(install.sync_ip, install.sync_port)
        assert published(c) == [address]
        assert any(address in reason for reason in sync.values()), sync
    assert kubevirt_clusters.kubevirt["source"].sync_port != kubevirt_clusters.kubevirt["target"].sync_port


def test_check_passes_within_one_cluster(kubevirt_clusters, kv_namespace, dlm):
    start_vm(kubevirt_clusters, kv_namespace)
    code, checks = check(dlm, kv_namespace, "--to-namespace", kv_namespace + "-to")
    assert rows(checks, "fail") == {
        ("target-namespace", "cluster source (target)"): f"namespace {kv_namespace}-to does not exist on the target"}
    kubevirt_clusters.source.create_namespace(kv_namespace + "-to")
    try:
        code, checks = check(dlm, kv_namespace, "--to-namespace", kv_namespace + "-to")
    finally:
        kubevirt_clusters.source.delete_namespace(kv_namespace + "-to")
    assert code == errors.OK and not rows(checks, "fail"), checks


@pytest.fixture
def gate_off_on_target(kubevirt_clusters):
    install = kubevirt_clusters.kubevirt["target"]
    install.disable_feature_gate()
    yield install
    install.restore()
    assert published(kubevirt_clusters.target) == [join_host_port(install.sync_ip, install.sync_port)]


def test_check_fails_when_dlm_is_off_on_the_target(kubevirt_clusters, kv_namespace, dlm, gate_off_on_target):
    """The admin turned the gate off on the target: virt-operator removed the synchronization
    controller and its address (core.go:812-814); check names both."""
    assert published(kubevirt_clusters.target) is None
    start_vm(kubevirt_clusters, kv_namespace)
    code, checks = check(dlm, kv_namespace, "--to-context", "target")
    assert code == errors.REFUSED
    failed = rows(checks, "fail")
    assert failed[("dlm-enabled", "cluster target (target)")].startswith("DLM is off: KubeVirt kubevirt/kubevirt lists "
                                                                         "DecentralizedLiveMigration in "), failed
    assert rows(checks, "unknown")[("sync-address", "cluster target (target)")] == (
        "could not verify: no synchronization address is published (see dlm-enabled)")
    # the real virt-api read the CR too: it now refuses a receiving VM on that cluster
    wait_for("virt-api to see the gate off", lambda: _denied(kubevirt_clusters.target, kv_namespace), timeout=30)


def _denied(cluster, ns: str) -> str | None:
    """virt-api's answer to a receiving VM (runStrategy WaitAsReceiver, dry run): denied while the
    gate is off (vms-admitter.go:249-258)."""
    vm = vm_manifest("probe", "WaitAsReceiver")
    try:
        cluster.request("POST", f"/apis/kubevirt.io/v1/namespaces/{ns}/virtualmachines?dryRun=All", vm)
    except ApiError as e:
        return str(e) if "DecentralizedLiveMigration feature gate is not enabled" in str(e) else None
    return None
