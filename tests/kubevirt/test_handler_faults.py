"""The played virt-handler's fault knobs (tests/kubevirt/handler.py), through `kubectl dlm migrate`
on KubeVirt's real controllers: what the real code does when a launcher dies during a transfer, when
the receiving pod never runs, and what virt-handler publishes for a transfer that cannot converge."""
from __future__ import annotations

import time

import pytest

from kubectl_dlm import errors
from tests.harness.apiserver import pod_address
from tests.kubevirt import handler
from tests.kubevirt.handler_pods import NAMESPACE
from tests.kubevirt.played import wait_for
from tests.kubevirt.test_dlm_e2e import FOLLOW, dlm, dump, get, start_vm  # noqa: F401 - dlm is a fixture


@pytest.fixture
def network(kubevirt_clusters, node_sides):
    """handler.NETWORK, its knobs and the kubelet's one-shot failures put back after the test."""
    yield handler.NETWORK
    handler.NETWORK.reset()
    for side in node_sides.values():
        side.forget_fail_next()


def launcher_phases(cluster, ns: str) -> dict[str, str]:
    return {p["metadata"]["name"]: p.get("status", {}).get("phase")
            for p in cluster.request("GET", f"/api/v1/namespaces/{ns}/pods")["items"]}


def test_target_pod_dying_mid_transfer_fails_the_move_with_the_broken_stream(kubevirt_clusters, kv_namespace, dlm,
                                                                             network):
    """Also in tests/e2e/test_migrate.py::test_failure_mid_transfer_then_cleanup_then_retry
    (fail_target_at). The target's launcher dies halfway: the real target migration controller fails
    its migration (migration.go:594 or 1136), libvirt's job on the source breaks and the source
    launcher reports it (migration.go:630); the plugin names whichever failure it saw first. The VM runs on."""
    ns = kv_namespace
    s, t = kubevirt_clusters.by_name("source"), kubevirt_clusters.by_name("target")
    start_vm(kubevirt_clusters, ns)
    network.transfer_seconds, network.fail_target_at = 4, 0.5
    started = time.monotonic()
    code, out, err = dlm("migrate", "vm1", "--context", "source", "-n", ns, "--to-context", "target", *FOLLOW)
    assert code == errors.FAILED, out + err + dump(kubevirt_clusters, ns)
    assert time.monotonic() - started > 2      # it broke halfway, not at the start
    # whichever KubeVirt reported first: the target migration controller (migration.go:594, or
    # migration.go:1136 once the target VMI noted it) or the source's broken libvirt job
    causes = (handler.BROKEN_STREAM, "Migration failed because target pod shutdown during migration",
              "the target migration failed: Target pod is down")
    assert any(cause in err for cause in causes), err
    vmi = get(s, ns, "virtualmachineinstances", "vm1")
    assert vmi["status"]["phase"] == "Running"
    assert vmi["status"]["migrationState"]["failed"] is True
    assert network.fail_target_at is None     # one shot


def test_receiving_pod_that_never_runs_fails_the_move_before_the_handoff(kubevirt_clusters, kv_namespace, dlm,
                                                                         network):
    """Also in tests/e2e/test_failures.py (target_pod_never_ready). The real
    migration controller fails the target migration with its own words (migration.go:594)."""
    ns = kv_namespace
    start_vm(kubevirt_clusters, ns)
    handler.target_pod_never_ready([kubevirt_clusters.kubevirt["target"]])
    code, out, err = dlm("migrate", "vm1", "--context", "source", "-n", ns, "--to-context", "target", *FOLLOW)
    assert code == errors.FAILED, out + err + dump(kubevirt_clusters, ns)
    assert "Migration failed because target pod shutdown during migration" in err, err
    assert get(kubevirt_clusters.by_name("source"), ns, "virtualmachineinstances", "vm1")["status"]["phase"] \
        == "Running"
    # one shot: the next attempt's receiving pod runs
    code, out, err = dlm("cleanup", "vm1", "--context", "source", "-n", ns, "--to-context", "target")
    assert code == errors.OK, out + err


@pytest.mark.skipif(pod_address() is None, reason="no global unicast address for virt-handler's pod IP")
def test_a_guest_dirtying_memory_faster_than_it_is_sent_leaves_the_remaining_bytes_standing(
        kubevirt_clusters, kv_namespace, dlm, network):
    """dirty_rate at or above the transfer rate: the source handler's series show the remaining bytes
    no longer falling (pre-copy without headway) while the guest keeps it up."""
    ns = kv_namespace
    s = kubevirt_clusters.by_name("source")
    start_vm(kubevirt_clusters, ns)
    network.transfer_seconds, network.transfer_bytes = 12, 12 * 2**30    # 1 GiB/s sent
    network.dirty_rate = 2**30
    from tests.kubevirt.test_dlm_e2e import background
    proc = background(kubevirt_clusters, "migrate", "vm1", "--context", "source", "-n", ns, "--to-context", "target",
                      *FOLLOW)
    try:
        node = wait_for("the transfer running", lambda: next(
            ((v["status"]["migrationState"] or {}).get("sourceNode") for v in [get(s, ns, "virtualmachineinstances", "vm1")]
             if (v["status"].get("migrationState") or {}).get("startTimestamp")), None))
        pod = next(p for p in s.request("GET", f"/api/v1/namespaces/{NAMESPACE}/pods")["items"]
                   if p["spec"].get("nodeName") == node)
        port = pod["spec"]["containers"][0]["ports"][0]["containerPort"]

        def remaining() -> float | None:
            text = s.request("GET", f"/api/v1/namespaces/{NAMESPACE}/pods/https:{pod['metadata']['name']}:{port}"
                                    f"/proxy/metrics")
            line = next((x for x in text.splitlines() if x.startswith("kubevirt_vmi_migration_data_remaining_bytes{")
                         and f'namespace="{ns}"' in x), None)
            return float(line.split()[-1]) if line else None
        time.sleep(4)    # past STALL_AT of 12 s
        first = remaining()
        time.sleep(2)
        second = remaining()
        assert first == second == 12 * 2**30 * (1 - handler.STALL_AT), (first, second)
        out, _ = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == errors.OK, out   # the guest calmed down when the transfer's time was up


def test_source_pod_dying_mid_transfer_fails_the_target_then_the_move(kubevirt_clusters, kv_namespace, dlm, network):
    """fail_source_at: the source's launcher dies halfway, and with it its domain and its record of
    the job (setMigrationResult never runs, l-m-source.go:1389-1420), so nothing on the source side
    reports an end: virt-handler's VM controller skips a VMI whose migration started and has no end
    (pkg/virt-handler/vm.go:409-412, controller.go:376-406), its source controller has no domain to
    act on (migration-source.go:621-633), virt-controller keeps a Running VMI whose pod exists, even
    Failed (pkg/virt-controller/watch/vmi/lifecycle.go:479-484). The target does end: its incoming
    stream is gone, its QEMU and then its virt-launcher exit (cmd/virt-launcher/virt-launcher.go:
    536-560), and the target migration controller fails the target migration ("Migration failed
    because target pod shutdown during migration", pkg/virt-controller/watch/migration/
    migration.go:588-597). `migrate` ends on that, ends the source migration it left open, and says
    the guest is gone though its VMI still shows Running."""
    ns = kv_namespace
    s = kubevirt_clusters.by_name("source")
    t = kubevirt_clusters.by_name("target")
    start_vm(kubevirt_clusters, ns)
    network.transfer_seconds, network.fail_source_at = 4, 0.5
    code, out, err = dlm("migrate", "vm1", "--context", "source", "-n", ns, "--to-context", "target",
                         "--sync-timeout", "60", "--timeout", "60", "-o", "plain")
    assert code == errors.FAILED, out + err + dump(kubevirt_clusters, ns)
    # KubeVirt says it twice: a Warning Event on the target VMIM (migration.go:594) and, the migration
    # being handed off, the target VMI's failureReason (migration.go:1136); migrate names whichever it
    # read first.
    assert "target pod shutdown during migration" in err or "failed: Target pod is down" in err, err
    # the source VMI still says Running; its Ready condition tells the launcher ended (lifecycle.go:887-895)
    assert "its guest is no longer running" in err and "virtctl restart vm1" in err, err
    assert "keeps running" not in err, err
    assert list(launcher_phases(s, ns).values()) == ["Failed"]
    assert [m["status"]["phase"] for m in get(t, ns, "virtualmachineinstancemigrations")["items"]] == ["Failed"]
    vmi = get(s, ns, "virtualmachineinstances", "vm1")
    assert vmi["status"]["phase"] == "Running", vmi["status"]   # KubeVirt still shows it Running, its pod Failed
