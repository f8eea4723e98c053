"""emit.dump writes the same bytes as ruamel.yaml's round-trip dumper in our style.

ruamel (emit.ruamel_dump: YAML(typ="rt", pure=True), indent 2/2/0, width 4096, with the `|` and
quote markers of emit.styled) is the reference; every case compares the two outputs whole:
every document of every reviewed snapshot, every upstream example manifest, the tricky scalars
one by one in every position, and a few thousand seeded random documents built from them.
"""

from __future__ import annotations

import random
import string

import pytest
from ruamel.yaml import YAML

from kubectl_dlm import emit
from tests.conftest import REPO

SNAPSHOTS = sorted((REPO / "tests" / "__snapshots__" / "test_snapshots").glob("*.yaml"))

TRICKY = [
    # look like something else in YAML 1.1 or 1.2
    "yes", "no", "on", "off", "y", "n", "Y", "N", "true", "False", "TRUE", "null", "Null", "~", "",
    "1", "-1", "+1", "0", "007", "0o17", "0x1F", "1e3", "1.5", ".5", "-.inf", ".nan", ".NaN", "1_000",
    "1:20", "190:20:30", "2024-01-01", "2024-01-01T00:00:00Z", "=", "<<", "0b101",
    # indicators and quotes
    "-", "- x", "-x", "?", "? x", ":", ": x", "a: b", "a:b", "a:", "#c", "a #c", "a#c", "@x", "`x", "%x",
    "!x", "&x", "*x", "|", ">", "'", '"', "it's", 'say "hi"', "[a]", "{a}", "a,b", "a[0]", "---", "...",
    "--- x", "...x", "x ---",
    # whitespace
    " lead", "trail ", " ", "  ", "a  b", "tab\there", "\tlead", "x\r\ny",
    # multi-line: literal blocks and the ones that cannot be
    "x\ny", "x\ny\n", "x\ny\n\n", "\nlead", " lead\nsecond", "x\n\ny", "x\n", "\n", "\n\n", "x\n \ny",
    "trailing \nspace", "#!/bin/bash\necho hi\n", "key: value\nother: 1\n", "x\n\n\n", "a\tb\nc\n",
    # unicode and control characters
    "é ü", "日本語", "emoji 🚀", "nbsp\xa0x", "\ufeffbom", "bell\x07", "nul\x00", "esc\x1b", "del\x7f",
    "\x85next", "line\u2028sep", "zw\u200bsp", "\ud7ff", "\ue000", "\ufffd",
    # ordinary Kubernetes values
    "vm-0001", "192.0.2.20:9185", "https://example.com/a?b=c#d", "app.kubernetes.io/name", "20Gi",
    "I2Nsb3VkLWNvbmZpZwo=", "kubevirt.io/v1", "a b c", "x" * 127, "x" * 128,
]

OTHER_SCALARS = [None, True, False, 0, 1, -7, 10 ** 20, 1.5, 0.1, float("inf")]


def load_all(text: str):
    return [d for d in YAML(typ="safe", pure=True).load_all(text) if d is not None]


def same(data) -> str:
    ours, reference = emit.dump(data), emit.ruamel_dump(data)
    assert ours == reference, f"{data!r}\n--- ours ---\n{ours}\n--- ruamel ---\n{reference}"
    return ours


@pytest.mark.parametrize("path", SNAPSHOTS, ids=lambda p: p.stem)
def test_every_snapshot_document_writes_back_byte_identical(path, monkeypatch):
    text = path.read_text()
    if path.stem == "test_output_dir_tree":  # a map of file name -> file text
        docs = [(doc, content) for tree in load_all(text) for name, content in tree.items()
                if name.endswith(".yaml") and "kustomization" not in name and name != "dlm-bundle.yaml"
                for doc in load_all(content)]
    else:
        docs = [(doc, text) for doc in load_all(text)]
    assert docs, path
    # the fast path alone writes every one of them: ruamel is not asked
    monkeypatch.setattr(emit, "ruamel_dump", lambda data: pytest.fail(f"fell back to ruamel for {data!r}"))
    for doc, reviewed in docs:
        assert emit.dump(doc) in reviewed  # exactly the reviewed text
    monkeypatch.undo()
    for doc, _ in docs:
        same(doc)


def test_every_upstream_example_manifest(shared):
    files = sorted((shared / "examples").glob("*.yaml"))
    assert files
    count = 0
    for path in files:
        for doc in load_all(path.read_text()):
            if isinstance(doc, dict) and doc:
                same(doc)
                count += 1
    assert count >= len(files)


@pytest.mark.parametrize("value", TRICKY + OTHER_SCALARS, ids=repr)
def test_tricky_scalar_in_every_position(value):
    same({"key": value})
    same({"a": {"b": [value, [value], {"c": value}]}, "d": [[value, value]]})
    if isinstance(value, str) or value is None:
        same({"k": [{"deep": {"deeper": [value]}}]})
    if isinstance(value, str) and value:
        same({value: 1, "x": {value: value}, "l": [{value: [value]}]})


def test_empty_collections_and_nesting():
    same({"a": {}, "b": [], "c": [{}, [], [[]], [{}], {"d": {}}], "e": {"f": [[1, [2, [3]]]]}})
    same({"kind": "X", "list": [{"a": 1, "b": [1, 2], "c": {"d": None}}, {"e": [{"f": "g"}]}]})


def test_long_strings_past_the_fold_width_are_left_to_ruamel():
    for size in (4000, 4100, 9000):
        same({"data": {"ca.crt": "A" * size}, "note": ("word " * size)[:size]})
        same({"l": ["x" * size, " ".join(["y" * 50] * (size // 50))]})


def test_non_string_keys_and_floats_are_left_to_ruamel():
    same({1: "a", "b": 2})
    same({"cpu": 0.5, "list": [1.0, 2e-9]})
    same({True: None})


def test_seeded_random_documents(monkeypatch):
    rnd = random.Random(20261203)
    alphabet = string.ascii_letters + string.digits + " :#-'\"\n\t.,[]{}!&*|>%@`?é🚀\x07\xa0"
    tokens = TRICKY + ["".join(rnd.choice(alphabet) for _ in range(rnd.randint(1, 12))) for _ in range(300)]
    # keys as Kubernetes has them (one line, short): the fast path's; the rest is ruamel's, tested above
    keys = [t for t in tokens if t and len(t) < 100 and not any(b in t for b in emit.BREAKS)]
    values = [t for t in tokens if not any(b in t for b in "\x85\u2028\u2029")]

    def scalar():
        return rnd.choice(values) if rnd.random() < 0.85 else rnd.choice(OTHER_SCALARS[:7])

    def node(depth):
        roll = rnd.random()
        if depth > 4 or roll < 0.45:
            return scalar()
        if roll < 0.75:
            return {rnd.choice(keys): node(depth + 1) for _ in range(rnd.randint(0, 4))}
        return [node(depth + 1) for _ in range(rnd.randint(0, 4))]

    reference, fell_back = emit.ruamel_dump, []
    monkeypatch.setattr(emit, "ruamel_dump", lambda data: fell_back.append(data) or reference(data))
    for _ in range(1500):
        doc = {"kind": "Random", **{rnd.choice(keys): node(0) for _ in range(rnd.randint(1, 5))}}
        ours = emit.dump(doc)
        assert ours == reference(doc), f"{doc!r}\n--- ours ---\n{ours}\n--- ruamel ---\n{reference(doc)}"
    assert not fell_back, "the fast path writes all of these, not ruamel"
