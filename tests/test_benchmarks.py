"""benchmarks/run.py stays runnable: its generated export renders, and the table prints."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

from ruamel.yaml import YAML

from tests.conftest import REPO, run_cli


def load_bench():
    spec = importlib.util.spec_from_file_location("dlm_bench", REPO / "benchmarks" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_export_renders_every_vm(tmp_path):
    bench = load_bench()
    export = bench.write_export(3, tmp_path / "export.json")
    result = run_cli(["render", "-f", export, "--to-namespace", bench.DST, "--connect-url", bench.CONNECT])
    assert result.code == 0, result.stderr
    kinds = [d["kind"] for d in YAML(typ="safe").load_all(result.stdout) if d]
    # per VM: 2 Secrets, 2 DataVolumes, the VM, 2 migrations
    assert sorted(set(kinds)) == ["DataVolume", "Secret", "VirtualMachine", "VirtualMachineInstanceMigration"]
    assert (kinds.count("VirtualMachine"), kinds.count("DataVolume"), kinds.count("Secret")) == (3, 6, 6)


def test_benchmark_command_runs(tmp_path):
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "run.py"), "--repeat", "1", "--vms", "2",
                           "--no-live"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("kubectl-dlm benchmarks")
    for row in ("startup: kubectl dlm --help", "render -f, 2 VMs: CLI total", "  per VM (in-process",
                "live render (API requests per VM)"):
        assert any(line.startswith(row) for line in lines), row
    assert lines[-1].endswith("skipped: --no-live")
