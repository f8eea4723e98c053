"""What `kubectl dlm check -o ...` prints (json/yaml are Report.to_dict): layout kept out of the rules."""

from __future__ import annotations

from typing import Optional

from kubectl_dlm import formats
from kubectl_dlm.checks.facts import FAIL, PASS, UNKNOWN, WARN, Report
from kubectl_dlm.formats import Column


def format_table(report: Report, width: Optional[int] = None) -> str:
    """One row per check; the fix on an indented line below the row it belongs to."""
    import shutil
    import textwrap

    width = width or max(100, shutil.get_terminal_size((120, 24)).columns)

    rows = report.rows
    name_w = max([len("CHECK")] + [len(r.name) for r in rows])
    scope_w = min(max([len("FOR")] + [len(r.scope) for r in rows]), 36)
    indent = 8 + name_w + 2 + scope_w + 2
    reason_w = max(30, width - indent)
    lines = [f"{'STATUS':<8}{'CHECK':<{name_w + 2}}{'FOR':<{scope_w + 2}}REASON"]
    for row in rows:
        scope = row.scope if len(row.scope) <= scope_w else row.scope[:scope_w - 1] + "…"
        wrapped = textwrap.wrap(row.reason, reason_w) or [""]
        lines.append(f"{row.status:<8}{row.name:<{name_w + 2}}{scope:<{scope_w + 2}}{wrapped[0]}")
        lines.extend(" " * indent + more for more in wrapped[1:])
        if row.fix and row.status != PASS:
            lines.append(" " * indent + "fix: " + row.fix)  # not wrapped: it often holds a command to copy
    return "\n".join(lines) + "\n\n" + summary(report)


COLUMNS = (Column("STATUS", "status"), Column("CHECK", "name"), Column("FOR", "scope"), Column("REASON", "reason"),
           Column("FIX", "fix", wide_only=True))


def summary(report: Report) -> str:
    counts = report.counts()
    return (f"{counts[FAIL]} failed, {counts[WARN]} warning(s), {counts[UNKNOWN]} could not be verified, "
            f"{counts[PASS]} passed\n")


def format_report(report: Report, fmt: str) -> str:
    """The report in one of formats.FORMATS."""
    if fmt in ("json", "yaml"):
        return formats.document(report.to_dict(), fmt)
    rows = [row.to_dict() for row in report.rows]
    if fmt == "wide":
        return formats.grid(COLUMNS, rows, wide=True) + "\n" + summary(report)
    if fmt == "markdown":
        return formats.markdown(COLUMNS, rows) + "\n" + summary(report)
    return format_table(report)
