"""kubectl_dlm.pem: parse, identify and judge certificates made by openssl (valid, expired, not yet valid).

The certificates come from openssl, the parsing from cryptography: the tests pin what we read
out of it (names in DER order, strict validity bounds, the CA flag) against openssl's own view."""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import subprocess
from pathlib import Path
from typing import Optional

import pytest

from kubectl_dlm import pem

UTC = dt.timezone.utc
NOW = dt.datetime.now(UTC).replace(microsecond=0)
_counter = itertools.count()

_CA_CONFIG = """
[ ca ]
default_ca = ca_default
[ ca_default ]
database = {db}
new_certs_dir = {dir}
default_md = sha256
policy = policy_any
unique_subject = no
rand_serial = yes
x509_extensions = {ext}
[ policy_any ]
commonName = supplied
organizationName = optional
[ v3_ca ]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
[ v3_leaf ]
basicConstraints = critical,CA:FALSE
"""


def _asn1_time(when: dt.datetime) -> str:
    return when.astimezone(UTC).strftime("%Y%m%d%H%M%SZ")


def make_cert(directory: Path, subject: str = "/CN=kubevirt.io@1700000000", *,
              not_before: Optional[dt.datetime] = None, not_after: Optional[dt.datetime] = None,
              ca: bool = True) -> str:
    """A self-signed EC certificate with exactly these validity dates, as PEM text (openssl ca)."""
    directory = Path(directory)
    n = next(_counter)
    work = directory / f"cert-{n}"
    work.mkdir(parents=True)
    (work / "index.txt").write_text("")
    config = work / "ca.cnf"
    config.write_text(_CA_CONFIG.format(db=work / "index.txt", dir=work, ext="v3_ca" if ca else "v3_leaf"))
    key, csr, crt = work / "key.pem", work / "req.csr", work / "cert.pem"
    run = lambda *args: subprocess.run(["openssl", *args], check=True, capture_output=True)  # noqa: E731
    run("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", str(key), "-out", str(csr), "-subj", subject, "-utf8")
    start = not_before or NOW - dt.timedelta(hours=1)
    end = not_after or NOW + dt.timedelta(days=7)
    run("ca", "-batch", "-config", str(config), "-selfsign", "-keyfile", str(key), "-in", str(csr), "-out", str(crt),
        "-startdate", _asn1_time(start), "-enddate", _asn1_time(end), "-notext", "-utf8")
    return crt.read_text()


def openssl_der(pem_text: str) -> bytes:
    return subprocess.run(["openssl", "x509", "-outform", "DER"], input=pem_text.encode(), check=True,
                          capture_output=True).stdout


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("pem")
    return {
        "valid": make_cert(d, "/CN=kubevirt.io@1700000000/O=west"),
        "expired": make_cert(d, "/CN=old-ca", not_before=NOW - dt.timedelta(days=10),
                             not_after=NOW - dt.timedelta(days=3)),
        "future": make_cert(d, "/CN=future-ca", not_before=NOW + dt.timedelta(days=1),
                            not_after=NOW + dt.timedelta(days=8)),
        "leaf": make_cert(d, "/CN=leaf", ca=False),
        "y2051": make_cert(d, "/CN=long-lived", not_after=dt.datetime(2051, 1, 2, 3, 4, 5, tzinfo=UTC)),
        "utf8": make_cert(d, "/CN=zürich-ca"),
    }


def test_reads_subject_issuer_dates_and_ca_flag_like_openssl(certs):
    (cert,) = pem.parse_bundle(certs["valid"])
    assert cert.subject == "CN=kubevirt.io@1700000000, O=west"
    assert cert.issuer == cert.subject  # self-signed
    assert cert.not_before == NOW - dt.timedelta(hours=1)
    assert cert.not_after == NOW + dt.timedelta(days=7)
    assert cert.is_ca is True
    assert cert.der == openssl_der(certs["valid"])
    assert cert.sha256 == hashlib.sha256(openssl_der(certs["valid"])).hexdigest()
    assert cert.short_id == cert.sha256[:16]


def test_validity_states_use_the_operators_strict_bounds(certs):
    (valid,) = pem.parse_bundle(certs["valid"])
    (expired,) = pem.parse_bundle(certs["expired"])
    (future,) = pem.parse_bundle(certs["future"])
    assert valid.state(NOW) == "valid" and valid.valid_at(NOW)
    assert expired.state(NOW) == "expired" and not expired.valid_at(NOW)
    assert future.state(NOW) == "not-yet-valid" and not future.valid_at(NOW)
    assert valid.state(valid.not_after) == "expired"  # NotAfter itself is no longer valid
    assert valid.state(valid.not_before) == "not-yet-valid"


def test_leaf_generalized_time_and_utf8_subjects(certs):
    assert pem.parse_bundle(certs["leaf"])[0].is_ca is False
    assert pem.parse_bundle(certs["y2051"])[0].not_after == dt.datetime(2051, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert pem.parse_bundle(certs["utf8"])[0].subject == "CN=zürich-ca"


def test_describe_names_subject_expiry_and_fingerprint(certs):
    (cert,) = pem.parse_bundle(certs["valid"])
    assert cert.describe() == (f"CN=kubevirt.io@1700000000, O=west (expires "
                               f"{(NOW + dt.timedelta(days=7)).strftime('%Y-%m-%d %H:%M')} UTC, sha256 {cert.short_id})")


def test_bundle_order_duplicates_and_text_between_blocks(certs):
    text = "# west\n" + certs["valid"] + "some comment\n" + certs["expired"] + certs["valid"]
    parsed = pem.parse_bundle(text)
    assert [c.subject for c in parsed] == ["CN=kubevirt.io@1700000000, O=west", "CN=old-ca",
                                           "CN=kubevirt.io@1700000000, O=west"]
    assert [c.subject for c in pem.unique(parsed)] == ["CN=kubevirt.io@1700000000, O=west", "CN=old-ca"]


def test_round_trip_through_canonical_pem(certs):
    parsed = pem.parse_bundle(certs["valid"] + certs["leaf"])
    again = pem.parse_bundle(pem.to_bundle(parsed))
    assert [c.sha256 for c in again] == [c.sha256 for c in parsed]
    assert pem.to_bundle(parsed[:1]) == certs["valid"]  # openssl writes the same 64-column PEM


def test_empty_bundle_is_empty():
    assert pem.parse_bundle(None) == []
    assert pem.parse_bundle("  \n") == []


def test_other_blocks_are_skipped(certs):
    text = "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n" + certs["valid"]
    assert len(pem.parse_bundle(text)) == 1


@pytest.mark.parametrize("text, message", [
    ("not a certificate", "the bundle: no PEM certificate found"),
    ("-----BEGIN CERTIFICATE-----\nMIIB", "the bundle: a PEM block is not closed (missing -----END ...-----)"),
    ("-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n", "the bundle: certificate 1 is not valid base64"),
    ("-----BEGIN CERTIFICATE-----\nMAMCAQA=\n-----END CERTIFICATE-----\n",
     "the bundle: certificate 1 does not parse: not a DER X.509 certificate (UnexpectedTag in Certificate::tbs_cert)"),
    ("-----BEGIN CERTIFICATE-----\nMIIBAAA=\n-----END CERTIFICATE-----\n",
     "the bundle: certificate 1 does not parse: not a DER X.509 certificate (ShortData)"),
    ("-----BEGIN CERTIFICATE-----\nAAAA\n-----END PUBLIC KEY-----\n",
     "the bundle: PEM block 1 begins as CERTIFICATE but ends as PUBLIC KEY"),
])
def test_bad_bundles_fail_with_a_reason(text, message):
    with pytest.raises(pem.PemError) as raised:
        pem.parse_bundle(text)
    assert str(raised.value) == message


def test_a_private_key_is_refused_and_never_echoed(tmp_path, certs):
    key = subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:prime256v1"],
                         check=True, capture_output=True, text=True).stdout
    with pytest.raises(pem.PemError) as raised:
        pem.parse_bundle(certs["valid"] + key, "ConfigMap kubevirt/kubevirt-external-ca")
    assert str(raised.value) == ("ConfigMap kubevirt/kubevirt-external-ca: PEM block 2 is a PRIVATE KEY; "
                                 "only public certificates are accepted")
    body = key.splitlines()[1]
    assert body not in str(raised.value)


def test_truncated_certificate_body_does_not_crash(certs):
    der = openssl_der(certs["valid"])
    for cut in (1, 10, len(der) // 2, len(der) - 1):
        with pytest.raises(pem.PemError):
            pem.parse_der(der[:cut])


@pytest.mark.filterwarnings("error")  # and never a warning on the user's terminal
def test_random_corruption_is_always_a_pem_error(certs):
    import random

    der = bytearray(openssl_der(certs["valid"]))
    rng = random.Random(5)
    for _ in range(2000):
        broken = bytearray(der)
        for _ in range(rng.randrange(1, 6)):
            broken[rng.randrange(len(broken))] = rng.randrange(256)
        try:
            pem.parse_der(bytes(broken))
        except pem.PemError:
            pass  # anything else (IndexError, UnicodeError, ...) fails the test
