"""load.py (and `render -f`): exports as kubectl writes them, multi-document YAML, stdin, bad input."""

from __future__ import annotations

import pytest

from kubectl_dlm import errors
from kubectl_dlm.errors import UsageError
from kubectl_dlm.load import read_text
from tests.conftest import FIXTURES, TARGET_ARGS, run_cli

VM = """apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata:
  name: {name}
{ns}spec:
  runStrategy: Always
  template:
    spec:
      domain:
        devices: {{}}
"""


def keys(source):
    return sorted(source.objects)


def test_kubectl_list():
    source = read_text((FIXTURES / "pvc-volumes.yaml").read_text(), "f", "default")
    assert keys(source) == [("PersistentVolumeClaim", "prod", "files-os"), ("PersistentVolumeClaim", "prod", "files-scratch"),
                            ("VirtualMachine", "prod", "files"), ("VirtualMachineInstance", "prod", "files")]
    assert not source.live


def test_json_export_reads_the_same_as_its_yaml():
    """`kubectl get -o json` goes through the json module (fast), and means what the YAML means."""
    import json

    from ruamel.yaml import YAML

    text = (FIXTURES / "pvc-volumes.yaml").read_text()
    as_json = json.dumps(YAML(typ="safe", pure=True).load(text), indent=4)
    assert read_text(as_json, "f", "default").objects == read_text(text, "f", "default").objects
    # flow YAML that is not JSON still reads, through the YAML parser
    flow = read_text('{kind: ConfigMap, metadata: {name: a}, data: {k: "on"}}', "f", "default")
    assert flow.get("ConfigMap", "default", "a")["data"] == {"k": "on"}


def test_multi_document_and_default_namespace():
    text = "---\n" + VM.format(name="a", ns="") + "---\n" + VM.format(name="b", ns="  namespace: other\n") + "---\n"
    source = read_text(text, "f", "fallback")
    assert keys(source) == [("VirtualMachine", "fallback", "a"), ("VirtualMachine", "other", "b")]


def test_typed_lists_and_lists_in_streams():
    text = ("apiVersion: kubevirt.io/v1\nkind: VirtualMachineList\nitems:\n- kind: VirtualMachine\n  metadata: {name: a}\n"
            "---\n" + VM.format(name="b", ns=""))
    assert [k[2] for k in keys(read_text(text, "f", "ns"))] == ["a", "b"]


@pytest.mark.parametrize("text, message", [
    ("kind: [unclosed\n", "f: not valid YAML: "),
    ("- just\n- a list\n", "f: expected Kubernetes objects, found a list"),
    ("hello\n", "f: expected Kubernetes objects, found a str"),
    ("kind: VirtualMachine\nmetadata: {}\n", "f: every object needs kind and metadata.name (found kind='VirtualMachine')"),
    ("metadata: {name: x}\n", "f: every object needs kind and metadata.name (found kind=None)"),
    ("", "f: no objects found"),
    ("---\n---\n", "f: no objects found"),
])
def test_bad_input_is_a_usage_error(text, message):
    with pytest.raises(UsageError) as exc:
        read_text(text, "f", "default")
    assert exc.value.message.startswith(message)
    assert exc.value.exit_code == errors.USAGE


def test_stdin():
    text = (FIXTURES / "pvc-volumes.yaml").read_text()
    from_stdin = run_cli(["render", "-f", "-", *TARGET_ARGS], stdin=text)
    from_file = run_cli(["render", "-f", FIXTURES / "pvc-volumes.yaml", *TARGET_ARGS])
    assert from_stdin.code == 0 and from_stdin.stdout == from_file.stdout != ""


def test_bad_yaml_on_the_command_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: v1\nkind: List\nitems:\n- kind: Secret\n  data: {password: c2VjcmV0\n")
    result = run_cli(["render", "-f", bad, *TARGET_ARGS])
    assert result.code == errors.USAGE
    assert result.stdout == ""
    assert result.stderr_lines[0].startswith(f"error: {bad}: not valid YAML: ")
    assert "c2VjcmV0" not in result.stderr  # the parser's context line would show it


def test_missing_file():
    result = run_cli(["render", "-f", "/nonexistent/vm.yaml", *TARGET_ARGS])
    assert (result.code, result.stdout) == (errors.USAGE, "")
    assert result.stderr_lines == ["error: cannot read -f /nonexistent/vm.yaml: No such file or directory"]


def test_vm_not_in_the_file():
    result = run_cli(["render", "nope", "-f", FIXTURES / "pvc-volumes.yaml", *TARGET_ARGS])
    assert result.code == errors.NOT_FOUND and result.stdout == ""
    assert result.stderr_lines[0] == f"error: VirtualMachine prod/nope not found in {FIXTURES / 'pvc-volumes.yaml'}"


def test_several_namespaces_need_n(tmp_path):
    both = tmp_path / "both.yaml"
    both.write_text(VM.format(name="a", ns="  namespace: one\n") + "---\n" + VM.format(name="b", ns="  namespace: two\n"))
    result = run_cli(["render", "-f", both, "--to-namespace", "x"])
    assert result.code == errors.USAGE
    assert result.stderr_lines == [f"error: {both} has VMs in several namespaces (one, two)", "  hint: choose one with -n"]


def test_selector_on_file_input(tmp_path):
    text = (FIXTURES / "maps.yaml").read_text()  # router has labels app=router, tier=edge
    for selector, code in [("app=router", 0), ("tier=edge,app=router", 0), ("app!=router", errors.NOT_FOUND),
                           ("tier", 0), ("missing", errors.NOT_FOUND)]:
        result = run_cli(["render", "-f", "-", "-l", selector, *TARGET_ARGS], stdin=text)
        assert result.code == code, (selector, result.stderr)


def test_the_built_in_example_json_is_example_yaml():
    """`render --example` reads example.json; example.yaml is the commented original it is made from."""
    import json

    from ruamel.yaml import YAML

    from kubectl_dlm.commands.render import example_path

    yaml_text = (example_path().parent / "example.yaml").read_text(encoding="utf-8")
    assert json.loads(example_path().read_text(encoding="utf-8")) == YAML(typ="safe", pure=True).load(yaml_text), \
        "kubectl_dlm/example.json is out of date: run `make example-json`"
