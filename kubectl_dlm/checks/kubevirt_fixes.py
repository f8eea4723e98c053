"""DLM bugs fixed per KubeVirt release, and the row (pure) that says which ones hit this move.

KubeVirt's decentralized live migration got many fixes after v1.6.0, spread over patch releases.
FIXES lists them with the first release of each minor line that has the fix (the last entry
covers every later minor line); a minor line not listed below the last entry never got it. The
README repeats this table. Sources: `git tag --contains` of each fix in kubevirt/kubevirt, as read
in the fidelity review (row 4) and the field research (§1.3).

`check` reads status.observedKubeVirtVersion on both clusters and reports a fix as missing only
where it matters for this VM and this move: a TPM/EFI VM on v1.8 fails, a plain VM only warns
about the failure-propagation gap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from kubectl_dlm.checks.facts import FAIL, PASS, UNKNOWN, WARN, Check

Version = Tuple[int, int, int]
MINIMUM = (1, 6, 0)  # the DLM API (VMIM sendTo/receive) appears in v1.6.0
RECOMMENDED = (1, 9, 0)  # every fix below


@dataclass(frozen=True)
class Move:
    """What about this VM and this move decides whether a fix matters."""

    persistent_state: Tuple[str, ...] = ()  # "persistent TPM", "persistent EFI"
    volume_mode_changes: Tuple[str, ...] = ()  # claims whose volume mode differs on the target
    cross_namespace: bool = False
    ipv6_addresses: Tuple[str, ...] = ()  # published sync addresses that are IPv6 (per cluster, see below)


@dataclass(frozen=True)
class Fix:
    what: str  # the bug, in the user's words
    fixed_in: Tuple[Version, ...]
    evidence: str  # upstream PR / commit
    severity: str  # FAIL or WARN, when it applies
    applies: Callable[[Move], bool]


FIXES: Tuple[Fix, ...] = (
    Fix("a failure on one side is not propagated to the other, so a failed migration never ends (until --timeout)",
        ((1, 8, 3), (1, 9, 0)), "kubevirt#15716 (74d591b2fa, v1.8.0), target side 636de84772 (v1.8.3, v1.9.0)",
        WARN, lambda m: True),
    Fix("no decentralizedMigrationBlocked condition: a stalled migration shows no reason",
        ((1, 8, 0),), "kubevirt#16512 (v1.8.0)", WARN, lambda m: True),
    Fix("a disk whose volume mode changes (Block <-> Filesystem) fails: the target cannot open the source's path",
        ((1, 7, 1), (1, 8, 0)), "kubevirt#16637 (backport #16715 in v1.7.1), migratedVolumes sync 6256982579 (v1.8.0)",
        FAIL, lambda m: bool(m.volume_mode_changes)),
    Fix("IPv6 synchronization addresses are published without brackets, so the peer cannot dial them",
        ((1, 7, 4), (1, 8, 3), (1, 9, 0)), "kubevirt#17755 (net.JoinHostPort)",
        FAIL, lambda m: bool(m.ipv6_addresses)),
    Fix("a VM with persistent TPM or EFI state stays pending forever",
        ((1, 9, 0),), "kubevirt#18181 (efa3446859, v1.9.0)", FAIL, lambda m: bool(m.persistent_state)),
    Fix("disk paths are not rewritten for another namespace",
        ((1, 9, 0),), "kubevirt#18136 (v1.9.0)", WARN, lambda m: m.cross_namespace),
    Fix("cancelling leaves a finalizer on the target migration, so `kubectl dlm cancel` waits for it in vain",
        ((1, 9, 0),), "kubevirt#18216 (dbcdbf80cb, v1.9.0)", WARN, lambda m: True),
    Fix("the synchronization address of a terminating leader pod stays published during a rolling update",
        ((1, 9, 0),), "kubevirt#18157 (ffee3fbece, v1.9.0)", WARN, lambda m: True),
)


def has_fix(version: Version, fixed_in: Sequence[Version]) -> bool:
    """The first release with the fix per minor line; the last entry covers every later line."""
    for first in fixed_in:
        if version[:2] == first[:2]:
            return version >= first
    return version[:2] > max(fixed_in)[:2]


def fmt(version: Version) -> str:
    return "v" + ".".join(str(p) for p in version)


def missing(version: Version, move: Move) -> List[Fix]:
    return [f for f in FIXES if not has_fix(version, f.fixed_in) and f.applies(move)]


def check_fixes(versions: Dict[str, Tuple[str, Optional[Version]]], moves: Dict[str, Move], scope: str) -> Check:
    """versions: cluster label -> (observedKubeVirtVersion text, parsed); moves: cluster label -> Move."""
    name = "kubevirt-fixes"
    problems: List[Tuple[str, str]] = []  # (severity, text)
    unknown = [label for label, (_, v) in versions.items() if v is None]
    for label, (text, version) in versions.items():
        if version is None or version < MINIMUM:
            continue  # kubevirt-version says it
        for fix in missing(version, moves[label]):
            releases = ", ".join(fmt(v) for v in fix.fixed_in)
            problems.append((fix.severity, f"KubeVirt {text} on {label}: {fix.what} (fixed in {releases}; {fix.evidence})"))
    fix_hint = f"upgrade KubeVirt on both clusters to {fmt(RECOMMENDED)} or later"
    if any(sev == FAIL for sev, _ in problems):
        return Check(name, FAIL, "; ".join(t for sev, t in problems if sev == FAIL)
                     + "".join(f"; also: {t}" for sev, t in problems if sev != FAIL), fix_hint, scope)
    if problems:
        return Check(name, WARN, "; ".join(t for _, t in problems), fix_hint, scope)
    if unknown:
        return Check(name, UNKNOWN, f"could not verify: no KubeVirt version known for {', '.join(unknown)}", "", scope)
    return Check(name, PASS, "no known DLM bug of " + " and ".join(
        f"KubeVirt {text} on {label}" for label, (text, _) in versions.items()) + " affects this move", "", scope)
