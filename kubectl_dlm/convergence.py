"""Will this migration finish? A verdict from virt-handler's transfer figures over time. Pure.

Pre-copy converges when the guest dirties memory more slowly than it is sent: each round then
has less to send. KubeVirt itself judges progress by the remaining bytes: progress is a new
low of `data remaining` (pkg/virt-launcher/virtwrap/live-migration-source.go:827-830), and a
migration without progress for progressTimeout (150 s by default, pkg/virt-config/virt-config.go:49)
is aborted (live-migration-source.go:530-540). We say so earlier, from the same figures as the
metrics carry them (kubevirt_vmi_migration_data_remaining_bytes, _dirty_memory_rate_bytes,
_memory_transfer_rate_bytes: pkg/monitoring/metrics/virt-handler/migrationdomainstats/
migrationstats_collector.go:50-72), and name what would help.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

CONVERGING, NOT_CONVERGING, UNKNOWN = "converging", "not-converging", "unknown"
WINDOW = 20.0  # seconds of samples a verdict needs: four of virt-handler's 5 s refreshes
ADVICE = ("more bandwidth (the KubeVirt CR's spec.configuration.migrations.bandwidthPerMigration, 0 = unlimited), "
          "or let KubeVirt force it to finish: allowAutoConverge (throttles the guest) or allowPostCopy "
          "(switches to post-copy), set there or in a MigrationPolicy selecting this VM")


@dataclass(frozen=True)
class Sample:
    at: float  # seconds, monotonic
    remaining: Optional[float] = None  # bytes
    dirty_rate: Optional[float] = None  # bytes/s
    rate: Optional[float] = None  # bytes/s sent


@dataclass(frozen=True)
class Verdict:
    state: str  # converging | not-converging | unknown
    reason: str = ""
    advice: str = ""

    def to_dict(self) -> Dict[str, str]:
        return {"verdict": self.state, "reason": self.reason, "advice": self.advice}


def _mean(values: Sequence[Optional[float]]) -> Optional[float]:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def _mib(n: float) -> str:
    return f"{n / 2**20:.1f} MiB"


def verdict(samples: Sequence[Sample], window: float = WINDOW) -> Verdict:
    """The verdict from the samples of one migration, oldest first."""
    if not samples or samples[-1].at - samples[0].at < window:
        return Verdict(UNKNOWN, f"less than {int(window)}s of transfer figures")
    now = samples[-1].at
    recent = [s for s in samples if s.at >= now - window]
    earlier = [s.remaining for s in samples if s.at < now - window and s.remaining is not None]
    dirty, rate = _mean([s.dirty_rate for s in recent]), _mean([s.rate for s in recent])
    if dirty is not None and rate is not None and dirty > 0 and dirty >= rate:
        return Verdict(NOT_CONVERGING, f"the guest dirties memory at {_mib(dirty)}/s, as fast as or faster than the "
                                       f"{_mib(rate)}/s sent (last {int(window)}s)", ADVICE)
    recent_left = [s.remaining for s in recent if s.remaining is not None]
    if earlier and recent_left and min(recent_left) >= min(earlier) > 0:
        return Verdict(NOT_CONVERGING, f"the remaining {_mib(min(recent_left))} has not gone below {_mib(min(earlier))} "
                                       f"for {int(window)}s (KubeVirt aborts after progressTimeout without a new low)",
                       ADVICE)
    if recent_left and len(recent_left) > 1 and recent_left[-1] < recent_left[0]:
        falling = (recent_left[0] - recent_left[-1]) / max(recent[-1].at - recent[0].at, 1e-9)
        return Verdict(CONVERGING, f"the remaining data falls by {_mib(falling)}/s")
    return Verdict(UNKNOWN, "the figures do not tell yet")


class Tracker:
    """Samples of each migration in progress; `observe` answers the verdict when it changed."""

    def __init__(self, window: float = WINDOW, keep: float = 4 * WINDOW):
        self.window, self.keep = window, keep
        self.samples: Dict[str, List[Sample]] = {}
        self.said: Dict[str, str] = {}

    def observe(self, key: str, at: float, progress: Dict[str, float]) -> Optional[Verdict]:
        samples = self.samples.setdefault(key, [])
        samples.append(Sample(at, progress.get("remaining"), progress.get("dirty_rate"), progress.get("rate")))
        while samples and samples[0].at < at - self.keep:
            samples.pop(0)
        result = verdict(samples, self.window)
        if result.state == UNKNOWN or self.said.get(key) == result.state:
            return None
        self.said[key] = result.state
        return result

    def current(self, key: str) -> Optional[str]:
        return self.said.get(key)
