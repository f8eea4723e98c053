"""Public X.509 certificates in PEM bundles: parse, identify (SHA-256 of the DER), judge validity.

Pure Python: a tiny DER reader for the few fields we show and compare (subject, issuer, validity,
basicConstraints). No new dependency (`cryptography` is not required by anything we install), no
subprocess. Only certificates are handled: a bundle holding a private key is refused, never echoed.

Reading follows what virt-operator does with `kubevirt-external-ca` (client-go cert.ParseCertsPEM):
text outside PEM blocks is ignored, non-CERTIFICATE blocks are skipped, a block that does not parse
fails the whole bundle.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import re
from dataclasses import dataclass
from typing import Iterable, List, Optional, Tuple

UTC = dt.timezone.utc
_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END ([A-Z0-9 ]+)-----", re.S)
_BEGIN = re.compile(r"-----BEGIN [A-Z0-9 ]+-----")

# Attribute types shown in subjects and issuers (RFC 4514 short names).
_NAMES = {
    "2.5.4.3": "CN", "2.5.4.6": "C", "2.5.4.7": "L", "2.5.4.8": "ST", "2.5.4.10": "O", "2.5.4.11": "OU",
    "2.5.4.5": "serialNumber", "0.9.2342.19200300.100.1.25": "DC", "1.2.840.113549.1.9.1": "emailAddress",
}
_BASIC_CONSTRAINTS = "2.5.29.19"


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

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.der).hexdigest()

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


# --- a tiny DER reader: exactly what an X.509 certificate needs --------------------------------

def _tlv(data: bytes, pos: int, end: int) -> Tuple[int, int, int]:
    """(tag, content start, content end) of the element at `pos`."""
    if pos + 2 > end:
        raise PemError("truncated DER")
    tag = data[pos]
    if tag & 0x1F == 0x1F:
        raise PemError("high tag numbers are not used in certificates")
    length = data[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or pos + count > end:
            raise PemError("bad DER length")
        length = int.from_bytes(data[pos:pos + count], "big")
        pos += count
    if pos + length > end:
        raise PemError("truncated DER")
    return tag, pos, pos + length


def _children(data: bytes, start: int, end: int) -> List[Tuple[int, int, int]]:
    out, pos = [], start
    while pos < end:
        tag, cstart, cend = _tlv(data, pos, end)
        out.append((tag, cstart, cend))
        pos = cend
    return out


def _expect(element: Tuple[int, int, int], tag: int, what: str) -> Tuple[int, int, int]:
    if element[0] != tag:
        raise PemError(f"expected {what}, found tag 0x{element[0]:02x}")
    return element


def _oid(raw: bytes) -> str:
    if not raw:
        raise PemError("empty OID")
    first = raw[0]
    parts = [min(first // 40, 2), first - 40 * min(first // 40, 2)]
    value = 0
    for byte in raw[1:]:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            parts.append(value)
            value = 0
    return ".".join(str(p) for p in parts)


def _string(tag: int, raw: bytes) -> str:
    if tag == 0x1E:  # BMPString
        return raw.decode("utf-16-be", errors="replace")
    if tag == 0x1C:  # UniversalString
        return raw.decode("utf-32-be", errors="replace")
    return raw.decode("utf-8" if tag == 0x0C else "latin-1", errors="replace")


def _name(data: bytes, start: int, end: int) -> str:
    parts = []
    for rdn in _children(data, start, end):
        _expect(rdn, 0x31, "a relative distinguished name (SET)")
        for atv in _children(data, rdn[1], rdn[2]):
            fields = _children(data, atv[1], atv[2])
            if len(fields) != 2:
                raise PemError("bad attribute in a name")
            oid = _oid(data[fields[0][1]:fields[0][2]])
            value = _string(fields[1][0], data[fields[1][1]:fields[1][2]])
            parts.append(f"{_NAMES.get(oid, oid)}={value}")
    return ", ".join(parts)


def _time(tag: int, raw: bytes) -> dt.datetime:
    text = raw.decode("ascii", errors="replace")
    try:
        if tag == 0x17:  # UTCTime YYMMDDHHMMSSZ; 50-99 are 19xx (RFC 5280 4.1.2.5.1)
            when = dt.datetime.strptime(text, "%y%m%d%H%M%SZ")
            if when.year >= 2050:
                when = when.replace(year=when.year - 100)
        elif tag == 0x18:  # GeneralizedTime YYYYMMDDHHMMSSZ
            when = dt.datetime.strptime(text, "%Y%m%d%H%M%SZ")
        else:
            raise PemError(f"expected a time, found tag 0x{tag:02x}")
    except ValueError:
        raise PemError(f"bad time {text!r}") from None
    return when.replace(tzinfo=UTC)


def parse_der(der: bytes) -> Certificate:
    try:
        return _parse_der(der)
    except PemError:
        raise
    except (ValueError, IndexError):  # a structure the reader did not expect: still only "does not parse"
        raise PemError("malformed DER") from None


def _parse_der(der: bytes) -> Certificate:
    tag, start, end = _tlv(der, 0, len(der))
    if tag != 0x30 or end != len(der):
        raise PemError("not a DER certificate (SEQUENCE)")
    outer = _children(der, start, end)
    if len(outer) != 3:
        raise PemError("a certificate has three parts (tbsCertificate, algorithm, signature)")
    tbs = _children(der, *_expect(outer[0], 0x30, "tbsCertificate")[1:])
    i = 1 if tbs and tbs[0][0] == 0xA0 else 0  # [0] EXPLICIT version
    if len(tbs) < i + 6:
        raise PemError("tbsCertificate is too short")
    _expect(tbs[i], 0x02, "serial number")
    issuer = _name(der, *_expect(tbs[i + 2], 0x30, "issuer")[1:])
    validity = _children(der, *_expect(tbs[i + 3], 0x30, "validity")[1:])
    if len(validity) != 2:
        raise PemError("validity has two times")
    not_before = _time(validity[0][0], der[validity[0][1]:validity[0][2]])
    not_after = _time(validity[1][0], der[validity[1][1]:validity[1][2]])
    subject = _name(der, *_expect(tbs[i + 4], 0x30, "subject")[1:])
    is_ca = False
    for element in tbs[i + 6:]:
        if element[0] != 0xA3:  # [3] extensions
            continue
        (seq,) = _children(der, element[1], element[2])
        for ext in _children(der, *_expect(seq, 0x30, "extensions")[1:]):
            fields = _children(der, ext[1], ext[2])
            if _oid(der[fields[0][1]:fields[0][2]]) != _BASIC_CONSTRAINTS:
                continue
            value = _expect(fields[-1], 0x04, "extension value")
            (constraints,) = _children(der, value[1], value[2]) or [(0x30, value[1], value[1])]
            inner = _children(der, constraints[1], constraints[2])
            is_ca = bool(inner and inner[0][0] == 0x01 and der[inner[0][1]:inner[0][2]] != b"\x00")
    return Certificate(der=bytes(der), subject=subject, issuer=issuer, not_before=not_before,
                       not_after=not_after, is_ca=is_ca)
