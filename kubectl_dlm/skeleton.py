"""Read a rendered template's YAML skeleton without the YAML parser, for the shapes the built-in
templates produce (render.py); anything else is left to the parser.

A skeleton has its nested values as placeholders (render._Values), so what is left is a block
mapping of keys whose values are a nested mapping, a placeholder, `{}` or one plain word
(`kubevirt.io/v1`, `VirtualMachine`). Those are read here, exactly as ruamel.yaml's safe loader
reads them (tests/test_skeleton.py compares the two on every skeleton the templates render and on
generated ones); for any other line (comments, sequences, quotes, flow, numbers, booleans, tabs,
duplicate keys, a key with nothing under it) `read` returns None and render.py asks the parser.
The pure-Python parser took ~8 ms of `render --example`'s ~75 ms of own work.
"""

from __future__ import annotations

import re
from typing import Optional

# A key, then nothing (a nested mapping follows), a placeholder, `{}`, or one plain word that YAML
# reads as a string in 1.1 and 1.2 alike (no digit, sign or dot first; booleans and null refused below).
_LINE = re.compile(r'([A-Za-z][A-Za-z0-9]*):(?: +("__dlm_value_\d+__"|\{\}|[A-Za-z][A-Za-z0-9./-]*))? *')
# Words some YAML version reads as a boolean or null (1.1: y, n, yes, no, on, off; 1.2: true, false, null).
_NOT_STRINGS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null"}


def read(text: str) -> Optional[dict]:
    """The mapping the skeleton's YAML means, or None when it is not one of the simple shapes."""
    root: dict = {}
    stack = [(0, root)]  # (indentation of its keys, mapping)
    pending = None  # (indentation, mapping, key) of a `key:` waiting for the more indented lines under it
    for line in text.split("\n"):
        if not line.strip(" "):
            continue
        body = line.lstrip(" ")
        indent = len(line) - len(body)
        match = _LINE.fullmatch(body)
        if match is None:
            return None
        key, value = match.groups()
        if key.lower() in _NOT_STRINGS:
            return None
        if pending is not None:
            above, mapping, name = pending
            if indent <= above:
                return None  # `key:` with nothing under it is null: left to the parser
            mapping[name] = {}
            stack.append((indent, mapping[name]))
            pending = None
        while stack[-1][0] > indent:
            stack.pop()
        if stack[-1][0] != indent:
            return None  # not aligned with any open mapping
        mapping = stack[-1][1]
        if key in mapping:
            return None  # a duplicate key: the parser says what is wrong with it
        if value is None:
            pending = (indent, mapping, key)
        elif value == "{}":
            mapping[key] = {}
        elif value.startswith('"'):
            mapping[key] = value[1:-1]
        elif value.lower() in _NOT_STRINGS:
            return None
        else:
            mapping[key] = value
    if pending is not None or not root:
        return None
    return root
