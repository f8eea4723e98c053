"""Kubernetes resource quantities ("10Gi", "512M", "1e9") as exact byte counts."""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation

_SUFFIX = {
    "": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
}
_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$")


def to_bytes(quantity: str) -> int:
    """Parse a quantity; fractional bytes round up (a disk must never shrink)."""
    match = _QUANTITY.match(str(quantity).strip())
    if not match:
        raise ValueError(f"not a Kubernetes quantity: {quantity!r}")
    try:
        number = Decimal(match.group(1))
    except InvalidOperation:
        raise ValueError(f"not a Kubernetes quantity: {quantity!r}") from None
    return math.ceil(number * _SUFFIX[match.group(2) or ""])


def mebibytes(n_bytes: int) -> str:
    """Round up to whole MiB, the unit CDI and most provisioners allocate in."""
    return f"{math.ceil(n_bytes / 2**20)}Mi"


def readable(quantity: str) -> str:
    """A quantity for a message: as written, with the largest exact binary unit beside a plain byte
    count (CDI writes a claim's size as bytes: "536870912" reads better as "536870912 (512Mi)")."""
    text = str(quantity).strip()
    if not text.isdigit():
        return text
    n = int(text)
    for suffix in ("Ei", "Pi", "Ti", "Gi", "Mi", "Ki"):
        if n and n % _SUFFIX[suffix] == 0:
            return f"{text} ({n // _SUFFIX[suffix]}{suffix})"
    return text
