"""The cluster rows (pure): DLM enabled, KubeVirt version, sync addresses, CA trust and expiry,
permissions, target namespace.

CA_CONFIGMAP repeats trust.CA_CONFIGMAP instead of importing it: trust reaches the cluster, and
these rules must not (.importlinter).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import re
from typing import Dict, List, Optional, Sequence, Tuple

from kubectl_dlm import pem, sync_address
from kubectl_dlm.checks.facts import FAIL, PASS, UNKNOWN, WARN, Check, ClusterFacts, Facts
from kubectl_dlm.model import meta

FEATURE_GATE = "DecentralizedLiveMigration"
# Alpha up to v1.9.0 (pkg/virt-config/featuregate/active.go:315 @v1.9.0), Beta and on by default on
# main since a64159ce8e (active.go:310 @d923fdb), so in v1.10 and main builds (v1.10.0-alpha...).
BETA_VERSION = (1, 10, 0)
MIN_VERSION = (1, 6, 0)  # the DLM API appears in v1.6.0; later fixes: kubevirt_fixes.FIXES
EXPIRY_WARNING = dt.timedelta(hours=24)
CA_CONFIGMAP = "kubevirt-ca"  # = trust.CA_CONFIGMAP


def cluster_scope(facts: Facts, role: str) -> str:
    name = facts.clusters[role].name or role
    return f"cluster {name} (source and target)" if facts.same_cluster else f"cluster {name} ({role})"


# cluster rows

def check_dlm_enabled(cf: ClusterFacts, scope: str) -> Check:
    name = "dlm-enabled"
    if cf.kubevirt is None:
        if not cf.contacted:
            return Check(name, UNKNOWN, f"could not verify: {cf.kubevirt_error}", "", scope)
        if cf.kubevirt_error:
            return Check(name, UNKNOWN, f"could not verify: cannot list KubeVirt CRs: {cf.kubevirt_error}",
                         "use a context that may list kubevirts.kubevirt.io", scope)
        return Check(name, FAIL, "no KubeVirt CR: KubeVirt is not installed on this cluster",
                     "install KubeVirt v1.6.0 or later with the DecentralizedLiveMigration feature gate", scope)
    kv_ns, kv_name = cf.kubevirt_namespace, meta(cf.kubevirt).get("name", "kubevirt")
    addresses = ((cf.kubevirt.get("status") or {}).get("synchronizationAddresses")) or []
    if addresses:
        return Check(name, PASS, f"KubeVirt {kv_ns}/{kv_name} publishes synchronization address "
                                 f"{', '.join(addresses)}", "", scope)
    developer = (((cf.kubevirt.get("spec") or {}).get("configuration") or {}).get("developerConfiguration") or {})
    gates = list(developer.get("featureGates") or [])
    disabled = list(developer.get("disabledFeatureGates") or [])
    where = f"KubeVirt {kv_ns}/{kv_name}"
    ctx = f"kubectl --context {cf.name} -n {kv_ns}" if cf.name else f"kubectl -n {kv_ns}"
    if FEATURE_GATE in disabled and FEATURE_GATE not in gates:
        kept = [g for g in disabled if g != FEATURE_GATE]
        return Check(name, FAIL, f"DLM is off: {where} lists {FEATURE_GATE} in "
                                 "spec.configuration.developerConfiguration.disabledFeatureGates",
                     f"remove it from disabledFeatureGates: {ctx} patch kubevirt {kv_name} --type merge -p "
                     f"'{_gates_patch('disabledFeatureGates', kept)}'", scope)
    version = parse_version((cf.kubevirt.get("status") or {}).get("observedKubeVirtVersion"))
    beta = version is not None and version >= BETA_VERSION
    if FEATURE_GATE in gates or beta:
        # The operator publishes no address while the lease has no holder, or its pod is missing
        # or terminating (pkg/virt-operator/resource/apply/core.go:811-843 @v1.9.0): the gate is on.
        on = f"enables {FEATURE_GATE}" if FEATURE_GATE in gates else \
            f"has {FEATURE_GATE} on by default (Beta on KubeVirt main and from v1.10)"
        return Check(name, FAIL, f"{where} {on} but status.synchronizationAddresses is empty: "
                                 "virt-synchronization-controller has no leader, or its pod is missing, terminating "
                                 "or has no IP yet",
                     f"check it: {ctx} get deployment,lease virt-synchronization-controller", scope)
    return Check(name, FAIL, f"DLM is off: {where} has no status.synchronizationAddresses and does not enable "
                             f"{FEATURE_GATE} (KubeVirt v1.6-v1.9: Alpha, off by default)",
                 f"add {FEATURE_GATE} to spec.configuration.developerConfiguration.featureGates: {ctx} patch kubevirt "
                 f"{kv_name} --type merge -p '{_gates_patch('featureGates', gates + [FEATURE_GATE])}'", scope)


def _gates_patch(key: str, gates: List[str]) -> str:
    return json.dumps({"spec": {"configuration": {"developerConfiguration": {key: gates}}}}, separators=(",", ":"))


_VERSION = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)")


def parse_version(text: Optional[str]) -> Optional[Tuple[int, int, int]]:
    match = _VERSION.match((text or "").strip())
    return tuple(int(g) for g in match.groups()) if match else None  # type: ignore[return-value]


def check_version(cf: ClusterFacts, scope: str) -> Check:
    name = "kubevirt-version"
    if cf.kubevirt is None:
        return Check(name, UNKNOWN, "could not verify: no KubeVirt CR to read the version from", "", scope)
    text = (cf.kubevirt.get("status") or {}).get("observedKubeVirtVersion")
    version = parse_version(text)
    if version is None:
        return Check(name, UNKNOWN, f"could not verify: status.observedKubeVirtVersion is "
                                    f"{repr(text) if text else 'not set'}", "", scope)
    if version < MIN_VERSION:
        return Check(name, FAIL, f"KubeVirt {text} has no decentralized live migration (it needs v1.6.0 or later)",
                     "upgrade KubeVirt to v1.9.0 (v1.6.0 at least; see the kubevirt-fixes row)", scope)
    return Check(name, PASS, f"KubeVirt {text} supports decentralized live migration (the kubevirt-fixes row says "
                             "which of its known DLM bugs matter for each VM)", "", scope)


def classify_address(address: str) -> Tuple[str, str]:
    """(status, why) for a gRPC sync address, from its text only: nothing is resolved or dialled.
    The syntax is sync_address.split's, the same that --connect-url accepts."""
    try:
        host, _port = sync_address.split(address)
    except sync_address.AddressError as exc:
        return FAIL, str(exc)
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        if host.lower() == "localhost" or host.lower().endswith(".localhost"):
            return FAIL, f"{address} is loopback: the other cluster would dial itself"
        if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*\.?", host):
            return FAIL, f"{address}: {host} is neither an IP address nor a host name"
        return PASS, f"{address} (a host name; the other cluster must resolve it, not looked up here)"
    if ip.is_loopback:
        return FAIL, f"{address} is loopback: the other cluster would dial itself"
    if ip.is_unspecified:
        return FAIL, f"{address} is the unspecified address, which no peer can dial"
    if ip.is_link_local:
        return FAIL, f"{address} is link-local: it is not routed beyond its own network segment"
    if ip.is_multicast:
        return FAIL, f"{address} is a multicast address"
    return PASS, address


def check_sync_addresses(facts: Facts) -> List[Check]:
    name = "sync-address"
    if facts.same_cluster:
        return [Check(name, PASS, "same cluster: its synchronization controller connects to itself", "",
                      cluster_scope(facts, "source"))]
    rows = []
    published: Dict[str, List[str]] = {}
    for role, other in (("source", "target"), ("target", "source")):
        cf = facts.clusters[role]
        scope = cluster_scope(facts, role)
        addresses = list(((cf.kubevirt or {}).get("status") or {}).get("synchronizationAddresses") or [])
        if role == "target" and facts.settings.connect_url:
            addresses = [facts.settings.connect_url]
        published[role] = addresses
        if not addresses:
            rows.append(Check(name, UNKNOWN, "could not verify: no synchronization address is published "
                                             "(see dlm-enabled)", "", scope))
            continue
        verdicts = [classify_address(a) for a in addresses]
        bad = [why for status, why in verdicts if status == FAIL]
        if bad:
            fix = ("pass a routable address with --connect-url, or " if role == "target" else "") + \
                  "configure a KubeVirt migration network (spec.configuration.migrations.network) that both clusters route"
            rows.append(Check(name, FAIL, "; ".join(bad), fix, scope))
        else:
            rows.append(Check(name, PASS, f"{facts.clusters[other].label} dials " + ", ".join(why for _, why in verdicts)
                              + ": looks routable (judged by the text only; nothing was dialled)", "", scope))
    shared = set(published["source"]) & set(published["target"])
    if shared:
        rows.append(Check(name, WARN, f"both clusters publish {', '.join(sorted(shared))}: their pod (or migration) "
                                      "networks overlap, so neither can reach the other's sync controller",
                          "use non-overlapping pod CIDRs or a routed migration network",
                          f"clusters {facts.clusters['source'].label} and {facts.clusters['target'].label}"))
    return rows


def check_trust(facts: Facts, now: dt.datetime) -> List[Check]:
    src, tgt = facts.clusters["source"], facts.clusters["target"]
    if facts.same_cluster:
        return [Check("ca-trust", PASS, "same cluster: no CA exchange is needed (one kubevirt-ca)", "",
                      cluster_scope(facts, "source"))]
    bundles: Dict[str, Optional[List[pem.Certificate]]] = {}
    errors: Dict[str, str] = {}
    for cf in (src, tgt):
        if cf.ca_error or cf.kubevirt is None:
            errors[cf.role] = cf.ca_error or "no KubeVirt CR"
            bundles[cf.role] = None
            continue
        try:
            bundles[cf.role] = pem.parse_bundle(cf.ca_bundle, f"{cf.kubevirt_namespace}/{CA_CONFIGMAP}")
        except pem.PemError as exc:
            errors[cf.role] = str(exc)
            bundles[cf.role] = None
    fix = f"kubectl dlm trust --context {src.label} --to-context {tgt.label}"
    rows = []
    for holder, peer in ((tgt, src), (src, tgt)):
        scope = f"{holder.label} trusts {peer.label}"
        if bundles[holder.role] is None or bundles[peer.role] is None:
            which = holder if bundles[holder.role] is None else peer
            rows.append(Check("ca-trust", UNKNOWN, f"could not verify: cannot read {CA_CONFIGMAP} on "
                                                   f"{which.label}: {errors[which.role]}", "", scope))
            continue
        valid = [c for c in pem.unique(bundles[peer.role]) if c.valid_at(now)]
        held = {c.sha256 for c in bundles[holder.role]}
        missing = [c for c in valid if c.sha256 not in held]
        if not valid:
            rows.append(Check("ca-trust", FAIL, f"{peer.label}'s {CA_CONFIGMAP} holds no currently valid "
                                                "certificate", f"check virt-operator on {peer.label}", scope))
        elif missing:
            rows.append(Check("ca-trust", FAIL, f"{holder.label}'s {CA_CONFIGMAP} lacks {len(missing)} of "
                                                f"{peer.label}'s {len(valid)} CA certificate(s): "
                                                + "; ".join(c.describe() for c in missing), fix, scope))
        else:
            rows.append(Check("ca-trust", PASS, f"{holder.label}'s {CA_CONFIGMAP} holds all {len(valid)} of "
                                                f"{peer.label}'s valid CA certificate(s)", "", scope))
    for cf in (src, tgt):
        certs = bundles[cf.role]
        scope = f"{cf.kubevirt_namespace}/{CA_CONFIGMAP} on {cf.label}"
        if certs is None:
            rows.append(Check("ca-expiry", UNKNOWN, f"could not verify: {errors[cf.role]}", "", scope))
            continue
        rows.append(expiry_row(certs, now, scope, fix))
    return rows


def expiry_row(certs: Sequence[pem.Certificate], now: dt.datetime, scope: str, fix: str) -> Check:
    certs = pem.unique(certs)
    valid = [c for c in certs if c.valid_at(now)]
    expired = [c for c in certs if c.state(now) == "expired"]
    if not valid:
        what = ("every certificate in it has expired: " + "; ".join(c.describe() for c in expired)) if expired \
            else "it holds no currently valid certificate"
        return Check("ca-expiry", FAIL, what, "check virt-operator, which renews the KubeVirt CA", scope)
    soon = [c for c in valid if c.not_after - now <= EXPIRY_WARNING]
    note = f" ({len(expired)} expired one(s) ignored)" if expired else ""
    if soon:
        return Check("ca-expiry", WARN, "expires within 24h: " + "; ".join(c.describe() for c in soon) + note,
                     "KubeVirt renews its CA before expiry; run `" + fix + "` again after it has, "
                     "`kubectl dlm migrate` re-posts trust right before it starts", scope)
    first = min(valid, key=lambda c: c.not_after)
    return Check("ca-expiry", PASS, f"{len(valid)} valid certificate(s), the first expires "
                                    f"{pem.format_time(first.not_after)}{note}", "", scope)


def check_access(cf: ClusterFacts, scope: str) -> Check:
    name = "permissions"
    denied = [a for a, allowed, _ in cf.access if allowed is False and not a.optional]
    if denied:
        return Check(name, FAIL, "you may not: " + "; ".join(a.describe() for a in denied),
                     f"ask for these permissions (RBAC) on {cf.label} (`kubectl dlm rbac` prints them), "
                     "or use a context that has them", scope)
    optional = [a for a, allowed, _ in cf.access if allowed is False]
    if optional:
        lost = sorted({a.optional for a in optional})
        return Check(name, WARN, "you may not: " + "; ".join(a.describe() for a in optional)
                     + "; the migration goes on without: " + "; ".join(lost),
                     f"ask for these permissions (RBAC) on {cf.label} to have them (`kubectl dlm rbac` prints them)",
                     scope)
    if not cf.contacted:
        return Check(name, UNKNOWN, f"could not verify: {cf.access_error}", "", scope)
    if cf.access_error:
        return Check(name, UNKNOWN, f"could not verify (SelfSubjectAccessReview): {cf.access_error}",
                     "make sure your user has the permissions the README lists", scope)
    if not cf.access:
        return Check(name, UNKNOWN, "could not verify: access was not reviewed", "", scope)
    return Check(name, PASS, f"you may do all {len(cf.access)} things the migration needs here "
                             "(SelfSubjectAccessReview)", "", scope)


def check_target_namespace(facts: Facts) -> Check:
    tns, ctx = facts.settings.target_namespace, facts.clusters["target"].name
    scope = f"cluster {ctx or 'target'} (target)"
    if facts.namespace_error or facts.namespace_exists is None:
        return Check("target-namespace", UNKNOWN, f"could not verify namespace {tns}: "
                                                  f"{facts.namespace_error or 'no access to the target'}", "", scope)
    if not facts.namespace_exists:
        return Check("target-namespace", FAIL, f"namespace {tns} does not exist on the target",
                     f"kubectl{' --context ' + ctx if ctx else ''} create namespace {tns}", scope)
    return Check("target-namespace", PASS, f"namespace {tns} exists", "", scope)
