"""Public X.509 certificates in PEM bundles: parse, identify (SHA-256 of the DER), judge validity.

Certificates are read by `cryptography` (the library everyone audits), not by a DER reader of our
own. It is imported here only, and this module only by the commands that look at certificates
(`trust`, `check`, and `migrate`/`apply` through their pre-flight checks): `--help` and `render`
never load it (tests/test_imports.py).

Only certificates are handled: a bundle holding a private key is refused, never echoed. The PEM
framing is scanned here, not by `load_pem_x509_certificates`, to read a bundle the way virt-operator
reads `kubevirt-external-ca` (client-go cert.ParseCertsPEM): text outside PEM blocks is ignored,
non-CERTIFICATE blocks are skipped, a block that does not parse fails the whole bundle.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
import warnings
from dataclasses import dataclass
from typing import Iterable, List, Optional

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

UTC = dt.timezone.utc
_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END ([A-Z0-9 ]+)-----", re.S)
_BEGIN = re.compile(r"-----BEGIN [A-Z0-9 ]+-----")
# RFC 4514 names for the attribute types cryptography would otherwise print as dotted OIDs.
_NAME_OVERRIDES = {NameOID.SERIAL_NUMBER: "serialNumber", NameOID.EMAIL_ADDRESS: "emailAddress"}
# What cryptography raises for bytes that are not a certificate it can read (some are not ValueErrors).
_UNREADABLE = (ValueError, TypeError, x509.InvalidVersion, x509.DuplicateExtension)


class PemError(ValueError):
    """The text is not a usable certificate bundle; the message says where and why (never the data)."""


@dataclass(frozen=True)
class Certificate:
    der: bytes
    subject: str
    issuer: str
    not_before: dt.datetime
    not_after: dt.datetime
    is_ca: bool
    sha256: str

    @property
    def short_id(self) -> str:
        """The first 16 hex digits of the SHA-256: enough to tell certificates apart in output."""
        return self.sha256[:16]

    @property
    def pem(self) -> str:
        body = base64.b64encode(self.der).decode()
        lines = [body[i:i + 64] for i in range(0, len(body), 64)]
        return "-----BEGIN CERTIFICATE-----\n" + "\n".join(lines) + "\n-----END CERTIFICATE-----\n"

    def state(self, now: dt.datetime) -> str:
        """valid | expired | not-yet-valid, with virt-operator's strict bounds (NotBefore < now < NotAfter)."""
        if now >= self.not_after:
            return "expired"
        if now <= self.not_before:
            return "not-yet-valid"
        return "valid"

    def valid_at(self, now: dt.datetime) -> bool:
        return self.state(now) == "valid"

    def describe(self) -> str:
        """`CN=kubevirt.io@1700000000 (expires 2026-12-07 14:51 UTC, sha256 1a2b...)`"""
        return f"{self.subject or '(empty subject)'} (expires {format_time(self.not_after)}, sha256 {self.short_id})"


def now() -> dt.datetime:
    return dt.datetime.now(UTC)


def format_time(when: dt.datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def parse_bundle(text: Optional[str], where: str = "the bundle") -> List[Certificate]:
    """Every CERTIFICATE in `text`, in order (duplicates kept). Empty text is an empty list."""
    if not text or not text.strip():
        return []
    certs: List[Certificate] = []
    found = 0
    for index, match in enumerate(_BLOCK.finditer(text), start=1):
        found += 1
        kind, body, end_kind = match.group(1), match.group(2), match.group(3)
        if kind != end_kind:
            raise PemError(f"{where}: PEM block {index} begins as {kind} but ends as {end_kind}")
        if "PRIVATE KEY" in kind:
            raise PemError(f"{where}: PEM block {index} is a {kind}; only public certificates are accepted")
        if kind != "CERTIFICATE":
            continue
        if ":" in body.split("\n\n")[0] and "\n\n" in body:
            continue  # a block with RFC 1421 headers: cert.ParseCertsPEM skips it too
        try:
            der = base64.b64decode("".join(body.split()), validate=True)
        except (binascii.Error, ValueError):
            raise PemError(f"{where}: certificate {index} is not valid base64") from None
        try:
            certs.append(parse_der(der))
        except PemError as exc:
            raise PemError(f"{where}: certificate {index} does not parse: {exc}") from None
    if not found and _BEGIN.search(text):
        raise PemError(f"{where}: a PEM block is not closed (missing -----END ...-----)")
    if not certs:
        raise PemError(f"{where}: no PEM certificate found")
    return certs


def to_bundle(certs: Iterable[Certificate]) -> str:
    return "".join(c.pem for c in certs)


def unique(certs: Iterable[Certificate]) -> List[Certificate]:
    """First occurrence of each certificate, by SHA-256 of the DER (how virt-operator de-duplicates)."""
    seen, out = set(), []
    for cert in certs:
        if cert.sha256 not in seen:
            seen.add(cert.sha256)
            out.append(cert)
    return out


def parse_der(der: bytes) -> Certificate:
    """One DER certificate. Every field is read here, so a malformed part fails now as a PemError
    (cryptography decodes names and extensions lazily and raises ValueError on first access)."""
    try:
        with warnings.catch_warnings():  # e.g. a non-positive serial, a 1-letter country: stderr noise for users
            warnings.simplefilter("ignore")
            cert = x509.load_der_x509_certificate(der)
            return Certificate(der=bytes(der), subject=_name(cert.subject), issuer=_name(cert.issuer),
                               not_before=cert.not_valid_before_utc, not_after=cert.not_valid_after_utc,
                               is_ca=_is_ca(cert), sha256=cert.fingerprint(hashes.SHA256()).hex())
    except _UNREADABLE as exc:
        raise PemError(f"not a DER X.509 certificate ({_reason(exc)})") from None


def _reason(exc: Exception) -> str:
    """cryptography's ASN.1 errors are Rust debug text; keep the kind of fault and where it was met."""
    text = str(exc)
    kind = re.search(r"kind: (\w+)", text)
    where = re.search(r'location: \["([^"]+)"', text)
    if kind:
        return kind.group(1) + (f" in {where.group(1)}" if where else "")
    return text.splitlines()[0][:120] if text else type(exc).__name__


def _name(name: x509.Name) -> str:
    """Attributes in DER order, `CN=a, O=b` (what `openssl x509 -nameopt RFC2253` shows reversed)."""
    return ", ".join(attr.rfc4514_string(_NAME_OVERRIDES) for rdn in name.rdns for attr in rdn)


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False
