"""quantity.py: Kubernetes quantities as exact bytes, rounded up, never down."""

import pytest

from kubectl_dlm.quantity import mebibytes, readable, to_bytes


@pytest.mark.parametrize("text, expected", [
    ("0", 0), ("1", 1), ("1024", 1024), ("1Ki", 1024), ("1Mi", 2**20), ("10Gi", 10 * 2**30), ("2Ti", 2 * 2**40),
    ("1Pi", 2**50), ("1Ei", 2**60), ("1k", 1000), ("512M", 512 * 10**6), ("1G", 10**9), ("3T", 3 * 10**12),
    ("1P", 10**15), ("1E", 10**18), ("1e9", 10**9), ("1E3", 1000), ("1.5Gi", 3 * 2**29), ("0.5Ki", 512),
    ("1.0001", 2),  # a fractional byte rounds up
    (" 10Gi ", 10 * 2**30), (5, 5),
])
def test_to_bytes(text, expected):
    assert to_bytes(text) == expected


@pytest.mark.parametrize("text", ["", "Gi", "10GB", "10 Gi", "ten", "1.2.3", "10gi"])
def test_not_a_quantity(text):
    with pytest.raises(ValueError, match="not a Kubernetes quantity"):
        to_bytes(text)


@pytest.mark.parametrize("n_bytes, expected", [
    (0, "0Mi"), (1, "1Mi"), (2**20, "1Mi"), (2**20 + 1, "2Mi"), (10 * 2**30, "10240Mi"),
])
def test_mebibytes_round_up(n_bytes, expected):
    assert mebibytes(n_bytes) == expected


@pytest.mark.parametrize("text, expected", [
    ("536870912", "536870912 (512Mi)"), ("10737418240", "10737418240 (10Gi)"), ("3072", "3072 (3Ki)"),
    ("1000", "1000"), ("1536", "1536"), ("0", "0"),  # no exact binary unit: as written
    ("10Gi", "10Gi"), ("512M", "512M"), (" 1Gi ", "1Gi"),  # already a unit: as written
])
def test_readable(text, expected):
    assert readable(text) == expected
