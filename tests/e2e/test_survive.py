"""What a long migration meets: a cancel, the CLI killed, an API server restart, many VMs,
a reviewed bundle applied later, and progress read from a real Prometheus."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import socket
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from kubectl_dlm import errors
from tests.e2e.conftest import start_vm
from tests.sim import scenario

ROOT = Path(__file__).resolve().parents[2]


def background(clusters, *args: str) -> subprocess.Popen:
    """`kubectl dlm ARGS` in its own process, as a user's terminal would run it."""
    return subprocess.Popen([sys.executable, "-m", "kubectl_dlm", *args, "--kubeconfig", str(clusters.kubeconfig)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_vmim_phase(sim, cluster, ns, phases, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for vmim in sim.clusters[cluster].stores["vmim"].list(ns):
            if scenario.phase(vmim) in phases:
                return vmim
        time.sleep(0.1)
    raise AssertionError(f"no VMIM in {phases} on {cluster}/{ns} after {timeout}s")


def finish(proc: subprocess.Popen, timeout=120):
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out


@pytest.mark.parametrize("cross", [False, True], ids=["same-cluster", "cross-cluster"])
def test_cancel_during_transfer(clusters, namespaces, kubevirt_sim, dlm, cross):
    if cross:
        src = dst = namespaces("source", "target")
        scenario.trust_each_other(kubevirt_sim)
        target_ctx, where = "target", ("--to-context", "target")
    else:
        src, dst = namespaces("source"), namespaces("source")
        target_ctx, where = "source", ("--to-namespace", dst)
    start_vm(kubevirt_sim, "source", src)
    kubevirt_sim.faults.transfer_seconds = 30
    proc = background(clusters, "migrate", "vm1", "--context", "source", "-n", src, *where, "-o", "plain")
    wait_vmim_phase(kubevirt_sim, "source", src, ("Running",))
    code, out, err = dlm("cancel", "vm1", "--context", "source", "-n", src, *where)
    assert code == errors.OK, out + err
    assert "deleted" in out
    migrate_code, migrate_out = finish(proc)
    assert migrate_code == errors.CANCELLED, migrate_out
    assert not kubevirt_sim.clusters["source"].stores["vmim"].list(src)
    assert not kubevirt_sim.clusters[target_ctx].stores["vmim"].list(dst)
    assert kubevirt_sim.get("source", "vmi", src, "vm1")["status"]["phase"] == "Running"  # the source keeps running
    kubevirt_sim.wait_for(target_ctx, "vmi", dst, "vm1", lambda o: scenario.phase(o) == "WaitingForSync", 20,
                          "target back to waiting")
    code, out, err = dlm("cancel", "vm1", "--context", "source", "-n", src, *where)  # idempotent
    assert code == errors.OK and "nothing to cancel" in out


def test_killed_and_run_again_resumes_without_a_second_vmim(clusters, namespaces, kubevirt_sim, dlm):
    src, dst = namespaces("source"), namespaces("source")
    start_vm(kubevirt_sim, "source", src)
    kubevirt_sim.faults.transfer_seconds = 6
    args = ("migrate", "vm1", "--context", "source", "-n", src, "--to-namespace", dst, "-o", "plain")
    proc = background(clusters, *args)
    first = wait_vmim_phase(kubevirt_sim, "source", src, ("Running", "TargetReady", "PreparingTarget"))
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    code, out, err = dlm(*args[:-2], "--timeout", "120", "-o", "plain")
    assert code == errors.OK, out + err
    targets = kubevirt_sim.clusters["source"].stores["vmim"].list(dst)
    assert len(targets) == 1 and scenario.phase(targets[0]) == "Succeeded"
    label = "dlm.kubevirt-tools.io/migration-id"
    assert targets[0]["metadata"]["labels"][label] == first["metadata"]["labels"][label]


def test_interrupt_leaves_the_migration_running_and_says_how_to_resume(clusters, namespaces, kubevirt_sim):
    src, dst = namespaces("source"), namespaces("source")
    start_vm(kubevirt_sim, "source", src)
    kubevirt_sim.faults.transfer_seconds = 8
    proc = background(clusters, "migrate", "vm1", "--context", "source", "-n", src, "--to-namespace", dst, "-o", "plain")
    wait_vmim_phase(kubevirt_sim, "source", src, ("Running",))
    proc.send_signal(signal.SIGINT)
    code, out = finish(proc)
    assert code == errors.INTERRUPTED, out
    assert "the migration keeps running" in out and "kubectl dlm cancel vm1" in out
    assert wait_vmim_phase(kubevirt_sim, "source", dst, ("Succeeded",), timeout=30)  # it went on without us


def test_api_server_restart_mid_migration(clusters, namespaces, kubevirt_sim):
    src, dst = namespaces("source"), namespaces("source")
    start_vm(kubevirt_sim, "source", src)
    kubevirt_sim.faults.transfer_seconds = 8
    proc = background(clusters, "migrate", "vm1", "--context", "source", "-n", src, "--to-namespace", dst,
                      "--timeout", "120", "-o", "plain")
    wait_vmim_phase(kubevirt_sim, "source", src, ("Running",))
    clusters.source.restart_apiserver(down_seconds=2)
    code, out = finish(proc)
    assert code == errors.OK, out
    assert "lost cluster" in out and "reconnected" in out
    assert kubevirt_sim.wait_for("source", "vm", dst, "vm1", lambda o: o["spec"].get("runStrategy") == "Always", 20)


def test_ten_vms_three_at_a_time(namespaces, kubevirt_sim, dlm):
    src, dst = namespaces("source"), namespaces("source")
    names = [f"web-{i}" for i in range(10)]
    for name in names:
        vm = scenario.vm_manifest(name)
        vm["metadata"]["labels"] = {"app": "web"}
        kubevirt_sim.run_vm("source", src, vm)
    code, out, err = dlm("migrate", "-l", "app=web", "--context", "source", "-n", src, "--to-namespace", dst,
                         "--parallel", "3", "--timeout", "300", "-o", "plain")
    assert code == errors.OK, out + err
    summary = out[out.index("OUTCOME"):]
    assert all(f"{name}" in summary for name in names) and summary.count("succeeded") == 10
    for name in names:
        assert kubevirt_sim.get("source", "vmi", dst, name)["status"]["phase"] == "Running"


def test_reviewed_bundle_is_applied_with_secrets_copied_server_to_server(namespaces, kubevirt_sim, dlm, tmp_path):
    ns = namespaces("source", "target")
    scenario.trust_each_other(kubevirt_sim)
    vm = scenario.vm_manifest("vm1")
    spec = vm["spec"]["template"]["spec"]
    spec["domain"]["devices"]["disks"].append({"name": "cloudinit", "disk": {"bus": "virtio"}})
    spec["volumes"].append({"name": "cloudinit", "cloudInitNoCloud": {"secretRef": {"name": "vm1-userdata"}}})
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "vm1-userdata"}, "type": "Opaque",
              "data": {"userdata": "I2Nsb3VkLWNvbmZpZwo="}}
    kubevirt_sim.run_vm("source", ns, vm, secrets=[secret])
    bundle = tmp_path / "migration"
    code, out, err = dlm("render", "vm1", "--context", "source", "-n", ns, "--to-context", "target",
                         "--output-dir", str(bundle))
    assert code == errors.OK, err
    on_disk = "".join(p.read_text() for p in bundle.rglob("*") if p.is_file())
    assert "I2Nsb3VkLWNvbmZpZwo=" not in on_disk  # no Secret data in a bundle meant for Git
    code, out, err = dlm("apply", "-f", str(bundle), "--timeout", "120", "-o", "plain")
    assert code == errors.OK, out + err
    assert "I2Nsb3VkLWNvbmZpZwo=" not in out + err
    copied = kubevirt_sim.clusters["target"].kube.get(scenario.K.SECRET, ns, "vm1-userdata")
    assert copied["data"] == secret["data"] and copied["type"] == "Opaque"
    kubevirt_sim.wait_for("target", "vmi", ns, "vm1", lambda o: scenario.phase(o) == "Running", 20, "target running")


@pytest.fixture
def prometheus(kube_bin, kubevirt_sim, tmp_path):
    """A real Prometheus (Debian's) scraping the simulator's virt-handler metrics every 200ms."""
    binary = Path(kube_bin) / "prometheus"
    if not binary.exists():
        pytest.fail(f"{binary} is missing: tests/infra/build.sh fetches Debian's prometheus", pytrace=False)
    url = urllib.parse.urlparse(kubevirt_sim.metrics_url)
    config = tmp_path / "prometheus.yml"
    config.write_text("global: {scrape_interval: 200ms, evaluation_interval: 1s}\n"
                      f"scrape_configs:\n- job_name: kubevirt\n  metrics_path: {url.path or '/metrics'}\n"
                      f"  static_configs: [{{targets: ['{url.netloc}']}}]\n")
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


def test_progress_read_from_prometheus(namespaces, kubevirt_sim, dlm, prometheus):
    src, dst = namespaces("source"), namespaces("source")
    start_vm(kubevirt_sim, "source", src)
    kubevirt_sim.faults.transfer_seconds = 8
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


def test_a_migration_that_cannot_converge_is_called_out(namespaces, kubevirt_sim, dlm, prometheus):
    """The guest dirties memory faster than it is sent: said once, early, with what would help."""
    src, dst = namespaces("source"), namespaces("source")
    start_vm(kubevirt_sim, "source", src)
    kubevirt_sim.faults.transfer_seconds = 40
    kubevirt_sim.faults.transfer_bytes = 4 * 2**30  # ~102 MiB/s sent
    kubevirt_sim.faults.dirty_rate = 200 * 2**20
    code, out, err = dlm("migrate", "vm1", "--context", "source", "-n", src, "--to-namespace", dst,
                         "--prometheus-url", prometheus, "--timeout", "120", "-o", "json")
    assert code == errors.OK, out + err  # the simulator lets it finish when its time is up
    events = [json.loads(line) for line in out.splitlines()]
    verdicts = [e for e in events if e.get("event") == "convergence"]
    assert [v["verdict"] for v in verdicts] == ["not-converging"], out
    assert verdicts[0]["reason"].startswith("the guest dirties memory at 200.0 MiB/s, as fast as or faster than the ")
    assert "allowPostCopy" in verdicts[0]["advice"] and "bandwidthPerMigration" in verdicts[0]["advice"]


def _handler_pods_or_skip(sim) -> None:
    if not sim.handler_pods.pods:
        pytest.skip("no virt-handler pods: this machine has no global unicast address to give them "
                    "(the pod proxy refuses loopback pod IPs)")


def test_without_prometheus_progress_is_read_from_virt_handler_through_the_pod_proxy(namespaces, kubevirt_sim, dlm):
    """No --prometheus-url: the figures come from the source node's virt-handler pod (found by its
    DaemonSet label and node, its "metrics" port) through the API server's pod proxy, over TLS."""
    _handler_pods_or_skip(kubevirt_sim)
    src, dst = namespaces("source"), namespaces("source")
    start_vm(kubevirt_sim, "source", src)
    kubevirt_sim.faults.transfer_seconds = 8
    kubevirt_sim.faults.transfer_bytes = total = 3 * 2**30 + 12345  # a figure only the simulator knows
    code, out, err = dlm("migrate", "vm1", "--context", "source", "-n", src, "--to-namespace", dst,
                         "--timeout", "120", "-o", "json")
    assert code == errors.OK, out + err
    events = [json.loads(line) for line in out.splitlines()]
    assert not [e for e in events if e.get("event") == "notice" and "transfer progress" in e["message"]], out
    progress = [e["progress"] for e in events if e.get("event") == "status" and e.get("progress")]
    assert progress, out
    for p in progress:  # one consistent reading of this VMI's transfer each time (tests/sim/metrics.py)
        assert p["total"] == total and p["processed"] + p["remaining"] == total, p
        assert p["rate"] == int(total / 8) and p["dirty_rate"] == 0, p
    processed = [p["processed"] for p in progress]
    # read while it ran: rising, never past the total (the last reading may come as the time is up)
    assert processed == sorted(processed) and 0 < processed[-1] <= total, processed
    finished = [e for e in events if e.get("event") == "finished"]
    assert [e["outcome"] for e in finished] == ["succeeded"], out


def test_without_prometheus_it_says_once_why_progress_is_unavailable(namespaces, kubevirt_sim, dlm):
    """virt-handler's pod is Running but its metrics port does not answer: the pod proxy's 503 is
    said once, and the migration is followed by phases to the end."""
    _handler_pods_or_skip(kubevirt_sim)
    src, dst = namespaces("source"), namespaces("source")
    start_vm(kubevirt_sim, "source", src)
    kubevirt_sim.faults.stop_handler_metrics("source")
    kubevirt_sim.faults.transfer_seconds = 6
    code, out, err = dlm("migrate", "vm1", "--context", "source", "-n", src, "--to-namespace", dst,
                         "--timeout", "120", "-o", "json")
    assert code == errors.OK, out + err
    events = [json.loads(line) for line in out.splitlines()]
    notices = [e["message"] for e in events if e.get("event") == "notice" and "transfer progress" in e["message"]]
    assert len(notices) == 1, out
    assert notices[0].startswith("no transfer progress: "), notices
    assert "get pods/proxy kubevirt/virt-handler-" in notices[0] and "/metrics" in notices[0], notices
    assert "error trying to reach service" in notices[0], notices
    assert "pods/proxy in namespace" not in notices[0], notices  # no RBAC hint: not a 403
    assert notices[0].endswith("; showing phases only (or give --prometheus-url)"), notices
    assert not [e for e in events if e.get("event") == "status" and e.get("progress")], out
    assert [e["outcome"] for e in events if e.get("event") == "finished"] == ["succeeded"], out
