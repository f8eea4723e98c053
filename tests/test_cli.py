"""The command line: help, usage errors, determinism, template overrides."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import click
import pytest
from ruamel.yaml import YAML

from kubectl_dlm import cli as cli_module
from kubectl_dlm import errors
from kubectl_dlm.render import builtin_template_dir
from tests.conftest import FIXTURES, REPO, TARGET_ARGS, run_cli


def public_commands():
    """Every command `kubectl dlm --help` lists (hidden ones, like kubectl's __complete hook, are internal)."""
    group = cli_module.cli
    return [n for n in group.list_commands(None) if not group.get_command(None, n).hidden]


@pytest.mark.parametrize("command", [[]] + [[name] for name in public_commands()])
def test_help_of_every_command(command):
    result = run_cli([*command, "--help"])
    assert result.code == 0, result.stderr
    usage = f"Usage: kubectl dlm {' '.join(command)}".rstrip()
    assert result.stdout.startswith(usage), result.stdout[:200]
    assert result.stderr == ""


def test_help_lists_every_command():
    out = run_cli(["--help"]).stdout
    assert "render" in public_commands()
    for name in public_commands():
        assert f"  {name} " in out


def test_version():
    import kubectl_dlm

    result = run_cli(["--version"])
    assert (result.code, result.stdout) == (0, f"kubectl-dlm {kubectl_dlm.__version__}\n")


BAD_FLAGS = [
    (["render", "--bogus"], "error: No such option '--bogus'. (see 'kubectl dlm render --help')"),
    (["render", "--secrets", "all"], "error: Invalid value for '--secrets': 'all' is not one of 'include', 'omit', 'reference'. "
                                     "(see 'kubectl dlm render --help')"),
    (["render", "--phase", "later"], None),
    (["render", "--side", "both"], None),
    (["render", "-n"], "error: Option '-n' requires an argument."),
    (["render", "--mapping-file", "/nonexistent.yaml"], None),
    (["frobnicate"], "error: No such command 'frobnicate'. (see 'kubectl dlm --help')"),
]


@pytest.mark.parametrize("args, line", BAD_FLAGS)
def test_bad_flags_are_one_line_and_exit_2(args, line):
    result = run_cli(args)
    assert result.code == errors.USAGE == 2
    assert result.stdout == ""
    assert len(result.stderr_lines) == 1 and result.stderr_lines[0].startswith("error: ")
    if line:
        assert result.stderr_lines[0] == line


@pytest.mark.parametrize("args, message", [
    (["--storage-class-map", "gold"], "error: --storage-class-map 'gold' is not SRC=DST"),
    (["--network-map", "=x"], "error: --network-map '=x' is not SRC=DST"),
    (["--claim-map", "a=b", "--claim-map", "a=c"], "error: --claim-map maps a twice (b and c)"),
    (["--connect-url", "https://10.0.0.1:9185"], "error: --connect-url https://10.0.0.1:9185 has a URL scheme; "
                                                  "the sync controller dials a gRPC host:port (or dns:///host:port)"),
    (["--connect-url", "fd00::1:9185"], "error: --connect-url fd00::1:9185 is an IPv6 address without brackets; "
                                        "write [fd00::1]:9185"),
    (["--connect-url", "10.0.0.1"], "error: --connect-url 10.0.0.1 is not host:port"),
])
def test_bad_flag_values_name_the_flag(args, message):
    result = run_cli(["render", "-f", FIXTURES / "maps.yaml", "--to-namespace", "prod-b", *args])
    assert result.code == errors.USAGE and result.stdout == ""
    assert result.stderr_lines[0] == message


@pytest.mark.parametrize("url", ["10.0.0.5:9185", "[fd00::1]:9185", "dns:///sync.east.example.com:9185",
                                 "sync.east:9185"])
def test_connect_url_takes_what_grpc_dials_and_check_accepts(url):
    """--connect-url and `check` agree: KubeVirt passes the URL to grpc.NewClient as is
    (pkg/synchronization-controller/synchronization-controller.go:906 @v1.9.0)."""
    from kubectl_dlm import checks

    assert checks.classify_address(url)[0] == "pass"
    result = run_cli(["render", "-f", FIXTURES / "maps.yaml", "--to-namespace", "prod-b", "--connect-url", url])
    assert result.code == errors.OK, result.stderr
    send = [d for d in YAML(typ="safe").load_all(result.stdout) if d and (d.get("spec") or {}).get("sendTo")]
    assert send[0]["spec"]["sendTo"]["connectURL"] == url


def test_no_vm_given():
    result = run_cli(["render", "--to-namespace", "x"])
    assert result.code == errors.USAGE
    assert result.stderr_lines[0] == "error: no VM given"


def test_stdout_bundle_says_on_stderr_that_it_carries_secrets():
    result = run_cli(["render", "-f", FIXTURES / "access-credentials.yaml", *TARGET_ARGS])
    assert "note: the bundle includes 2 Secret(s) copied from the source, with their data; use --secrets reference to leave the data out" \
        in result.stderr_lines


# --- determinism ----------------------------------------------------------------------------------

SUCCESS = sorted(p.stem for p in FIXTURES.glob("*.yaml") if not p.stem.startswith(("refuse-", "mapping-")))


def all_objects():
    objs = []
    for name in SUCCESS:
        for doc in YAML(typ="safe").load_all((FIXTURES / f"{name}.yaml").read_text()):
            objs.extend(doc["items"] if doc.get("kind") == "List" else [doc])
    return objs


def shuffled(value, rng):
    if isinstance(value, dict):
        keys = list(value)
        rng.shuffle(keys)
        return {k: shuffled(value[k], rng) for k in keys}
    if isinstance(value, list):  # list order means something (disks, volumes): keep it
        return [shuffled(v, rng) for v in value]
    return value


def dump(objs, path: Path) -> Path:
    y = YAML()
    y.width = 4096
    with path.open("w") as f:
        y.dump({"apiVersion": "v1", "kind": "List", "items": objs}, f)
    return path


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    """Every success fixture in one export: a batch of all VMs of namespace prod."""
    return dump(all_objects(), tmp_path_factory.mktemp("batch") / "all.yaml")


@pytest.fixture(scope="module")
def batch_output(batch):
    return run_cli(["render", "-f", batch, *TARGET_ARGS])


def test_batch_renders_every_vm(batch_output):
    result = batch_output
    assert result.code == 0, result.stderr
    vms = [d["metadata"]["name"] for d in YAML(typ="safe").load_all(result.stdout) if d and d["kind"] == "VirtualMachine"]
    assert vms == sorted(vms) and len(vms) == len(SUCCESS)


def test_render_twice_gives_identical_bytes(batch, batch_output, tmp_path):
    again = run_cli(["render", "-f", batch, *TARGET_ARGS])
    assert again.stdout == batch_output.stdout and again.stderr == batch_output.stderr
    a, b = tmp_path / "a", tmp_path / "b"
    assert run_cli(["render", "-f", batch, *TARGET_ARGS, "--output-dir", a]).code == 0
    assert run_cli(["render", "-f", batch, *TARGET_ARGS, "--output-dir", b]).code == 0
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)


def test_identical_bytes_across_processes_and_hash_seeds(batch, batch_output):
    """Separate interpreters with different hash seeds: no set or dict-order leaks into the output."""
    outputs = set()
    for seed in ("0", "4242"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        proc = subprocess.run([sys.executable, "-m", "kubectl_dlm", "render", "-f", str(batch), *TARGET_ARGS],
                              capture_output=True, cwd=REPO, env=env, timeout=60)
        assert proc.returncode == 0, proc.stderr
        outputs.add(proc.stdout)
    assert len(outputs) == 1
    assert outputs.pop() == batch_output.stdout.encode()


@pytest.mark.parametrize("seed", [1, 2])
def test_shuffled_export_gives_identical_bytes(batch_output, tmp_path, seed):
    rng = random.Random(seed)
    objs = [shuffled(o, rng) for o in all_objects()]
    rng.shuffle(objs)  # the order of objects in the export does not matter either
    result = run_cli(["render", "-f", dump(objs, tmp_path / "shuffled.yaml"), *TARGET_ARGS])
    assert result.stdout == batch_output.stdout


# --- --template-dir -------------------------------------------------------------------------------

def test_template_override(tmp_path):
    original = (builtin_template_dir() / "datavolume.yaml.j2").read_text()
    assert "  source:\n    blank: {}\n" in original
    (tmp_path / "datavolume.yaml.j2").write_text(original.replace(
        "spec:\n  source:", "spec:\n  priorityClassName: disks\n  source:"))
    base = ["render", "-f", FIXTURES / "pvc-volumes.yaml", *TARGET_ARGS]
    plain, custom = run_cli(base), run_cli([*base, "--template-dir", tmp_path])
    assert custom.code == 0, custom.stderr
    docs = lambda r: [d for d in YAML(typ="safe").load_all(r.stdout) if d]
    for before, after in zip(docs(plain), docs(custom)):
        if before["kind"] == "DataVolume":
            assert after["spec"].pop("priorityClassName") == "disks"
        assert after == before  # the other templates (and the include) are the built-in ones


def test_override_of_an_included_template(tmp_path):
    original = (builtin_template_dir() / "_metadata.yaml.j2").read_text()
    (tmp_path / "_metadata.yaml.j2").write_text(original + "  finalizers: [\"example.com/keep\"]\n")
    result = run_cli(["render", "-f", FIXTURES / "pvc-volumes.yaml", *TARGET_ARGS, "--template-dir", tmp_path])
    docs = [d for d in YAML(typ="safe").load_all(result.stdout) if d]
    assert docs and all(d["metadata"]["finalizers"] == ["example.com/keep"] for d in docs)


BROKEN = {
    "syntax": ("{% if %}\n", "error: template virtualmachine.yaml.j2 failed for VirtualMachine files: "),
    "undefined": ("kind: {{ no_such_variable }}\n", "error: template virtualmachine.yaml.j2 failed for VirtualMachine files: "
                                                     "'no_such_variable' is undefined"),
    "not-yaml": ("kind: [\n", "error: template virtualmachine.yaml.j2 did not produce valid YAML: "),
    "not-an-object": ("- a\n- b\n", "error: template virtualmachine.yaml.j2 did not produce a Kubernetes object"),
}


@pytest.mark.parametrize("case", list(BROKEN))
@pytest.mark.parametrize("output", ["stdout", "output-dir"])
def test_broken_template_override_is_exit_7(case, output, tmp_path):
    templates = tmp_path / "templates"
    templates.mkdir()
    text, message = BROKEN[case]
    (templates / "virtualmachine.yaml.j2").write_text(text)
    out = tmp_path / "bundle"
    extra = ["--output-dir", out] if output == "output-dir" else []
    result = run_cli(["render", "-f", FIXTURES / "pvc-volumes.yaml", *TARGET_ARGS, "--template-dir", templates, *extra])
    assert result.code == errors.TEMPLATE == 7
    assert result.stdout == ""
    assert result.stderr_lines[0].startswith(message)
    assert result.stderr_lines[1].startswith("  hint: ") and len(result.stderr_lines) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["templates"]


def test_render_o_is_the_output_format_as_in_kubectl(batch, batch_output, tmp_path):
    """-o json is one v1 List of the same objects in the same order; it never writes a directory."""
    import json

    result = run_cli(["render", "-f", batch, *TARGET_ARGS, "-o", "json"], cwd=tmp_path)
    assert result.code == 0, result.stderr
    listed = json.loads(result.stdout)
    assert (listed["apiVersion"], listed["kind"]) == ("v1", "List")
    assert listed["items"] == [d for d in YAML(typ="safe").load_all(batch_output.stdout) if d]
    assert not list(tmp_path.iterdir())  # before, `-o json` wrote a directory named json
    assert run_cli(["render", "-f", batch, *TARGET_ARGS, "-o", "yaml"]).stdout == batch_output.stdout
    both = run_cli(["render", "-f", batch, *TARGET_ARGS, "-o", "json", "--output-dir", str(tmp_path / "t")])
    assert both.code == errors.USAGE and "-o json prints to stdout" in both.stderr
    assert run_cli(["render", "-f", batch, *TARGET_ARGS, "-o", str(tmp_path / "dir")]).code == errors.USAGE


# kubectl's short flags, and what each means there; a short flag of ours must mean the same.
KUBECTL_SHORT = {"-n": "--namespace", "-l": "--selector", "-f": "--filename", "-o": "--output", "-w": "--watch",
                 "-h": "--help"}


# Not a kubectl flag at all, with the meaning it has in most CLIs: allowed, nothing to confuse it with.
KUBECTL_SHORT["-y"] = "--yes"


@pytest.mark.parametrize("command", public_commands())
def test_every_short_flag_means_what_it_means_in_kubectl(command):
    cmd = cli_module.cli.get_command(None, command)
    for param in cmd.params:
        if not isinstance(param, click.Option):
            continue
        shorts = [o for o in param.opts + param.secondary_opts if len(o) == 2 and o.startswith("-")]
        longs = [o for o in param.opts if o.startswith("--")]
        for short in shorts:
            assert short in KUBECTL_SHORT, f"{command} {short}: not a kubectl short flag"
            assert KUBECTL_SHORT[short] in longs, f"{command} {short} is {longs}, kubectl's is {KUBECTL_SHORT[short]}"


def run_main(tmp_path, before: str, *args: str):
    """`kubectl_dlm.cli.main(args)` in a fresh interpreter, after the Python code `before`."""
    code = f"import sys\n{before}\nfrom kubectl_dlm import cli\ncli.main({list(args)!r})\n"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                          env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=60)


def test_the_process_exits_with_the_code_and_every_line_printed_and_atexit_run(tmp_path):
    """cli.exit_now skips the interpreter's teardown, not the output, the exit code or atexit
    (the kubernetes client removes its certificate temp files there)."""
    marker = tmp_path / "atexit-ran"
    before = f"import atexit, pathlib\natexit.register(pathlib.Path({str(marker)!r}).write_text, 'yes')"
    proc = run_main(tmp_path, before, "render", "--example")
    assert proc.returncode == 0 and proc.stdout == run_cli(["render", "--example"]).stdout
    assert marker.read_text() == "yes"
    proc = run_main(tmp_path, "", "render", "nope", "-f", str(tmp_path / "missing.yaml"))
    assert proc.returncode == errors.USAGE and proc.stderr.startswith("error: ")


def test_the_process_waits_for_a_non_daemon_thread_before_it_exits(tmp_path):
    marker = tmp_path / "thread-done"
    before = ("import threading, time, pathlib\n"
              f"threading.Thread(target=lambda: (time.sleep(0.5), pathlib.Path({str(marker)!r}).write_text('done'))).start()")
    proc = run_main(tmp_path, before, "--version")
    assert proc.returncode == 0 and proc.stdout.startswith("kubectl-dlm ")
    assert marker.read_text() == "done"
