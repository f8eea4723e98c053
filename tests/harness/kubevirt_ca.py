"""virt-operator's CA bundles on the KubeVirt tier, played: what it does with `kubevirt-external-ca`.

A DLM admin (or `kubectl dlm trust`) puts the other cluster's CA into `kubevirt/kubevirt-external-ca`;
virt-operator then merges it into `kubevirt-ca`, which virt-api, virt-handler and the
synchronization controller trust, and empties the drop box again. Written from KubeVirt v1.9.0
(paths relative to its tree):

  pkg/virt-operator/resource/apply/core.go:400-442  createOrUpdateComponentsWithCertificates: the order
      (drop box created, external CAs read, kubevirt-ca updated, drop box emptied)
  core.go:702-722   createExternalKubeVirtCAConfigMap: a missing drop box is created empty
  core.go:351-373   getRemotePublicCas: an empty drop box or one that does not parse contributes nothing
  core.go:324-349   getValidCerts: only valid certificates, each once (SHA-256 of the DER)
  core.go:724-786   createOrUpdateKubeVirtCAConfigMap: a missing kubevirt-ca = external CAs + own CA;
      an unparsable one = own CA only
  core.go:668-700   shouldUpdateBundle: MergeCABundle, then every external CA not yet in it appended
  pkg/virt-operator/resource/generate/components/secrets.go:687-747  filterValidCertificates and
      MergeCABundle: own CA first, then the other unexpired certificates newest first (at most 50),
      all dropped once a CA is older than the overlap window
  core.go:375-398   cleanupExternalCACerts: the drop box is written back empty, every reconcile
  apply/certificates.go:11-45  the overlap window: 20 % of the CA duration (7 days) unless configured

The real operator reconciles on informer events; here a loop per cluster polls every 0.2 s. The
own CA is the Secret `kubevirt-ca` that dlm-kubevirt-manifests generated (tests/harness/kubevirt.py).
Not played: CA rotation (the test's CA is fresh), the export and backup CA bundles, and the webhook
configurations' caBundle (the harness installs them with the own CA; only the sync controllers
need the peer's, and they read kubevirt-ca).
"""
from __future__ import annotations

import base64
import binascii
import contextlib
import datetime as dt
import hashlib
import re
import threading

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from tests.kubevirt.loop import Loop

from .apiserver import ApiError

NS = "kubevirt"
KEY = "ca-bundle"                       # components.CABundleKey
CA, EXTERNAL = "kubevirt-ca", "kubevirt-external-ca"
MAX_CERTS = 50                          # components/secrets.go maxCertificatesInBundle
OVERLAP = dt.timedelta(days=7) * 0.2    # GetCARenewBefore of the default 7-day CA (certificates.go:29-45)
_BLOCK = re.compile(r"-----BEGIN ([^-\n]+)-----\n(.*?)-----END \1-----", re.S)


class BundleError(ValueError):
    pass


def parse_certs(text: str) -> list[x509.Certificate]:
    """client-go cert.ParseCertsPEM: CERTIFICATE blocks in order; a block pem.Decode rejects (bad
    base64, headers) is skipped, one that is not a certificate fails it all, none at all is an error."""
    certs = []
    for kind, body in _BLOCK.findall(text or ""):
        if kind != "CERTIFICATE" or ":" in body.split("\n", 1)[0]:
            continue
        try:
            der = base64.b64decode("".join(body.split()), validate=True)
        except (binascii.Error, ValueError):
            continue
        try:
            certs.append(x509.load_der_x509_certificate(der))
        except ValueError as e:
            raise BundleError(str(e)) from None
    if not certs:
        raise BundleError("data does not contain any valid RSA or ECDSA certificates")
    return certs


def sha256(c: x509.Certificate) -> str:
    return hashlib.sha256(c.public_bytes(Encoding.DER)).hexdigest()


def encode(c: x509.Certificate) -> str:
    """cert.EncodeCertPEM."""
    return c.public_bytes(Encoding.PEM).decode()


def valid_external(text: str, now: dt.datetime) -> list[x509.Certificate]:
    """getRemotePublicCas + getValidCerts (core.go:324-373)."""
    if not text:
        return []
    try:
        certs = parse_certs(text)
    except BundleError:
        return []
    out, seen = [], set()
    for c in certs:
        if sha256(c) in seen:
            continue
        if c.not_valid_before_utc < now < c.not_valid_after_utc:
            out.append(c)
            seen.add(sha256(c))
    return out


def merge_bundle(own: x509.Certificate, current: str, now: dt.datetime, overlap: dt.timedelta = OVERLAP) -> str:
    """components.MergeCABundle (secrets.go:707-747); raises BundleError when `current` does not parse."""
    valid = [c for c in parse_certs(current) if not c.not_valid_after_utc < now]
    valid.sort(key=lambda c: int(c.not_valid_before_utc.timestamp()), reverse=True)   # SliceStable, newest first
    valid = valid[:MAX_CERTS]
    mine = encode(own)
    rest = ""
    for i, c in enumerate(valid):
        previous = own if i == 0 else valid[i - 1]
        if previous.not_valid_before_utc + overlap < now:
            break   # "Kept old CA certificates for a duration of at least ..., dropping them now."
        if encode(c) == mine:
            continue
        rest += encode(c)
    return mine + rest


def desired_bundle(own: x509.Certificate, existing: dict | None, external: list[x509.Certificate],
                   now: dt.datetime) -> str:
    """What kubevirt-ca's ca-bundle becomes (core.go:668-700 and 724-786)."""
    if existing is None:
        return "".join(encode(c) for c in external) + encode(own)
    try:
        bundle = merge_bundle(own, (existing.get("data") or {}).get(KEY, ""), now)
    except BundleError:
        return encode(own)   # "There was an error validating the CA bundle ... We are updating the bundle."
    have = {sha256(c) for c in parse_certs(bundle)}
    for c in external:
        if sha256(c) not in have:
            have.add(sha256(c))
            bundle += encode(c)
    return bundle


class CAOperator(Loop):
    """The CA part of virt-operator for one cluster, a background loop (start/stop); `paused()` is a
    cluster whose virt-operator is not running (nothing merged, the drop box left as it is)."""
    name = "virt-operator-ca"

    def __init__(self, cluster, period: float = 0.2):
        super().__init__(cluster, period)
        self._running = threading.Event()
        self._running.set()
        self._seen: tuple | None = None
        self._lock = threading.Lock()   # held while reconciling: paused() waits for a pass in progress

    def step(self) -> None:
        with self._lock:
            if self._running.is_set():
                self.reconcile()

    def own_ca(self) -> x509.Certificate:
        # createOrUpdateCACertificateSecret (core.go:796-809): the CA in Secret kubevirt-ca
        secret = self.cluster.request("GET", f"/api/v1/namespaces/{NS}/secrets/{CA}")
        return parse_certs(base64.b64decode(secret["data"]["tls.crt"]).decode())[0]

    def get(self, name: str) -> dict | None:
        try:
            return self.cluster.request("GET", f"/api/v1/namespaces/{NS}/configmaps/{name}")
        except ApiError as e:
            if e.status == 404:
                return None
            raise

    def reconcile(self) -> None:
        own, now = self.own_ca(), dt.datetime.now(dt.timezone.utc)
        drop = self.get(EXTERNAL)
        ca = self.get(CA)
        state = tuple((o or {}).get("metadata", {}).get("resourceVersion") for o in (drop, ca))
        if state == self._seen:
            return
        meta = {"namespace": NS, "labels": {"app.kubernetes.io/managed-by": "virt-operator",
                                            "app.kubernetes.io/component": "kubevirt"}}   # reconcile.go:93-95
        if drop is None:   # core.go:702-722
            self.cluster.request("POST", f"/api/v1/namespaces/{NS}/configmaps", {
                "apiVersion": "v1", "kind": "ConfigMap", "metadata": dict(meta, name=EXTERNAL), "data": {KEY: ""}})
            return
        external = valid_external((drop.get("data") or {}).get(KEY, ""), now)
        bundle = desired_bundle(own, ca, external, now)
        if ca is None:
            self.cluster.request("POST", f"/api/v1/namespaces/{NS}/configmaps", {
                "apiVersion": "v1", "kind": "ConfigMap", "metadata": dict(meta, name=CA), "data": {KEY: bundle}})
        elif ca.get("data") != {KEY: bundle}:
            # createConfigMapPatch (core.go:788-794): a JSON patch replacing /data
            self.cluster.request("PATCH", f"/api/v1/namespaces/{NS}/configmaps/{CA}",
                                 [{"op": "replace", "path": "/data", "value": {KEY: bundle}}],
                                 content_type="application/json-patch+json")
        if drop.get("data") != {KEY: ""}:
            # cleanupExternalCACerts (core.go:375-398): an Update with the install strategy's object,
            # so labels are the operator's again (the install strategy annotations are not played)
            emptied = dict(drop, data={KEY: ""})
            emptied["metadata"] = dict(drop["metadata"], labels=dict(meta["labels"]))
            self.cluster.request("PUT", f"/api/v1/namespaces/{NS}/configmaps/{EXTERNAL}", emptied)
        self._seen = None if drop.get("data") != {KEY: ""} else state

    @contextlib.contextmanager
    def paused(self):
        """Within the block virt-operator does not run on this cluster."""
        self._running.clear()
        with self._lock:
            pass
        try:
            yield
        finally:
            self._seen = None
            self._running.set()
