"""`-o table|wide|json|yaml|markdown` for the commands that report (status, check): layout only, pure.

A command hands over its rows (dicts), the columns to show and the machine-readable document;
this module lays them out. json and yaml carry the same document, markdown a table for change
tickets (pipes escaped, line breaks as <br>), wide every column unabridged on one line.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any, Dict, List, Sequence

import click

FORMATS = ("table", "wide", "json", "yaml", "markdown")


def output_option(what: str) -> Any:
    return click.option("-o", "--output", type=click.Choice(FORMATS), default="table", show_default=True,
                        help=f"table: {what}; wide: every column, unabridged; json/yaml: one document for "
                             "automation; markdown: a table to paste into a change ticket.")


@dataclass(frozen=True)
class Column:
    header: str
    key: str
    wide_only: bool = False  # shown by -o wide and markdown, left out of the terminal table


def document(data: Any, fmt: str) -> str:
    """json or yaml text of `data`, keys in the order the command built them, ending in a newline."""
    if fmt == "json":
        return json.dumps(data, indent=2) + "\n"
    from ruamel.yaml import YAML

    yaml = YAML(typ="rt", pure=True)
    yaml.default_flow_style = False
    yaml.width = 4096  # one line per value: no folding in the middle of a reason
    out = io.StringIO()
    yaml.dump(data, out)
    return out.getvalue()


def grid(columns: Sequence[Column], rows: Sequence[Dict[str, Any]], wide: bool = False,
         notes: Sequence[List[str]] = ()) -> str:
    """Aligned columns; `notes[i]` are lines printed indented under row i (table only)."""
    shown = [c for c in columns if wide or not c.wide_only]
    cells = [[_one_line(row.get(c.key)) for c in shown] for row in rows]
    widths = [max([len(c.header)] + [len(r[i]) for r in cells]) for i, c in enumerate(shown)]
    lines = [_join([c.header for c in shown], widths)]
    for index, row in enumerate(cells):
        lines.append(_join(row, widths))
        if not wide and index < len(notes):
            lines.extend("  " + line for line in notes[index])
    return "\n".join(lines) + "\n"


def markdown(columns: Sequence[Column], rows: Sequence[Dict[str, Any]]) -> str:
    header = "| " + " | ".join(c.header for c in columns) + " |"
    rule = "|" + "|".join("---" for _ in columns) + "|"
    body = ["| " + " | ".join(_cell(row.get(c.key)) for c in columns) + " |" for row in rows]
    return "\n".join([header, rule, *body]) + "\n"


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return "\n".join(_text(v) for v in value)
    return str(value)


def _one_line(value: Any) -> str:
    return " / ".join(part.strip() for part in _text(value).splitlines() if part.strip())


def _cell(value: Any) -> str:
    text = _text(value).replace("\\", "\\\\").replace("|", "\\|")
    return "<br>".join(part.strip() for part in text.splitlines() if part.strip())


def _join(cells: Sequence[str], widths: Sequence[int]) -> str:
    return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths)).rstrip()
