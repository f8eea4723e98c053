"""What `kubectl dlm status` prints for its rows (manage.StatusRow), in every -o format. Pure."""

from __future__ import annotations

from typing import Any, Dict, List, Sequence

from kubectl_dlm import formats
from kubectl_dlm.formats import Column

COLUMNS = (Column("VM", "vm"), Column("OUTCOME", "outcome"), Column("SOURCE MIGRATION", "source_phase"),
           Column("TARGET MIGRATION", "target_phase"), Column("TARGET VMI", "target_vmi_phase"),
           Column("MIGRATION ID", "migration_id", wide_only=True), Column("DETAILS", "details", wide_only=True))


def to_dict(row: Any) -> Dict[str, Any]:
    """The row's fields, keys as `status -o json` has always printed them."""
    return {k: row.__dict__[k] for k in sorted(row.__dict__)}


def format_rows(rows: Sequence[Any], fmt: str) -> str:
    data = [to_dict(row) for row in rows]
    if fmt in ("json", "yaml"):
        return formats.document(data, fmt)
    if fmt == "markdown":
        return formats.markdown(COLUMNS, data)
    notes: List[List[str]] = [[line for detail in row.details for line in detail.splitlines()] for row in rows]
    return formats.grid(COLUMNS, data, wide=fmt == "wide", notes=notes)
