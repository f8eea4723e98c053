"""kubectl_dlm.convergence: the verdict from remaining bytes, dirty rate and transfer rate over time."""

from __future__ import annotations

import io
import json

import pytest

from kubectl_dlm import convergence
from kubectl_dlm.convergence import CONVERGING, NOT_CONVERGING, UNKNOWN, Sample

MiB = 2**20


def series(seconds, remaining, dirty=0.0, rate=100 * MiB, step=5):
    """A sample every `step` s; `remaining` is a function of the time."""
    return [Sample(t, remaining(t), dirty, rate) for t in range(0, seconds + 1, step)]


@pytest.mark.parametrize("samples, state, reason", [
    ([], UNKNOWN, "less than 20s of transfer figures"),
    (series(15, lambda t: 1000 * MiB - t * MiB), UNKNOWN, "less than 20s of transfer figures"),
    (series(40, lambda t: 1000 * MiB - t * 10 * MiB), CONVERGING, "the remaining data falls by 10.0 MiB/s"),
    (series(40, lambda t: 500 * MiB, dirty=150 * MiB), NOT_CONVERGING,
     "the guest dirties memory at 150.0 MiB/s, as fast as or faster than the 100.0 MiB/s sent (last 20s)"),
    (series(40, lambda t: 500 * MiB, dirty=100 * MiB), NOT_CONVERGING,
     "the guest dirties memory at 100.0 MiB/s, as fast as or faster than the 100.0 MiB/s sent (last 20s)"),
    # dirty rate below the rate, but the remaining bytes bounce without a new low: KubeVirt's notion of no progress
    (series(60, lambda t: (300 if t < 10 else 400 - (t % 10)) * MiB, dirty=80 * MiB), NOT_CONVERGING,
     "the remaining 395.0 MiB has not gone below 300.0 MiB for 20s (KubeVirt aborts after progressTimeout "
     "without a new low)"),
    (series(40, lambda t: None, dirty=None, rate=None), UNKNOWN, "the figures do not tell yet"),
    (series(40, lambda t: 200 * MiB, dirty=None), NOT_CONVERGING,  # no dirty-rate figure: the remaining bytes tell
     "the remaining 200.0 MiB has not gone below 200.0 MiB for 20s (KubeVirt aborts after progressTimeout "
     "without a new low)"),
])
def test_verdict(samples, state, reason):
    result = convergence.verdict(samples)
    assert (result.state, result.reason) == (state, reason)
    assert bool(result.advice) == (state == NOT_CONVERGING)


def test_advice_names_what_would_help():
    advice = convergence.verdict(series(40, lambda t: 500 * MiB, dirty=150 * MiB)).advice
    for setting in ("bandwidthPerMigration", "allowAutoConverge", "allowPostCopy", "MigrationPolicy"):
        assert setting in advice


def test_tracker_answers_only_when_the_verdict_changes():
    tracker = convergence.Tracker()
    said = []
    for t in range(0, 61, 5):
        dirty = 150 * MiB if t >= 30 else 0  # converges first, then the guest gets busy
        remaining = (1000 - t * 10 if t < 30 else 700) * MiB
        verdict = tracker.observe("vm1", float(t), {"remaining": remaining, "dirty_rate": dirty, "rate": 100 * MiB})
        if verdict:
            said.append((t, verdict.state))
    assert said == [(20, CONVERGING), (45, NOT_CONVERGING)]
    assert tracker.current("vm1") == NOT_CONVERGING


def test_reporter_says_it_once_as_a_json_event(monkeypatch):
    from kubectl_dlm import follow, progress

    clock = iter(float(t) for t in range(0, 1000, 5))
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    out = io.StringIO()
    reporter = progress.Reporter("json", out)
    run = type("Run", (), {"vm": "vm1"})()
    result = follow.Assessment(source_phase="Running", target_phase="Running")
    for _ in range(10):
        reporter.update(run, result, 10, {"remaining": 500 * MiB, "dirty_rate": 150 * MiB, "rate": 100 * MiB})
    events = [json.loads(line) for line in out.getvalue().splitlines() if '"convergence"' in line]
    assert [(e["vm"], e["verdict"]) for e in events] == [("vm1", NOT_CONVERGING)]
    assert "allowPostCopy" in events[0]["advice"] and "150.0 MiB/s" in events[0]["reason"]
