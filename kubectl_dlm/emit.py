"""Plain data -> YAML text: the bytes ruamel.yaml's round-trip dumper writes in our style, faster.

Our style: 2-space indent, list dashes flush with the key (kubectl's), no folding, multi-line
strings as `|` blocks, and strings a YAML 1.1 reader (kubectl, sigs.k8s.io/yaml) would take for
something else (`yes`, `on`, `1:20`, ...) single-quoted, keys included: ruamel dumps YAML 1.2,
where they are plain strings, so a ConfigMap value "on" would otherwise reach the API server as
`true`.

Why not ruamel itself: its pure-Python emitter cost about 4 ms per object, most of a 500-VM
render (benchmarks/README.md). This module writes the shapes Kubernetes objects have (dicts with
string keys, lists, str, int, bool, None) with ruamel's own scalar-style rules (analyze_scalar and
choose_scalar_style of ruamel/yaml/emitter.py, ported) and ruamel's resolvers; anything else (a
float, a non-string key, a scalar long enough for ruamel to fold at 4096 columns) is dumped by
ruamel itself, so the output never differs (tests/test_emit.py compares the two).
"""

from __future__ import annotations

import io
import re
from typing import Any, Dict, List, Optional

WIDTH = 4096  # ruamel's line width here: never fold long strings, folding makes diffs noisy
BREAKS = "\n\x85\u2028\u2029"
_SPACE_OR_BREAK = "\0 \t\r\n\x85\u2028\u2029"
_ESCAPES = {"\0": "0", "\x07": "a", "\x08": "b", "\x09": "t", "\x0A": "n", "\x0B": "v", "\x0C": "f",
            "\x0D": "r", "\x1B": "e", '"': '"', "\\": "\\", "\x85": "N", "\xA0": "_", "\u2028": "L",
            "\u2029": "P"}
# ruamel Emitter.check_simple_key: a key of MAX_SIMPLE_KEY_LENGTH (128) or more, its tag (`!!str`)
# counted, is written as `? key`
_MAX_SIMPLE_KEY = 128 - len("!!str")


class _Unsupported(Exception):
    """A value this emitter does not model: ruamel dumps the document instead."""


def dump(data: Any) -> str:
    """One YAML document (no leading '---'), as ruamel's round-trip dumper writes it in our style."""
    if isinstance(data, dict) and data:
        out: List[str] = []
        try:
            _mapping(data, 0, out, False)
            if out[-2].startswith("|") and out[-2].split("\n", 1)[0].endswith("+"):
                out.append("...\n")  # a document that ends in a keep-chomped block is closed (ruamel's open_ended)
            return "".join(out)
        except _Unsupported:
            pass
    return ruamel_dump(data)


# --- ruamel: the reference, and the fallback ------------------------------------------------------

def ruamel_dumper():
    from ruamel.yaml import YAML

    yaml = YAML(typ="rt", pure=True)
    yaml.indent(mapping=2, sequence=2, offset=0)  # kubectl's style: list dashes flush with the key
    yaml.width = WIDTH
    return yaml


def ruamel_dump(data: Any) -> str:
    out = io.StringIO()
    ruamel_dumper().dump(styled(data), out)
    return out.getvalue()


def styled(value: Any) -> Any:
    """`value` with ruamel's style markers: `|` for multi-line strings, quotes for YAML 1.1 look-alikes."""
    from ruamel.yaml.scalarstring import LiteralScalarString, SingleQuotedScalarString

    if isinstance(value, dict):
        return {styled(k) if _quote_11(k) else k: styled(v) for k, v in value.items()}
    if isinstance(value, list):
        return [styled(v) for v in value]
    if isinstance(value, str):
        if _literal(value):
            return LiteralScalarString(value)
        if _quote_11(value):
            return SingleQuotedScalarString(value)
    return value


# --- style decisions (shared by both paths) -------------------------------------------------------

def _literal(text: str) -> bool:
    """Multi-line strings (cloud-init user data, scripts) read best as `|` blocks, when they can be one."""
    return "\n" in text.rstrip("\n") and _printable(text)


def _printable(text: str) -> bool:
    return all(ch == "\n" or ch == "\t" or (ch.isprintable() and ch != "\r") for ch in text) and not any(
        line != line.rstrip() for line in text.split("\n"))


def _quote_11(value: Any) -> bool:
    return isinstance(value, str) and "\n" not in value and _resolves(value, (1, 1)) != _STR


_STR = "tag:yaml.org,2002:str"
_resolvers: Dict[Any, Any] = {}
_resolved: Dict[Any, str] = {}


def _resolves(text: str, version) -> str:
    """The tag a plain scalar gets in YAML `version` (ruamel's resolver; cached, and skipped for
    strings whose first character no implicit resolver is registered for)."""
    resolver = _resolvers.get(version)
    if resolver is None:
        from ruamel.yaml.nodes import ScalarNode
        from ruamel.yaml.resolver import VersionedResolver

        impl = VersionedResolver(version=version)
        firsts = set(impl.versioned_resolver)
        resolver = _resolvers[version] = (impl, ScalarNode, firsts, None in firsts)
    impl, node, firsts, any_first = resolver
    if text and text[0] not in firsts and not any_first:
        return _STR
    key = (text, version)
    tag = _resolved.get(key)
    if tag is None:
        if len(_resolved) > 65536:
            _resolved.clear()
        tag = _resolved[key] = impl.resolve(node, text, (True, False))
    return tag


# --- the emitter ----------------------------------------------------------------------------------

def _mapping(data: dict, indent: int, out: List[str], inline: bool) -> None:
    pad = " " * indent
    for key, value in data.items():
        if inline:
            inline = False  # the first key follows "- " on the dash's line
        else:
            out.append(pad)
        out.append(_key(key))
        out.append(":")
        if isinstance(value, dict):
            if value:
                out.append("\n")
                _mapping(value, indent + 2, out, False)
            else:
                out.append(" {}\n")
        elif isinstance(value, list):
            if value:
                out.append("\n")
                _sequence(value, indent, out, False)
            else:
                out.append(" []\n")
        elif value is None:
            out.append("\n")
        else:
            out.append(" ")
            out.append(_scalar(value, indent + 2, indent + len(out[-3]) + 2))
            out.append("\n")


def _sequence(data: list, indent: int, out: List[str], inline: bool) -> None:
    pad = " " * indent
    for value in data:
        if inline:
            inline = False
            out.append("-")
        else:
            out.append(pad + "-")
        if isinstance(value, dict):
            if value:
                out.append(" ")
                _mapping(value, indent + 2, out, True)
            else:
                out.append(" {}\n")
        elif isinstance(value, list):
            if value:
                out.append(" ")
                _sequence(value, indent + 2, out, True)
            else:
                out.append(" []\n")
        elif value is None:
            out.append(" \n")
        else:
            out.append(" ")
            out.append(_scalar(value, indent + 2, indent + 2))
            out.append("\n")


def _key(key: Any) -> str:
    text = _keys.get(key) if type(key) is str else None
    if text is None:
        if type(key) is not str or not key or len(key) >= _MAX_SIMPLE_KEY or any(ch in key for ch in BREAKS):
            raise _Unsupported()  # ruamel writes these as complex keys (`? key`)
        text = _cached(_keys, key, _simple(key) or _write(key, _choose_style(key, "'" if _quote_11(key) else None, True), 0))
    return text


def _scalar(value: Any, indent: int, column: int) -> str:
    kind = type(value)
    if kind is str:
        if column + len(value) >= WIDTH - 16 and not _literal(value):  # ruamel may fold or move it
            raise _Unsupported()
        text = _values.get(value)
        if text is None:
            if not value:
                return "''"
            if _literal(value):
                return _write(value, "|", indent)  # depends on the indent: not cached
            text = _cached(_values, value, _simple(value) or _write(
                value, _choose_style(value, "'" if _quote_11(value) else None, False), indent))
        return text
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return str(value)
    raise _Unsupported()  # floats (ruamel's own repr), timestamps, subclasses: ruamel's job


_keys: Dict[str, str] = {}
_values: Dict[str, str] = {}
# Strings of these characters, not ending in ':' or ' ' and without ': ', have no indicator, break
# or special character: plain, unless a resolver reads them as something else (then quoted).
_SIMPLE = re.compile(r"[A-Za-z0-9_/][A-Za-z0-9_./=+: -]*\Z")


def _simple(text: str) -> Optional[str]:
    if not _SIMPLE.match(text) or text.endswith((":", " ")) or ": " in text:
        return None
    return f"'{text}'" if _quote_11(text) or _resolves(text, (1, 2)) != _STR else text


def _cached(cache: Dict[str, str], text: str, written: str) -> str:
    if len(cache) > 65536:
        cache.clear()
    cache[text] = written
    return written


def _choose_style(text: str, requested: Optional[str], simple_key: bool) -> str:
    """ruamel Emitter.choose_scalar_style for our three requests: plain (None), `'` and `|`."""
    a = _analyze(text)
    if requested is None and _resolves(text, (1, 2)) == _STR:
        if not (simple_key and a["multiline"]) and a["block_plain"]:
            return ""
    if requested is None and a["double"] and ("'" in text or "\n" in text):
        return '"'
    if a["single"] and not (simple_key and a["multiline"]):
        return "'"
    return '"'


def _analyze(scalar: str) -> Dict[str, bool]:
    """ruamel Emitter.analyze_scalar (allow_unicode, YAML 1.2), the flags block context needs."""
    block_indicators = line_breaks = special = False
    leading_space = leading_break = trailing_space = trailing_break = break_space = space_break = False
    if scalar.startswith("---") or scalar.startswith("..."):
        block_indicators = True
    preceded_by_ws = True
    followed_by_ws = len(scalar) == 1 or scalar[1] in _SPACE_OR_BREAK
    previous_space = previous_break = False
    last = len(scalar) - 1
    for index, ch in enumerate(scalar):
        if index == 0:
            if ch in "#,[]{}&*!|>'\"%@`":
                block_indicators = True
            if ch in "?:" and followed_by_ws:
                block_indicators = True
            if ch == "-" and followed_by_ws:
                block_indicators = True
        else:
            if ch == ":" and followed_by_ws:
                block_indicators = True
            if ch == "#" and preceded_by_ws:
                block_indicators = True
        if ch in BREAKS:
            line_breaks = True
        if not (ch == "\n" or "\x20" <= ch <= "\x7E"):
            if not ((ch == "\x85" or "\xA0" <= ch <= "\uD7FF" or "\uE000" <= ch <= "\uFFFD"
                     or "\U00010000" <= ch <= "\U0010FFFF") and ch != "\uFEFF"):
                special = True
        if ch == " ":
            if index == 0:
                leading_space = True
            if index == last:
                trailing_space = True
            if previous_break:
                break_space = True
            previous_space, previous_break = True, False
        elif ch in BREAKS:
            if index == 0:
                leading_break = True
            if index == last:
                trailing_break = True
            if previous_space:
                space_break = True
            previous_space, previous_break = False, True
        else:
            previous_space = previous_break = False
        preceded_by_ws = ch in _SPACE_OR_BREAK
        followed_by_ws = index + 2 > last or scalar[index + 2] in _SPACE_OR_BREAK
    block_plain = single = True
    if leading_space or leading_break or trailing_space or trailing_break:
        block_plain = False
    if break_space:
        block_plain = single = False
    if special or space_break:
        block_plain = single = False
    if line_breaks or block_indicators:
        block_plain = False
    return {"multiline": line_breaks, "block_plain": block_plain, "single": single, "double": True}


def _write(text: str, style: str, indent: int) -> str:
    if style == "":
        return text
    if any(ch in text for ch in "\x85\u2028\u2029"):
        raise _Unsupported()  # line breaks other than \n: ruamel's line-break handling applies
    if style == "'":
        if "\n" in text:
            raise _Unsupported()
        return "'" + text.replace("'", "''") + "'"
    if style == '"':
        return '"' + "".join(_escape(ch) for ch in text) + '"'
    return _literal_block(text, indent)


def _escape(ch: str) -> str:
    if ch in '"\\\uFEFF' or not ("\x20" <= ch <= "\x7E" or "\xA0" <= ch <= "\uD7FF" or "\uE000" <= ch <= "\uFFFD"
                                  or "\U00010000" <= ch <= "\U0010FFFF"):
        if ch in _ESCAPES:
            return "\\" + _ESCAPES[ch]
        if ch <= "\xFF":
            return "\\x%02X" % ord(ch)
        if ch <= "\uFFFF":
            return "\\u%04X" % ord(ch)
        return "\\U%08X" % ord(ch)
    return ch


def _literal_block(text: str, indent: int) -> str:
    """ruamel Emitter.write_literal with determine_block_hints, outside the root context."""
    hints = "2" if text[0] in " \n" else ""
    if text[-1] != "\n":
        hints += "-"
    elif len(text) == 1 or text[-2] == "\n":
        hints += "+"
    lines = text.split("\n")
    if text.endswith("\n"):
        lines.pop()
    pad = " " * indent
    return "|" + hints + "\n" + "\n".join(pad + line if line else "" for line in lines)
