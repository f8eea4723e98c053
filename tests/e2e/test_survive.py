"""What a long migration meets, on the KubeVirt tier: the CLI interrupted, an API server restart,
many VMs, and progress read from a real Prometheus scraping virt-handler's pods.

A cancel during a transfer, the CLI killed and run again and a reviewed bundle applied later are
tests/kubevirt/test_dlm_e2e.py's; progress through the pod proxy without Prometheus is
tests/kubevirt/test_handler_metrics.py's.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from kubectl_dlm import errors
from tests.e2e.conftest import start_vm
from tests.harness.apiserver import pod_address
from tests.kubevirt.played import wait_for
from tests.kubevirt.tier import phase, vm_manifest

ROOT = Path(__file__).resolve().parents[2]


def background(clusters, *args: str) -> subprocess.Popen:
    """`kubectl dlm ARGS` in its own process, as a user's terminal would run it."""
    return subprocess.Popen([sys.executable, "-m", "kubectl_dlm", *args, "--kubeconfig", str(clusters.kubeconfig)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_vmim_phase(tier, cluster, ns, phases, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for vmim in tier.list(cluster, "vmim", ns):
            if phase(vmim) in phases:
                return vmim
        time.sleep(0.1)
    raise AssertionError(f"no VMIM in {phases} on {cluster}/{ns} after {timeout}s")


def finish(proc: subprocess.Popen, timeout=120):
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out


def test_interrupt_leaves_the_migration_running_and_says_how_to_resume(kubevirt):
    src, dst = kubevirt.namespaces("source"), kubevirt.namespaces("source")
    start_vm(kubevirt, "source", src)
    kubevirt.faults.transfer_seconds = 8
    proc = background(kubevirt.clusters, "migrate", "vm1", "--context", "source", "-n", src, "--to-namespace", dst,
                      "-o", "plain")
    wait_vmim_phase(kubevirt, "source", src, ("Running",))
    proc.send_signal(signal.SIGINT)
    code, out = finish(proc)
    assert code == errors.INTERRUPTED, out
    assert "the migration keeps running" in out and "kubectl dlm cancel vm1" in out
    kubevirt.assert_moved("source", src, "source", dst)   # it went on without us


def test_api_server_restart_mid_migration(kubevirt, dlm):
    """The source API server goes away mid-transfer for longer than a Lease's renew deadline (10 s,
    pkg/virt-controller/leaderelectionconfig/config.go:31-33 @v1.9.0), as a real restart can take.
    KubeVirt's controllers lose their Leases: virt-controller exits (application.go:1170-1172) and
    the played kubelet restarts it; the synchronization controller's leader stops leading but not
    running (cmd/synchronization-controller/synchronization-controller.go:357-368) and its Deployment's
    second replica takes the Lease and rebuilds the connections of the migrations under way
    (pkg/synchronization-controller/synchronization-controller.go:791-878). The plugin reconnects and
    the move completes, but that rebuild writes the new leader's address into the source VMI's
    sourceState, after which the VMI is no decentralized migration to KubeVirt (types.go:676-681) and
    virt-controller never marks it Succeeded (lifecycle.go:487-490): it stays Running with its launcher
    exited. The plugin must not call that verified; it says what happened and how to finish, and the
    move verifies once the user did that. Whether KubeVirt gets there depends on the standby taking
    the Lease before the source side finished; under load the transfer may end first and the move
    completes normally (seen under two pytest workers): then the plugin must say that, verified."""
    src, dst = kubevirt.namespaces("source"), kubevirt.namespaces("source")
    start_vm(kubevirt, "source", src)
    install = kubevirt.clusters.kubevirt["source"]
    controller, sync_leader = install.components["virt-controller"], install.follow_sync_leader()
    restarts = controller.restarts
    kubevirt.faults.transfer_seconds = 8
    proc = background(kubevirt.clusters, "migrate", "vm1", "--context", "source", "-n", src, "--to-namespace", dst,
                      "--timeout", "180", "-o", "plain")
    wait_vmim_phase(kubevirt, "source", src, ("Running",))
    kubevirt.clusters.source.restart_apiserver(down_seconds=12)
    code, out = finish(proc, timeout=240)
    assert "lost cluster" in out and "reconnected" in out, out
    source = kubevirt.get("source", "vmi", src, "vm1")
    state = ((source or {}).get("status") or {}).get("migrationState") or {}
    if not ((state.get("sourceState") or {}).get("syncAddress") and (state.get("targetState") or {}).get("syncAddress")):
        # The standby took the Lease after the source side had finished (under load the transfer may
        # end first): KubeVirt completed the move normally, and the plugin must say exactly that.
        assert code == errors.OK, out + kubevirt.dump(src, dst)
        assert "vm1: succeeded" in out and "verify pass: source-stopped" in out, out
        kubevirt.assert_moved("source", src, "source", dst)
        return
    assert code == errors.NOT_VERIFIED, out + kubevirt.dump(src, dst)
    # (failed once in CI at load ~10 without this message: the output was cut; keep what each side shows)
    assert "vm1: succeeded" in out and "verify pass: target-running" in out and "verify pass: migrated-live" in out, \
        out + kubevirt.dump(src, dst)
    assert f"verify fail: source-stopped: source VMI is still Running in source/{src}, but its migration completed" in out
    assert f"""kubectl --context source -n {src} patch vm vm1 --type merge -p '{{"spec":{{"runStrategy":"Halted"}}}}'""" in out

    # What KubeVirt did, as the plugin read it.
    assert controller.restarts > restarts                                  # the kubelet's restart
    assert install.follow_sync_leader() is not sync_leader                 # the standby leads now
    assert sync_leader.proc.poll() is None                                 # the old leader still runs, not leading
    assert [phase(m) for m in kubevirt.list("source", "vmim", src)] == ["Succeeded"]
    assert [phase(m) for m in kubevirt.list("source", "vmim", dst)] == ["Succeeded"]
    ms = source["status"]["migrationState"]
    assert phase(source) == "Running" and ms["completed"] and not ms.get("failed")
    assert kubevirt.get("source", "vm", src, "vm1")["spec"]["runStrategy"] == "Always"    # so KubeVirt did not halt it

    # The user does what the plugin said: KubeVirt removes the old VMI and starts none; the move verifies.
    kubevirt.request("source", "PATCH", f"/apis/kubevirt.io/v1/namespaces/{src}/virtualmachines/vm1",
                     {"spec": {"runStrategy": "Halted"}}, content_type="application/merge-patch+json")
    kubevirt.assert_moved("source", src, "source", dst)
    code, out, err = dlm("verify", "vm1", "--context", "source", "-n", src, "--to-namespace", dst)
    assert code == errors.OK, out + err


def test_ten_vms_three_at_a_time(kubevirt, dlm):
    """Ten VMs chosen by label, moved to another namespace three migrations at a time, each with its
    own pair of VMIMs; while three run, the next ones wait prepared (receiving VM in WaitingForSync)."""
    src, dst = kubevirt.namespaces("source"), kubevirt.namespaces("source")
    names = [f"web-{i}" for i in range(10)]
    for name in names:   # created at once, then waited for: the controllers start them side by side
        vm = vm_manifest(name)
        vm["metadata"]["labels"] = {"app": "web"}
        kubevirt.create("source", "vm", src, vm)
    for name in names:
        kubevirt.wait_for("source", "vmi", src, name, lambda v: phase(v) == "Running", 120, "VMI Running")
    kubevirt.faults.transfer_seconds = 3
    seen = BatchWatch(kubevirt, src, dst)
    code, out, err = dlm("migrate", "-l", "app=web", "--context", "source", "-n", src, "--to-namespace", dst,
                         "--parallel", "3", "--timeout", "300", "-o", "plain")
    seen.stop()
    assert code == errors.OK, out + err + kubevirt.dump(src, dst)
    summary = out[out.index("OUTCOME"):]
    assert all(f"{name}" in summary for name in names) and summary.count("succeeded") == 10
    for name in names:
        kubevirt.assert_moved("source", src, "source", dst, name)
    # never more than three migrations open on either side, and VMs waited prepared for a slot
    assert seen.most_open == {"send": 3, "receive": 3}, seen.most_open
    assert seen.prepared_while_full, "no receiving VM waited in WaitingForSync while three migrations ran"
    assert "prepared ahead (disks and receiving VM ready)" in out + err


class BatchWatch:
    """Reads both namespaces every 0.2 s while a batch runs: the most migrations open at once per
    side, and whether a receiving VMI waited in WaitingForSync, without a migration, while three ran."""

    def __init__(self, tier, src: str, dst: str):
        import threading
        self.most_open = {"send": 0, "receive": 0}
        self.prepared_while_full = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(tier, src, dst), daemon=True)
        self._thread.start()

    def _run(self, tier, src: str, dst: str) -> None:
        while not self._stop.wait(0.2):
            open_ = {side: {m["spec"]["vmiName"] for m in tier.list("source", "vmim", ns)
                            if phase(m) not in ("Succeeded", "Failed")} for side, ns in (("send", src), ("receive", dst))}
            for side, vms in open_.items():
                self.most_open[side] = max(self.most_open[side], len(vms))
            waiting = {v["metadata"]["name"] for v in tier.list("source", "vmi", dst) if phase(v) == "WaitingForSync"}
            if len(open_["send"]) == 3 and waiting - open_["receive"]:
                self.prepared_while_full = True

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def set_migrations(kubevirt, cluster: str, fields: dict) -> None:
    """Edit spec.configuration.migrations of the cluster's KubeVirt CR (None removes a field); the real
    virt-controller resolves it into each new migration's migrationConfiguration."""
    kubevirt.request(cluster, "PATCH", "/apis/kubevirt.io/v1/namespaces/kubevirt/kubevirts/kubevirt",
                     {"spec": {"configuration": {"migrations": fields}}}, content_type="application/merge-patch+json")


def test_a_transfer_without_headway_is_aborted_by_the_migration_monitor(kubevirt, dlm):
    """The source launcher's migration monitor (played: handler.Network.monitor, from
    l-m-source.go:730-839) aborts a transfer whose remaining data makes no new low for progressTimeout
    seconds. libvirt's abort reads like a cancel ("Live migration has been aborted"); the plugin says
    it was the monitor, with the timeout KubeVirt applied, and what would let the transfer converge."""
    src, dst = kubevirt.namespaces("source"), kubevirt.namespaces("source")
    start_vm(kubevirt, "source", src)
    kubevirt.faults.transfer_seconds = 40   # no headway from 25 % of it (handler.STALL_AT), at 10 s
    kubevirt.faults.transfer_bytes = 40 * 2**20
    kubevirt.faults.dirty_rate = 2 * 2**20  # twice what is sent
    set_migrations(kubevirt, "source", {"progressTimeout": 3})
    try:
        started = time.monotonic()
        code, out, err = dlm("migrate", "vm1", "--context", "source", "-n", src, "--to-namespace", dst,
                             "--timeout", "120", "-o", "plain")
        took = time.monotonic() - started
    finally:
        set_migrations(kubevirt, "source", {"progressTimeout": None})
    assert code == errors.FAILED, out + err + kubevirt.dump(src, dst)
    assert took < 60, out   # aborted at about 10 + 3 s of the transfer, not at its 40 s
    assert "Live migration has been aborted by KubeVirt's migration monitor (no VMIM was deleted)" in err
    assert "progressTimeout (3 s)" in err and "--allow-auto-converge" in err and "kubectl dlm cleanup vm1" in err
    vmi = kubevirt.get("source", "vmi", src, "vm1")
    assert phase(vmi) == "Running"   # the guest never left the source
    ms = vmi["status"]["migrationState"]
    assert ms["failed"] is True and ms["abortStatus"] == "Succeeded", ms
    assert ms["migrationConfiguration"]["progressTimeout"] == 3


def handler_metrics_targets(cluster) -> list[str]:
    """host:port of each virt-handler pod's "metrics" port on the cluster (tests/kubevirt/handler_pods.py),
    as Prometheus's kubernetes_sd would find them by pod IP and the named port."""
    pods = cluster.request("GET", "/api/v1/namespaces/kubevirt/pods?labelSelector=kubevirt.io%3Dvirt-handler")["items"]
    return [f"{p['status']['podIP']}:{port['containerPort']}" for p in pods if phase(p) == "Running"
            for port in p["spec"]["containers"][0]["ports"] if port["name"] == "metrics"]


@pytest.fixture
def prometheus(kube_bin, kubevirt, tmp_path):
    """A real Prometheus (Debian's) scraping the source cluster's virt-handler pods over TLS every 200ms."""
    if pod_address() is None:
        pytest.skip("no virt-handler pods: this machine has no global unicast address to give them")
    binary = Path(kube_bin) / "prometheus"
    if not binary.exists():
        pytest.fail(f"{binary} is missing: tests/infra/build.sh fetches Debian's prometheus", pytrace=False)
    targets = wait_for("virt-handler pods serving metrics", lambda: handler_metrics_targets(kubevirt.clusters.source))
    config = tmp_path / "prometheus.yml"
    # https on the port named "metrics", certificate not verified: KubeVirt's own ServiceMonitor
    # (pkg/virt-operator/resource/generate/components/prometheus.go:39-48 @v1.9.0)
    config.write_text("global: {scrape_interval: 200ms, evaluation_interval: 1s}\n"
                      "scrape_configs:\n- job_name: kubevirt\n  scheme: https\n"
                      "  tls_config: {insecure_skip_verify: true}\n"
                      f"  static_configs: [{{targets: {json.dumps(targets)}}}]\n")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([str(binary), f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                             f"--web.listen-address=127.0.0.1:{port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{base}/-/ready", timeout=1)
            break
        except OSError:
            assert time.monotonic() < deadline and proc.poll() is None, "prometheus did not start"
            time.sleep(0.2)
    yield base
    proc.terminate()
    proc.wait(10)


def test_progress_read_from_prometheus(kubevirt, dlm, prometheus):
    src, dst = kubevirt.namespaces("source"), kubevirt.namespaces("source")
    start_vm(kubevirt, "source", src)
    kubevirt.faults.transfer_seconds = 8
    code, out, err = dlm("migrate", "vm1", "--context", "source", "-n", src, "--to-namespace", dst,
                         "--prometheus-url", prometheus, "--timeout", "120", "-o", "json")
    assert code == errors.OK, out + err
    events = [json.loads(line) for line in out.splitlines()]
    progress = [e["progress"] for e in events if e.get("event") == "status" and e.get("progress")]
    assert progress, out
    assert any(p.get("processed", 0) > 0 for p in progress) and any("remaining" in p for p in progress)
    finished = [i for i, e in enumerate(events) if e.get("event") == "finished"]
    assert len(finished) == 1 and events[finished[0]]["outcome"] == "succeeded", out
    # migrate verifies the move after the migration finished; only those rows may follow
    after = events[finished[0] + 1:]
    assert after and all(e["event"] == "aftercare" for e in after), out
    assert any(e["message"].startswith("verify pass: ") for e in after), out


def test_a_migration_that_cannot_converge_is_called_out(kubevirt, dlm, prometheus):
    """The guest dirties memory faster than it is sent: said once, early, with what would help."""
    src, dst = kubevirt.namespaces("source"), kubevirt.namespaces("source")
    start_vm(kubevirt, "source", src)
    kubevirt.faults.transfer_seconds = 40
    kubevirt.faults.transfer_bytes = 4 * 2**30  # ~102 MiB/s sent
    kubevirt.faults.dirty_rate = 200 * 2**20
    code, out, err = dlm("migrate", "vm1", "--context", "source", "-n", src, "--to-namespace", dst,
                         "--prometheus-url", prometheus, "--timeout", "120", "-o", "json")
    assert code == errors.OK, out + err  # the played libvirt lets it finish when its time is up
    events = [json.loads(line) for line in out.splitlines()]
    verdicts = [e for e in events if e.get("event") == "convergence"]
    assert [v["verdict"] for v in verdicts] == ["not-converging"], out
    assert verdicts[0]["reason"].startswith("the guest dirties memory at 200.0 MiB/s, as fast as or faster than the ")
    assert "allowPostCopy" in verdicts[0]["advice"] and "bandwidthPerMigration" in verdicts[0]["advice"]
