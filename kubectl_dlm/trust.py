"""Cross-cluster trust: exchange the KubeVirt CA bundles so the two sync controllers accept each other.

KubeVirt's procedure (kubevirt-dlm-api.md §4, dlm-state-machine.md §5): append cluster B's
`kubevirt-ca` `ca-bundle` to cluster A's `kubevirt-external-ca` `ca-bundle` (and the reverse);
virt-operator merges the currently valid certificates into `kubevirt-ca` and empties the drop box.
KubeVirt rotates its CA and, once its own CA has aged past the overlap window, drops merged peer
CAs, so `migrate` calls `ensure_trust` right before every cross-cluster migration.

Only public certificates are read and written (the two ConfigMaps); never the CA Secret.
The pure part (`plan_direction`) decides what to post; `ensure_trust` reads, writes and waits.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence

from kubectl_dlm import errors, pem
from kubectl_dlm.errors import DlmError, NotFound
from kubectl_dlm.model import meta

CA_CONFIGMAP = "kubevirt-ca"
EXTERNAL_CA_CONFIGMAP = "kubevirt-external-ca"
BUNDLE_KEY = "ca-bundle"
DEFAULT_TIMEOUT = 120
WRITE_ATTEMPTS = 5  # the operator rewrites the drop box on every reconcile: retry a conflicting write


class TrustTimeout(DlmError):
    """The operator did not merge the posted certificates into kubevirt-ca in time."""

    exit_code = errors.TIMED_OUT


@dataclass
class Direction:
    """The certificates of cluster `origin` that cluster `dest` must trust."""

    origin: str
    dest: str
    namespace: str  # KubeVirt install namespace on `dest`
    add: List[pem.Certificate] = field(default_factory=list)  # posted (dry run: would be) to dest's drop box
    pending: List[pem.Certificate] = field(default_factory=list)  # already in the drop box, not merged yet
    trusted: List[pem.Certificate] = field(default_factory=list)  # already in dest's kubevirt-ca
    expired: List[pem.Certificate] = field(default_factory=list)  # skipped
    not_yet_valid: List[pem.Certificate] = field(default_factory=list)  # skipped
    notes: List[str] = field(default_factory=list)
    merged_after: Optional[float] = None  # seconds until kubevirt-ca held everything (None: not waited)

    @property
    def wanted(self) -> List[pem.Certificate]:
        return self.add + self.pending + self.trusted

    @property
    def complete(self) -> bool:
        """Nothing left to post or to wait for."""
        return not self.add and not self.pending

    def to_dict(self) -> Dict[str, Any]:
        def certs(items: Sequence[pem.Certificate]) -> List[Dict[str, str]]:
            return [{"subject": c.subject, "notAfter": c.not_after.strftime("%Y-%m-%dT%H:%M:%SZ"),
                     "sha256": c.sha256} for c in items]

        return {"from": self.origin, "to": self.dest, "namespace": self.namespace, "added": certs(self.add),
                "pending": certs(self.pending), "alreadyTrusted": certs(self.trusted),
                "skippedExpired": certs(self.expired), "skippedNotYetValid": certs(self.not_yet_valid),
                "notes": list(self.notes), "mergedAfterSeconds": self.merged_after}


@dataclass
class TrustResult:
    directions: List[Direction] = field(default_factory=list)
    dry_run: bool = False
    same_cluster: bool = False
    reason: str = ""

    @property
    def changed(self) -> bool:
        """Something was posted (dry run: would be)."""
        return any(d.add for d in self.directions)

    def __bool__(self) -> bool:  # `if ensure_trust(...):` reads as "did it change anything"
        return self.changed

    def to_dict(self) -> Dict[str, Any]:
        return {"sameCluster": self.same_cluster, "dryRun": self.dry_run, "changed": self.changed,
                "reason": self.reason, "directions": [d.to_dict() for d in self.directions]}


# --- pure -----------------------------------------------------------------------------------

def plan_direction(origin: str, dest: str, namespace: str, origin_ca: Sequence[pem.Certificate],
                   dest_ca: Sequence[pem.Certificate], dest_external: Sequence[pem.Certificate],
                   now: dt.datetime) -> Direction:
    """Which of `origin`'s CA certificates to post to `dest`'s drop box.

    Expired and not-yet-valid ones are skipped (the operator would drop them); those `dest`
    already trusts, or that already wait in its drop box, are not posted again (SHA-256 of the DER).
    """
    result = Direction(origin=origin, dest=dest, namespace=namespace)
    trusted = {c.sha256 for c in dest_ca}
    waiting = {c.sha256 for c in dest_external}
    for cert in pem.unique(origin_ca):
        state = cert.state(now)
        if state == "expired":
            result.expired.append(cert)
        elif state == "not-yet-valid":
            result.not_yet_valid.append(cert)
        elif cert.sha256 in trusted:
            result.trusted.append(cert)
        elif cert.sha256 in waiting:
            result.pending.append(cert)
        else:
            result.add.append(cert)
    if not result.wanted:
        result.notes.append(f"{origin}'s {CA_CONFIGMAP} has no currently valid certificate: nothing to post")
    return result


def missing_from(wanted: Sequence[pem.Certificate], bundle_text: Optional[str]) -> List[pem.Certificate]:
    """The wanted certificates not (yet) in a kubevirt-ca bundle; an unparseable bundle holds none."""
    try:
        present = {c.sha256 for c in pem.parse_bundle(bundle_text)}
    except pem.PemError:
        present = set()
    return [c for c in wanted if c.sha256 not in present]


def same_cluster(a: Any, b: Any) -> bool:
    """One cluster when it is the same connection, or the same API server address."""
    return a is b or (getattr(a, "server", None) is not None and getattr(a, "server", None) == getattr(b, "server", None))


# --- I/O ------------------------------------------------------------------------------------

def discover_namespace(cluster: Any, override: Optional[str] = None) -> str:
    """The KubeVirt install namespace: where the KubeVirt CR lives (or --kubevirt-namespace)."""
    if override:
        return override
    from kubectl_dlm import kube

    kubevirts = kube.list_objects(cluster, "KubeVirt")
    if not kubevirts:
        raise NotFound(f"no KubeVirt CR on {cluster.describe()}: KubeVirt is not installed there",
                       "install KubeVirt (>= v1.6.0), or pass --kubevirt-namespace if the CR cannot be listed")
    return meta(kubevirts[0]).get("namespace") or "kubevirt"


def read_bundle(cluster: Any, namespace: str, name: str) -> tuple:
    """(ConfigMap or None, its certificates). Raises on a bundle that does not parse."""
    from kubectl_dlm import kube

    cm = kube.get(cluster, "ConfigMap", namespace, name)
    text = ((cm or {}).get("data") or {}).get(BUNDLE_KEY)
    try:
        return cm, pem.parse_bundle(text, f"ConfigMap {namespace}/{name} on {cluster.describe()}")
    except pem.PemError as exc:
        raise DlmError(str(exc), f"repair {BUNDLE_KEY} of ConfigMap {namespace}/{name}: it must hold PEM certificates") from None


def ensure_trust(source_cluster: Any, target_cluster: Any, *, source_namespace: Optional[str] = None,
                 target_namespace: Optional[str] = None, timeout: float = DEFAULT_TIMEOUT, dry_run: bool = False,
                 now: Optional[dt.datetime] = None, log: Optional[Callable[[str], None]] = None) -> TrustResult:
    """Make each cluster trust the other's current KubeVirt CA, and wait until it does.

    Idempotent: when both `kubevirt-ca` bundles already hold the peer's valid certificates, nothing
    is written (`result.changed` is False). `source_namespace`/`target_namespace` override the
    discovered KubeVirt install namespaces. Raises TrustTimeout (exit 11) when the operator does not
    merge within `timeout` seconds. Same cluster: nothing to do (`result.same_cluster`).
    """
    say = log or (lambda _message: None)
    if same_cluster(source_cluster, target_cluster):
        return TrustResult(dry_run=dry_run, same_cluster=True,
                           reason="source and target are the same cluster: its sync controller already trusts itself")
    deadline = time.monotonic() + timeout
    when = now or pem.now()
    sides = [(source_cluster, discover_namespace(source_cluster, source_namespace)),
             (target_cluster, discover_namespace(target_cluster, target_namespace))]
    bundles = []
    for cluster, namespace in sides:
        cm, certs = read_bundle(cluster, namespace, CA_CONFIGMAP)
        if cm is None:
            raise NotFound(f"ConfigMap {namespace}/{CA_CONFIGMAP} not found on {cluster.describe()}",
                           "is KubeVirt >= v1.6.0 installed in that namespace? pass --kubevirt-namespace otherwise")
        bundles.append(certs)
    result = TrustResult(dry_run=dry_run)
    for (origin, _), origin_ca, (dest, dest_ns), dest_ca in ((sides[0], bundles[0], sides[1], bundles[1]),
                                                             (sides[1], bundles[1], sides[0], bundles[0])):
        direction = _post(origin, origin_ca, dest, dest_ns, dest_ca, when, dry_run)
        result.directions.append(direction)
        say(describe_direction(direction, dry_run))
    if not dry_run:
        for direction, (dest, dest_ns) in zip(result.directions, (sides[1], sides[0])):
            if direction.complete:
                continue
            started = time.monotonic()
            _wait_merged(dest, dest_ns, direction, deadline)
            direction.merged_after = round(time.monotonic() - started, 1)
            say(f"{direction.dest}: {CA_CONFIGMAP} now holds {direction.origin}'s "
                f"{len(direction.wanted)} certificate(s) (after {direction.merged_after}s)")
    return result


def _post(origin: Any, origin_ca: List[pem.Certificate], dest: Any, namespace: str, dest_ca: List[pem.Certificate],
          when: dt.datetime, dry_run: bool) -> Direction:
    """Read dest's drop box, decide, and append what is missing (conditional write, retried on conflict)."""
    from kubectl_dlm import kube

    for attempt in range(WRITE_ATTEMPTS):
        external = kube.get(dest, "ConfigMap", namespace, EXTERNAL_CA_CONFIGMAP)
        text = ((external or {}).get("data") or {}).get(BUNDLE_KEY) or ""
        notes: List[str] = []
        try:
            waiting = pem.parse_bundle(text, f"ConfigMap {namespace}/{EXTERNAL_CA_CONFIGMAP}")
        except pem.PemError as exc:
            # The operator discards an unparseable drop box as a whole: appending to it would lose ours too.
            notes.append(f"the current content of {EXTERNAL_CA_CONFIGMAP} does not parse ({exc}); "
                         "virt-operator would discard it all, so it is replaced")
            waiting, text = [], ""
        direction = plan_direction(origin.name, dest.name, namespace, origin_ca, dest_ca, waiting, when)
        direction.notes[:0] = notes
        if not direction.add or dry_run:
            if external is None and direction.add:
                direction.notes.append(f"ConfigMap {namespace}/{EXTERNAL_CA_CONFIGMAP} does not exist yet; it would be created")
            return direction
        new_text = (text if not text or text.endswith("\n") else text + "\n") + pem.to_bundle(direction.add)
        try:
            if external is None:
                direction.notes.append(f"created ConfigMap {namespace}/{EXTERNAL_CA_CONFIGMAP} (virt-operator had not)")
                kube.apply(dest, {"apiVersion": "v1", "kind": "ConfigMap",
                                  "metadata": {"name": EXTERNAL_CA_CONFIGMAP, "namespace": namespace},
                                  "data": {BUNDLE_KEY: new_text}})
            else:
                updated = dict(external, data=dict(external.get("data") or {}, **{BUNDLE_KEY: new_text}))
                kube.replace(dest, updated)  # conditional on the resourceVersion we read
            return direction
        except errors.Conflict:
            if attempt + 1 == WRITE_ATTEMPTS:
                raise
            time.sleep(0.2 * (attempt + 1))  # the operator rewrote it meanwhile: read again
    raise AssertionError("unreachable")


def _wait_merged(dest: Any, namespace: str, direction: Direction, deadline: float) -> None:
    """Watch dest's kubevirt-ca until it holds every wanted certificate, bounded by `deadline`."""
    from kubectl_dlm import kube

    wanted = direction.wanted
    while True:
        cm = kube.get(dest, "ConfigMap", namespace, CA_CONFIGMAP)
        if not missing_from(wanted, ((cm or {}).get("data") or {}).get(BUNDLE_KEY)):
            return
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        version = meta(cm or {}).get("resourceVersion") or "0"
        try:
            for event in kube.watch(dest, "ConfigMap", namespace, version,
                                    field_selector=f"metadata.name={CA_CONFIGMAP}", timeout=max(1, int(remaining))):
                obj = event.get("object") or {}
                if event.get("type") in ("ADDED", "MODIFIED") and meta(obj).get("name") == CA_CONFIGMAP \
                        and not missing_from(wanted, (obj.get("data") or {}).get(BUNDLE_KEY)):
                    return
                if time.monotonic() >= deadline:
                    break
        except (kube.Expired, kube.Disconnected):
            time.sleep(0.2)  # list again
        if time.monotonic() >= deadline:
            break
    cm = kube.get(dest, "ConfigMap", namespace, CA_CONFIGMAP)
    missing = missing_from(wanted, ((cm or {}).get("data") or {}).get(BUNDLE_KEY))
    external = kube.get(dest, "ConfigMap", namespace, EXTERNAL_CA_CONFIGMAP)
    drained = not (((external or {}).get("data") or {}).get(BUNDLE_KEY) or "").strip()
    why = ("virt-operator emptied kubevirt-external-ca without adding them; it drops certificates it judges "
           "expired or not yet valid, so compare the clocks of the two clusters" if drained else
           "they still wait in kubevirt-external-ca: is virt-operator running?")
    raise TrustTimeout(
        f"{direction.dest}: {namespace}/{CA_CONFIGMAP} does not hold {len(missing)} of {direction.origin}'s CA "
        f"certificate(s) ({', '.join(c.subject + ' sha256 ' + c.short_id for c in missing)}) after waiting; {why}",
        f"check with: kubectl --context {direction.dest} -n {namespace} get configmap {CA_CONFIGMAP} "
        f"{EXTERNAL_CA_CONFIGMAP} -o yaml; then run the command again (it is safe to repeat), or raise --timeout")


# --- presentation ---------------------------------------------------------------------------

def describe_direction(direction: Direction, dry_run: bool = False) -> str:
    head = f"{direction.origin} -> {direction.dest} ({direction.namespace}/{EXTERNAL_CA_CONFIGMAP}):"
    lines = [head]
    verb = "would add" if dry_run else "add"
    for label, certs in ((verb, direction.add), ("pending", direction.pending), ("trusted", direction.trusted),
                         ("skip (expired)", direction.expired), ("skip (not yet valid)", direction.not_yet_valid)):
        for cert in certs:
            lines.append(f"  {label:<21} {cert.subject or '(empty subject)'}  "
                         f"valid {pem.format_time(cert.not_before)} .. {pem.format_time(cert.not_after)}  "
                         f"sha256 {cert.short_id}")
    for note in direction.notes:
        lines.append(f"  note: {note}")
    if direction.complete and direction.trusted:
        lines.append(f"  nothing to change: {direction.dest} already trusts all of {direction.origin}'s valid CA certificates")
    return "\n".join(lines)
