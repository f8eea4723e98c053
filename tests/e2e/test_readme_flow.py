"""The README's same-cluster flow, step by step, with the real kubectl and the installed plugin, on
the KubeVirt tier, and the live render compared with the render of the same VM's export."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.e2e.conftest import start_vm
from tests.harness.clusters import kubectl_path


def _env(clusters):
    scripts = sysconfig.get_path("scripts")
    plugin = shutil.which("kubectl-dlm", path=os.pathsep.join([scripts, str(Path(sys.executable).parent)]))
    if plugin is None:
        pytest.fail("kubectl-dlm is not installed (pip install -e '.[test]')", pytrace=False)
    # Only the plugin's and kubectl's directories, and the system's: other copies of kubectl-dlm on the
    # developer's PATH (pyenv shims, ...) would make `kubectl plugin list` warn about shadowing.
    path = os.pathsep.join([str(Path(plugin).parent), str(Path(kubectl_path()).parent), "/usr/bin", "/bin"])
    return {**os.environ, "PATH": path, "KUBECONFIG": str(clusters.kubeconfig)}


def sh(command: str, env) -> str:
    done = subprocess.run(["bash", "-o", "pipefail", "-c", command], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_readme_same_cluster_flow_with_kubectl(kubevirt):
    env = _env(kubevirt.clusters)
    src, dst = kubevirt.namespaces("source"), kubevirt.namespaces("source")
    start_vm(kubevirt, "source", src, "my-vm", data_volume=True)
    sh("kubectl config use-context source", env)
    assert "kubectl-dlm" in sh("kubectl plugin list", env)
    flags = f"my-vm -n {src} --to-namespace {dst}"
    sh(f"kubectl dlm render {flags} --phase prepare | kubectl apply -f -", env)
    # virt-controller creates the receiving VMI from the VM asynchronously; without --for=create the
    # next wait fails with NotFound (seen on the real controllers, never on the simulator)
    sh(f"kubectl wait vmi/my-vm -n {dst} --for=create --timeout=60s", env)
    sh(f"kubectl wait vmi/my-vm -n {dst} --for=jsonpath='{{.status.phase}}'=WaitingForSync --timeout=60s", env)
    sh(f"kubectl dlm render {flags} --phase receive | kubectl apply -f -", env)
    sh(f"kubectl dlm render {flags} --phase send | kubectl apply -f -", env)
    sh(f"kubectl dlm status {flags} --watch --timeout 120", env)  # not a terminal: timestamped lines
    assert sh(f"kubectl dlm status {flags} -o wide", env).splitlines()[1].split()[:2] == ["my-vm", "succeeded"]
    vm = kubevirt.wait_for("source", "vm", dst, "my-vm",
                           lambda o: o is not None and o["spec"].get("runStrategy") == "Always", 30, "restored")
    assert vm["metadata"]["annotations"]["kubevirt.io/restore-run-strategy"] == "Always"
    kubevirt.assert_moved("source", src, "source", dst, "my-vm")


def test_live_render_equals_render_of_the_export(kubevirt, tmp_path):
    env = _env(kubevirt.clusters)
    src = kubevirt.namespaces("source")
    start_vm(kubevirt, "source", src, "my-vm", data_volume=True)
    export = tmp_path / "export.yaml"
    export.write_text(sh(f"kubectl --context source get vm,vmi,dv,pvc,secret,cm -n {src} -o yaml", env))
    common = "--to-namespace elsewhere --connect-url 192.0.2.10:9185 --context source"
    live = sh(f"kubectl dlm render my-vm -n {src} {common}", env)
    from_file = sh(f"kubectl dlm render my-vm -f {export} {common}", env)
    assert "kind: VirtualMachine\n" in live
    assert live == from_file
