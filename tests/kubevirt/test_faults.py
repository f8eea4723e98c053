"""Faults on KubeVirt's real synchronization controllers (tests/harness/kubevirt.py KubeVirtInstall:
block_sync, move_sync_leader; disable_feature_gate is test_check.py's), each seen where a peer sees
it: at the address the KubeVirt CR publishes, and through `kubectl dlm migrate`."""
from __future__ import annotations

import socket
import ssl

import pytest

from kubectl_dlm import errors
from tests.harness.kubevirt import NS, SYNC, join_host_port
from tests.kubevirt.test_dlm_e2e import FOLLOW, assert_moved, dlm, dump, get, start_vm  # noqa: F401 (dlm: fixture)
from tests.kubevirt.tier import Tier

KUBEVIRT = f"/apis/kubevirt.io/v1/namespaces/{NS}/kubevirts/kubevirt"


def published(cluster) -> list[str]:
    return cluster.request("GET", KUBEVIRT)["status"].get("synchronizationAddresses") or []


def dial(address: str) -> str:
    """What a peer meets at address: "serving" (a TLS handshake completes), "refused" or "timeout"."""
    host, port = address.rsplit(":", 1)
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=3) as s, ctx.wrap_socket(s):
            return "serving"
    except ConnectionRefusedError:
        return "refused"
    except (socket.timeout, TimeoutError):
        return "timeout"


@pytest.fixture
def target_install(kubevirt_clusters):
    install = kubevirt_clusters.kubevirt["target"]
    yield install
    install.restore()


@pytest.mark.parametrize("mode", ["refused", "timeout"])
def test_block_sync_and_unblock(kubevirt_clusters, target_install, mode):
    [address] = published(kubevirt_clusters.target)
    assert dial(address) == "serving"
    target_install.block_sync(mode)
    assert dial(address) == mode
    assert published(kubevirt_clusters.target) == [address]   # its Pod and Lease are still there
    target_install.unblock_sync()
    assert dial(address) == "serving"
    assert published(kubevirt_clusters.target) == [address]


def test_blocked_target_sync_controller_times_the_migration_out_with_the_cause(kubevirt_clusters, kv_namespace, dlm,
                                                                               target_install):
    """Also in tests/e2e/test_migrate.py::test_stall_ends_in_sync_timeout_with_the_cause.
    The real source synchronization controller cannot dial the target's and says so on the source VMI."""
    ns = kv_namespace
    start_vm(kubevirt_clusters, ns)
    target_install.block_sync("refused")
    code, out, err = dlm("migrate", "vm1", "--context", "source", "-n", ns, "--to-context", "target",
                         "--sync-timeout", "10", "--timeout", "60", "-o", "plain")
    assert code == errors.TIMED_OUT, out + err + dump(kubevirt_clusters, ns)
    assert "did not connect within 10s" in err and err.startswith("error: vm1: timed out: "), err
    assert "connection refused" in err, err   # KubeVirt's own dial error, as the source VMI carries it
    assert "kubectl dlm cancel vm1" in err
    assert get(kubevirt_clusters.source, ns, "virtualmachineinstancemigrations")["items"]   # left as it is
    target_install.unblock_sync()
    code, out, err = dlm("migrate", "vm1", "--context", "source", "-n", ns, "--to-context", "target", *FOLLOW)
    assert code == errors.OK, out + err + dump(kubevirt_clusters, ns)
    assert_moved(kubevirt_clusters, "source", ns, "target", ns)


def test_move_sync_leader_publishes_the_new_address(kubevirt_clusters, kv_namespace, dlm):
    install = kubevirt_clusters.kubevirt["target"]
    [old] = published(kubevirt_clusters.target)
    old_pod = install.components[SYNC].pod_name
    new = install.move_sync_leader()
    assert new != old and published(kubevirt_clusters.target) == [new]
    assert new == join_host_port(install.sync_ip, install.sync_port)
    assert install.lease_holder(SYNC) == install.components[SYNC].pod_name != old_pod
    assert dial(new) == "serving" and dial(old) == "refused"
    # and a migration dials the new one (the target VMIM publishes it, the plugin sends it)
    ns = kv_namespace
    start_vm(kubevirt_clusters, ns)
    code, out, err = dlm("migrate", "vm1", "--context", "source", "-n", ns, "--to-context", "target", *FOLLOW)
    assert code == errors.OK, out + err + dump(kubevirt_clusters, ns)
    [sent] = get(kubevirt_clusters.source, ns, "virtualmachineinstancemigrations")["items"] or [None]
    if sent is not None:   # KubeVirt may have deleted it with the source VMI already
        assert sent["spec"]["sendTo"]["connectURL"] == new
    assert_moved(kubevirt_clusters, "source", ns, "target", ns)


def test_the_tiers_faults_put_the_synchronization_controllers_back(kubevirt_clusters, node_sides, cdis, handlers):
    """tier.Faults names these knobs for tests/e2e; Tier.close() (after each test) undoes them."""
    tier = Tier(kubevirt_clusters, node_sides, cdis, handlers, stem="sync-close")
    [source_address] = published(kubevirt_clusters.source)
    [target_address] = published(kubevirt_clusters.target)
    tier.faults.block_sync("target", "timeout")
    tier.faults.disable_feature_gate("source")
    assert dial(target_address) == "timeout" and dial(source_address) == "refused"
    assert published(kubevirt_clusters.source) == []
    tier.close()
    assert published(kubevirt_clusters.source) == [source_address] and dial(source_address) == "serving"
    assert published(kubevirt_clusters.target) == [target_address] and dial(target_address) == "serving"
    dev = kubevirt_clusters.source.request("GET", KUBEVIRT)["spec"]["configuration"]["developerConfiguration"]
    assert "DecentralizedLiveMigration" in dev["featureGates"] and not dev.get("disabledFeatureGates")
