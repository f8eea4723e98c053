"""Shared fixtures of the test suite: where the reference data is, the fixtures, and a CLI runner.

The cluster fixtures (tests/harness) and the KubeVirt tier's (tests/kubevirt/fixtures.py) are pytest
plugins of their own; they are loaded only once they exist, so the fast tier runs on a tree without them.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import pytest


def _available(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # the parent package itself is missing
        return False


pytest_plugins = ["tests.harness.clusters", "tests.harness.kubevirt", "tests.kubevirt.fixtures"]
pytest_plugins = [plugin for plugin in pytest_plugins if _available(plugin)]

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures"
# The source and target of every fixture render (see tests/fixtures/*.yaml).
TARGET_ARGS = ("--to-namespace", "prod-b", "--connect-url", "192.0.2.20:9185")


def shared_dir() -> Path:
    """../shared next to the repository, or $DLM_SHARED_DIR (CI lays it out elsewhere)."""
    return Path(os.environ.get("DLM_SHARED_DIR") or REPO.parent / "shared").resolve()


@pytest.fixture(scope="session")
def shared() -> Path:
    path = shared_dir()
    if not (path / "crds").is_dir():
        pytest.skip(f"reference data not found at {path}: set DLM_SHARED_DIR")
    return path


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    @property
    def stderr_lines(self):
        return self.stderr.splitlines()


def run_cli(args: Sequence[str], stdin: Optional[str] = None, cwd: Optional[Path] = None) -> CliResult:
    """Run `kubectl dlm ARGS` in-process through kubectl_dlm.cli.run, stdout and stderr apart."""
    from kubectl_dlm import cli

    out, err = io.StringIO(), io.StringIO()
    saved_stdin, saved_cwd = sys.stdin, os.getcwd()
    sys.stdin = io.StringIO(stdin or "")
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.run([str(a) for a in args])
    finally:
        sys.stdin = saved_stdin
        os.chdir(saved_cwd)
    return CliResult(code, out.getvalue(), err.getvalue())


@pytest.fixture
def cli():
    """The CLI runner: `cli("render", "-f", path, ...)` -> CliResult(code, stdout, stderr)."""
    return lambda *args, stdin=None, cwd=None: run_cli(args, stdin=stdin, cwd=cwd)


@pytest.fixture
def fixture_path():
    def path(name: str) -> Path:
        found = FIXTURES / (name if name.endswith(".yaml") else f"{name}.yaml")
        assert found.is_file(), f"no fixture {found}"
        return found

    return path
