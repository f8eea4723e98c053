"""benchmarks/run.py stays runnable and reports every row (tiny sizes; no timing is asserted:
machines are noisy, and the benchmark itself reports ratios)."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys

import pytest
from ruamel.yaml import YAML

from tests.conftest import REPO, run_cli

BENCH = REPO / "benchmarks" / "run.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("dlm_bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def run_bench(tmp_path, *args, env=None, timeout=300):
    proc = subprocess.run([sys.executable, str(BENCH), "--repeat", "1", "--vms", "2", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("kubectl-dlm benchmarks: Python") and "load average" in lines[0]
    assert lines[1].split() == ["what", "kubectl-dlm", "reference", "ratio", "goal"]
    return lines[3:]


def row(lines, label):
    found = [line for line in lines if line.startswith(label)]
    assert found, f"no row {label!r} in:\n" + "\n".join(lines)
    return found[0]


def test_generated_export_renders_every_vm(tmp_path):
    bench = load_bench()
    export = bench.write_export(3, tmp_path / "export.json")
    result = run_cli(["render", "-f", export, "--to-namespace", bench.DST, "--connect-url", bench.CONNECT])
    assert result.code == 0, result.stderr
    kinds = [d["kind"] for d in YAML(typ="safe").load_all(result.stdout) if d]
    # per VM: 2 Secrets, 2 DataVolumes, the VM, 2 migrations
    assert sorted(set(kinds)) == ["DataVolume", "Secret", "VirtualMachine", "VirtualMachineInstanceMigration"]
    assert (kinds.count("VirtualMachine"), kinds.count("DataVolume"), kinds.count("Secret")) == (3, 6, 6)


def test_without_an_api_server_every_offline_row_is_measured(tmp_path):
    lines = run_bench(tmp_path, "--no-live")
    for label, goal in (("startup: kubectl dlm --help", ["-"]), ("render --example", ["<=", "1.5x"])):
        line = row(lines, label)
        assert "python -c" in line and line.split()[-len(goal):] == goal
        assert re.search(r"\d\.\d\dx \(CPU \d\.\d\dx\)", line)  # the ratios: wall time, CPU time
    assert "ms/VM" in row(lines, "render -f of a 2-VM export (JSON)")
    assert "skipped: --no-live" in row(lines, "live render (one VM, a batch)")
    assert "skipped: --no-live" in row(lines, "migrate (time over the transfer)")


@pytest.mark.cluster
def test_with_the_test_api_server_every_live_row_is_measured(tmp_path, kube_bin):
    env = dict(os.environ, MINI_KUBE_BIN=str(kube_bin))
    lines = run_bench(tmp_path, "--live-vms", "1", "2", "--no-migrate", env=env, timeout=900)
    assert not [line for line in lines if "failed:" in line], "\n".join(lines)
    assert [line for line in lines if "skipped" in line] == [row(lines, "migrate (time over the transfer)")]
    assert "skipped: --no-migrate" in row(lines, "migrate (time over the transfer)")
    assert "client floor" in row(lines, "live render VM (1 VM)")
    assert re.search(r"x \(CPU \d\.\d\dx\)", row(lines, "live render VM (1 VM)"))
    batch = row(lines, "live render -l, 2 VMs")
    assert "kubectl get -o yaml" in batch and "ms/VM" in batch
    assert "MB" in row(lines, "  peak memory")
    # one VM: its two Secrets by name (refs.BY_NAME_MAX), CDIConfig on the target
    assert "7 source + 3 target" in row(lines, "  API requests")


@pytest.mark.kubevirt
@pytest.mark.cluster
def test_on_the_kubevirt_tier_every_migrate_row_is_measured(tmp_path, kube_bin, kubevirt_bin):
    """The migrate rows run on KubeVirt's own controllers (benchmarks/kubevirt_migrate.py); without
    KubeVirt's build the kubevirt_bin fixture skips this, as it does the tier's tests."""
    # one one-VM move each way (ours, by hand): each is a whole migration on the tier
    env = dict(os.environ, MINI_KUBE_BIN=str(kube_bin), KUBEVIRT_BIN=str(kubevirt_bin), DLM_BENCH_ONE="1")
    lines = run_bench(tmp_path, "--live-vms", "0", "--migrate-vms", "2", "--parallel", "2",
                      "--transfer-seconds", "0.5", env=env, timeout=900)
    assert not [line for line in lines if "skipped" in line or "failed:" in line], "\n".join(lines)
    assert "transfer: 500 ms" in row(lines, "migrate 1 VM: time over the transfer")
    assert re.search(r"\(CPU [\d.]+ m?s; median of 1; load", row(lines, "migrate 1 VM: time over the transfer"))
    assert "1 transfer: 500 ms" in row(lines, "migrate 2 VMs --parallel 2")
    row(lines, "  time over the transfers, per VM")
    row(lines, "  after the last output line")
    # the reference a user would otherwise run: the same move by hand with kubectl apply and wait
    assert re.search(r"by hand with kubectl apply/wait: [\d.]+ m?s +\d+\.\d\dx", row(lines, "migrate 1 VM: whole move"))
    row(lines, "  what migrate adds over the move by hand")
    assert "1 x " in row(lines, "  the same against 1 move by hand")
