"""skeleton.read: the template skeletons it reads are what ruamel.yaml's safe loader reads, and
anything it is not sure of is left to that parser (None)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from kubectl_dlm import pipeline, rbac, render, skeleton
from kubectl_dlm.checks.facts import Access
from kubectl_dlm.commands.render import example_path
from tests.conftest import FIXTURES


def parsed(text: str):
    return YAML(typ="safe", pure=True).load(text)


def same(a, b) -> bool:
    """Equal, with the same types and key order all the way down."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return a == b


def rendered_skeletons(monkeypatch) -> dict:
    """Every distinct skeleton the built-in templates give for the fixtures, the example and rbac."""
    seen = {}
    real = render._parse

    def spy(text, origin):
        seen[text] = origin
        return real(text, origin)

    monkeypatch.setattr(render, "_parse", spy)
    render._skeletons.clear()
    for path in [example_path(), *sorted(Path(FIXTURES).glob("*.yaml"))]:
        for secrets in ("include", "reference"):
            request = pipeline.Request(filename=str(path), to_namespace="prod-b", connect_url="192.0.2.20:9185",
                                       secrets=secrets)
            try:
                pipeline.run(request, after=True)
            except Exception:  # noqa: BLE001 - the fixtures of refusals: their skeletons, if any, were seen
                pass
    table = {"source": [Access("get", "virtualmachines", "kubevirt.io", "prod")],
             "target": [Access("get", "namespaces", "", "", "prod-b")]}
    for same_cluster in (False, True):
        for item in rbac.items(table, rbac.Subject("User", "alice"), "kubectl-dlm", same_cluster):
            render.Renderer().render_item(item)
    return seen


def test_every_skeleton_of_the_built_in_templates_is_read_here_as_the_parser_reads_it(monkeypatch):
    seen = rendered_skeletons(monkeypatch)
    origins = set(seen.values())
    assert {"virtualmachine.yaml.j2", "datavolume.yaml.j2", "secret.yaml.j2", "vmim-send.yaml.j2",
            "rbac-role.yaml.j2", "rbac-binding.yaml.j2"} <= origins
    for text, origin in seen.items():
        mine = skeleton.read(text)
        assert mine is not None, f"{origin} went to the YAML parser:\n{text}"
        assert same(mine, parsed(text)), origin


@pytest.mark.parametrize("text", [
    "kind: Secret\nmetadata:\n  name: \"__dlm_value_0__\"\n",
    "apiVersion: cdi.kubevirt.io/v1beta1\nkind: DataVolume\nspec:\n  source:\n    blank: {}\n  storage:\n"
    "    volumeMode: \"__dlm_value_1__\"\n\n    resources:\n      requests:\n        storage: \"__dlm_value_2__\"\n",
    "kind: RoleBinding\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: Role\n",
    "a: b   \nc:\n    d: e\n    f:\n      g: h\ni: j\n",
])
def test_simple_shapes_are_read_as_the_parser_reads_them(text):
    assert same(skeleton.read(text), parsed(text))


@pytest.mark.parametrize("text", [
    "",  # empty: the parser says None
    "# a comment\nkind: Secret\n",
    "kind: Secret # trailing comment\n",
    "---\nkind: Secret\n",
    "kind: Secret\n---\nkind: ConfigMap\n",
    "kind: Secret\nimmutable: true\n",
    "kind: Secret\nimmutable: True\n",
    "kind: Secret\nflag: yes\n",  # YAML 1.1: a boolean
    "kind: Secret\nflag: on\n",
    "kind: Secret\nvalue: null\n",
    "kind: Secret\nvalue: ~\n",
    "kind: Secret\ncount: 3\n",
    "kind: Secret\nratio: .5\n",
    "kind: Secret\nwhen: 2026-01-01\n",
    "kind: Secret\nname: 'quoted'\n",
    "kind: Secret\nname: \"quoted\"\n",
    "kind: Secret\nname: \"__dlm_value_0__\" \"__dlm_value_1__\"\n",
    "kind: Secret\nname: prefix-\"__dlm_value_0__\"\n",
    "kind: Secret\nlist:\n- a\n",
    "kind: Secret\nlist: [a]\n",
    "kind: Secret\nmap: {a: b}\n",
    "kind: Secret\nempty:\n",  # null
    "kind: Secret\nempty:\nnext: x\n",
    "kind: Secret\nkind: ConfigMap\n",  # duplicate key
    "kind: Secret\nmetadata:\n  name: a\n name: b\n",  # not aligned
    "kind: Secret\n\tname: a\n",
    "kind: Secret\r\n",
    "  kind: Secret\nname: a\n",
    "kind: Secret\nyes: a\n",
    "kind: Secret\ntext: a b\n",
    "kind: Secret\ntext: |\n  a\n",
    "kind: Secret\nanchor: &a x\n",
    "kind: Secret\ntag: !!str x\n",
    "kind: Secret\n? complex\n: key\n",
    "kind: Sec:ret\n",
])
def test_anything_else_is_left_to_the_parser(text):
    assert skeleton.read(text) is None


KEYS = ["kind", "name", "spec", "a1", "x", "apiVersion", "metadata", "labels", "data", "type", "vmiName", "sendTo"]
TRICKY_KEYS = ["on", "yes", "True", "Null", "1", "a b"]
VALUES = ["", "", "{}", '"__dlm_value_0__"', '"__dlm_value_12__"', "v1", "kubevirt.io/v1", "WaitAsReceiver", "a-b.c/d",
          "e1", "Infinity", "NaN", "a#b"]
TRICKY_VALUES = ["true", "False", "null", "no", "y", "N", "1", "1.5", "0x1", ".inf", "-a", "a b", "'a'", "{a: b}",
                 "[a]", "~", "a #b", "2026-01-01", '"a"', "|", "&a x"]


def test_generated_skeletons_are_read_as_the_parser_reads_them_or_left_to_it():
    rng = random.Random(20261204)
    read = 0
    for _ in range(3000):
        lines, depth = [], 0
        for _ in range(rng.randint(1, 8)):
            depth = max(0, min(depth + rng.choice((-1, 0, 0, 1)), 3))
            indent = " " * (depth * rng.choice((2, 2, 4)) + rng.choice((0, 0, 0, 1)))
            value = rng.choice(TRICKY_VALUES if rng.random() < 0.05 else VALUES)
            key = rng.choice(TRICKY_KEYS if rng.random() < 0.05 else KEYS)
            lines.append(f"{indent}{key}:{' ' if value else ''}{value}{rng.choice(('', '', ' '))}")
            if rng.random() < 0.1:
                lines.append("")
        text = "\n".join(lines) + "\n"
        mine = skeleton.read(text)
        if mine is None:
            continue
        read += 1
        try:
            theirs = parsed(text)
        except YAMLError as exc:
            pytest.fail(f"read what the parser rejects ({exc}):\n{text}")
        assert same(mine, theirs), text
    assert read > 200  # the generator does reach the shapes read here (about 250 of the 3000)
