"""PEM bundles the way virt-operator reads them (§5): parse, validity window, SHA-256 of the DER.

Uses the openssl command line (always present where the test clusters are built), so the
simulator needs no extra Python package.
"""
from __future__ import annotations

import base64
import datetime as _dt
import functools
import hashlib
import re
import subprocess
from dataclasses import dataclass

_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----\s*(.*?)\s*-----END \1-----", re.S)


class PemError(ValueError):
    pass


@dataclass(frozen=True)
class Cert:
    pem: str
    sha256: str
    not_before: _dt.datetime
    not_after: _dt.datetime

    def valid_at(self, when: _dt.datetime) -> bool:
        return self.not_before < when < self.not_after


def _utcnow() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


def _parse_openssl_date(s: str) -> _dt.datetime:
    # e.g. "Nov 30 14:44:00 2026 GMT"
    return _dt.datetime.strptime(" ".join(s.split()[:4]), "%b %d %H:%M:%S %Y").replace(tzinfo=_dt.timezone.utc)


@functools.lru_cache(maxsize=256)
def _cert_from_block(body: str) -> Cert:
    try:
        der = base64.b64decode("".join(body.split()), validate=True)
    except ValueError as e:
        raise PemError(f"bad base64: {e}") from None
    pem = "-----BEGIN CERTIFICATE-----\n" + "\n".join(
        base64.b64encode(der).decode()[i:i + 64] for i in range(0, len(base64.b64encode(der)), 64)) + \
        "\n-----END CERTIFICATE-----\n"
    out = subprocess.run(["openssl", "x509", "-noout", "-startdate", "-enddate"], input=pem.encode(),
                         capture_output=True)
    if out.returncode != 0:
        raise PemError(out.stderr.decode(errors="replace").strip())
    fields = dict(line.split("=", 1) for line in out.stdout.decode().splitlines() if "=" in line)
    return Cert(pem, hashlib.sha256(der).hexdigest(), _parse_openssl_date(fields["notBefore"]),
                _parse_openssl_date(fields["notAfter"]))


def parse_bundle(text: str | None) -> list[Cert]:
    """All CERTIFICATE blocks of a bundle. Like cert.ParseCertsPEM, any bad block - or no
    certificate at all in non-empty text - is an error for the whole bundle (OP:351-373)."""
    if not text or not text.strip():
        return []
    certs = []
    for kind, body in _BLOCK.findall(text):
        if kind != "CERTIFICATE":
            continue
        certs.append(_cert_from_block(body))
    if not certs:
        raise PemError("data does not contain any valid RSA or ECDSA certificates")
    return certs


def bundle_text(certs: list[Cert]) -> str:
    return "".join(c.pem for c in certs)


def fingerprints(text: str | None, valid_only: bool = True) -> set[str]:
    try:
        certs = parse_bundle(text)
    except PemError:
        return set()
    when = _utcnow()
    return {c.sha256 for c in certs if not valid_only or c.valid_at(when)}


def merge_external(own: Cert | None, current_text: str | None, external_text: str | None,
                   prune_to_own: bool = False, cap: int = 50) -> str:
    """New kubevirt-ca content (§5 step 3-4).

    MergeCABundle keeps the own CA first, then the other unexpired certs newest-first, capped at 50;
    when the own CA is older than its overlap window only the own CA survives (`prune_to_own`).
    Then every valid external cert whose SHA-256 is not present yet is appended."""
    when = _utcnow()
    try:
        current = parse_bundle(current_text)
    except PemError:
        current = []
    try:
        external = [c for c in parse_bundle(external_text) if c.valid_at(when)]
    except PemError:
        external = []  # any parse error discards the whole drop box
    others = [c for c in current if (own is None or c.sha256 != own.sha256) and c.valid_at(when)]
    others.sort(key=lambda c: c.not_before, reverse=True)
    merged = ([own] if own else []) + ([] if prune_to_own else others)
    merged = merged[:cap]
    seen = {c.sha256 for c in merged}
    for c in external:
        if c.sha256 not in seen:
            merged.append(c)
            seen.add(c.sha256)
    return bundle_text(merged)
