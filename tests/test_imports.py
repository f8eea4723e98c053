"""Startup stays light: `kubectl dlm --help` and `render -f` never import the kubernetes client,
nor `cryptography` (only the commands that read certificates pay for it: trust, check, migrate, apply).

Checked twice: by running the CLI in a fresh interpreter and looking at sys.modules, and
statically by import-linter (`.importlinter`), which also sees imports hidden inside functions.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, REPO

PROBE = """
import contextlib, io, json, sys
from kubectl_dlm import cli
out = io.StringIO()
with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
    code = cli.run(json.loads(sys.argv[1]))
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("kubernetes", "urllib3", "cryptography")
               or m in ("kubectl_dlm.kube", "kubectl_dlm.pem"))
print(json.dumps({"code": code, "stdout": len(out.getvalue()), "heavy": heavy}))
"""

FIXTURE = str(FIXTURES / "datavolume-templates.yaml")


@pytest.mark.parametrize("args", [
    ["--help"],
    ["render", "--help"],
    ["version"],
    ["render", "--example"],
    ["render", "-f", FIXTURE, "--to-namespace", "prod-b", "--connect-url", "192.0.2.20:9185"],
    ["render", "-f", FIXTURE, "--to-namespace", "prod-b", "--output-dir", "{tmp}/bundle"],
    ["render", "-f", "-", "--to-namespace", "prod-b"],
    ["trust", "--help"],
    ["check", "--help"],
    ["migrate", "--help"],
], ids=["help", "render-help", "version", "example", "render-f", "render-f-output-dir", "render-stdin",
        "trust-help", "check-help", "migrate-help"])
def test_no_kubernetes_import(args, tmp_path):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    stdin = Path(FIXTURE).read_text() if "-" in args else ""
    proc = subprocess.run([sys.executable, "-c", PROBE, json.dumps(args)], input=stdin, capture_output=True,
                          text=True, cwd=REPO, timeout=60)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["code"] == 0
    assert report["stdout"] > 0 or "--output-dir" in args
    assert report["heavy"] == []


def test_the_probe_sees_cryptography_where_certificates_are_read():
    """The commands that read certificates do load it: the probe above would see it if --help did."""
    proc = subprocess.run([sys.executable, "-c", "import sys, kubectl_dlm.trust; "
                           "print(sorted({m.split('.')[0] for m in sys.modules} & {'cryptography', 'kubernetes'}))"],
                          capture_output=True, text=True, cwd=REPO, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "['cryptography']"


def test_importtime_of_the_real_entry_point():
    """The same through `python -m kubectl_dlm`, as the console script runs it."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "kubectl_dlm", "--help"], capture_output=True,
                          text=True, cwd=REPO, timeout=60)
    assert proc.returncode == 0 and "kubectl dlm" in proc.stdout
    imported = [line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")]
    assert "kubectl_dlm.cli" in imported  # the probe sees imports at all
    assert [m for m in imported if m.split(".")[0] in ("kubernetes", "cryptography")] == []


def lint_imports() -> str:
    found = shutil.which("lint-imports") or shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("lint-imports is missing: pip install -e '.[test]'")
        pytest.skip("lint-imports not installed: pip install -e '.[test]' (import-linter)")
    return found


def run_lint(cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(cwd))
    return subprocess.run([lint_imports(), "--no-cache", "--config", str(cwd / ".importlinter")], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=120)


def test_import_contracts_are_kept():
    proc = run_lint(REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Contracts: 3 kept, 0 broken." in proc.stdout


def test_import_contracts_catch_a_violation(tmp_path):
    """On a copy of the package: a pure module that imports kube (even lazily) or kubernetes breaks them."""
    shutil.copytree(REPO / "kubectl_dlm", tmp_path / "kubectl_dlm", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / ".importlinter", tmp_path / ".importlinter")
    with (tmp_path / "kubectl_dlm" / "quantity.py").open("a") as f:
        f.write("\n\ndef _sneaky():\n    from kubectl_dlm import kube\n    return kube\n")
    with (tmp_path / "kubectl_dlm" / "options.py").open("a") as f:
        f.write("\n\nimport kubernetes.client  # noqa\n\nimport cryptography.x509  # noqa\n")
    proc = run_lint(tmp_path)
    assert proc.returncode != 0
    assert "Contracts: 0 kept, 3 broken." in proc.stdout
    assert "kubectl_dlm.options -> cryptography" in proc.stdout
    assert "kubectl_dlm.quantity -> kubectl_dlm.kube" in proc.stdout
    assert "kubectl_dlm.options -> kubernetes" in proc.stdout
