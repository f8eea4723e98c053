"""How a migration in progress is shown: live lines on a terminal, timestamped lines in a log,
one JSON event per line for automation."""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime, timezone
from typing import IO, Any, Dict, List, Optional

from kubectl_dlm import convergence, follow, tuning


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def describe(result: follow.Assessment, elapsed: float, progress: Optional[Dict[str, float]]) -> str:
    line = f"source {result.source_phase}, target {result.target_phase} ({int(elapsed)}s)"
    if progress:
        parts = []
        if "processed" in progress:
            parts.append(f"{human_bytes(progress['processed'])} sent")
        if "remaining" in progress:
            parts.append(f"{human_bytes(progress['remaining'])} left")
        if progress.get("rate"):
            parts.append(f"{human_bytes(progress['rate'])}/s")
        eta = follow.eta_seconds(progress.get("remaining"), progress.get("rate"))
        if eta is not None:
            parts.append(f"ETA {int(eta)}s")
        line += " - " + ", ".join(parts)
    for side, message in result.blocked:
        cause, _ = follow.explain(message)
        line += f" - {side} blocked: {message}" + (f" ({cause})" if cause else "")
    return line


# Outcomes that are errors: said on stderr as `error: ...` (the README's promise), whatever -o is.
ERROR_OUTCOMES = (follow.FAILED, follow.TIMED_OUT, follow.CANCELLED, "refused")


class Reporter:
    def __init__(self, mode: str = "auto", out: Optional[IO[str]] = None, err: Optional[IO[str]] = None):
        out = out or sys.stdout  # looked up now: tests and callers may have replaced it
        if mode == "auto":
            mode = "tty" if out.isatty() else "plain"
        self.mode, self.out, self.err = mode, out, err or sys.stderr
        self.lines: Dict[str, str] = {}
        self.drawn = 0
        self.said: set = set()
        self.convergence = convergence.Tracker()

    def _emit(self, payload: Dict[str, Any]) -> None:
        payload = {"time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), **payload}
        self.out.write(json.dumps(payload, sort_keys=True) + "\n")
        self.out.flush()

    def _print(self, text: str) -> None:
        if self.mode == "tty":
            self._clear()
            self.out.write(text + "\n")
            self._draw()
        else:
            self.out.write(f"{time.strftime('%H:%M:%S')} {text}\n")
        self.out.flush()

    def _clear(self) -> None:
        if self.drawn:
            self.out.write(f"\x1b[{self.drawn}F\x1b[J")
            self.drawn = 0

    def _draw(self) -> None:
        for vm, line in self.lines.items():
            self.out.write(f"{vm}: {line}\n")
        self.drawn = len(self.lines)

    def event(self, vm: str, message: str) -> None:
        if self.mode == "json":
            self._emit({"vm": vm, "event": "step", "message": message})
        else:
            self._print(f"{vm}: {message}")

    def aftercare(self, vm: str, message: str) -> None:
        """What follows a VM's `finished` event: verify rows, retirement, warnings about the old copy."""
        if self.mode == "json":
            self._emit({"vm": vm, "event": "aftercare", "message": message})
        else:
            self._print(f"{vm}: {message}")

    def notice(self, message: str) -> None:
        if message in self.said:
            return
        self.said.add(message)
        if self.mode == "json":
            self._emit({"event": "notice", "message": message})
        else:
            self._print(message)

    def update(self, run, result: follow.Assessment, elapsed: float, progress: Optional[Dict[str, float]]) -> None:
        if progress:
            self._judge(run.vm, progress)
        line = describe(result, elapsed, progress)
        if progress and self.convergence.current(run.vm) == convergence.NOT_CONVERGING:
            line += " - not converging"
        key = describe(result, 0, None)  # what changed, ignoring the clock
        if self.mode == "tty":
            self.lines[run.vm] = line
            self._clear()
            self._draw()
            self.out.flush()
            return
        if self.lines.get(run.vm) == key and not progress:
            return
        self.lines[run.vm] = key
        if self.mode == "json":
            self._emit({"vm": run.vm, "event": "status", "source": result.source_phase, "target": result.target_phase,
                        "blocked": [{"side": s, "message": m} for s, m in result.blocked], "progress": progress or {}})
        else:
            self._print(f"{run.vm}: {line}")

    def configuration(self, vm: str, policy: Optional[str], config: Dict[str, Any]) -> None:
        """Once per migration: what KubeVirt resolved for it (the cluster's settings and the policy's)."""
        if self.mode == "json":
            self._emit({"vm": vm, "event": "configuration", "migrationPolicy": policy, "migrationConfiguration": config})
        else:
            self._print(f"{vm}: KubeVirt applies {tuning.describe(policy, config)}")

    def _judge(self, vm: str, progress: Dict[str, float]) -> None:
        """Say once, when it changes, whether the migration converges (convergence.py)."""
        verdict = self.convergence.observe(vm, time.monotonic(), progress)
        if verdict is None:
            return
        if self.mode == "json":
            self._emit({"vm": vm, "event": "convergence", **verdict.to_dict()})
            return
        text = f"{vm}: {verdict.state.replace('-', ' ')}: {verdict.reason}"
        self._print(text + (f"\n  would help: {verdict.advice}" if verdict.advice else ""))

    def finished(self, run) -> None:
        """The result on stdout (an event with -o json); an error or refusal also on stderr, with its hint."""
        self.lines.pop(run.vm, None)
        failed = run.outcome in ERROR_OUTCOMES
        if self.mode == "json":
            self._emit({"vm": run.vm, "event": "finished", "outcome": run.outcome, "migrationID": run.migration_id,
                        "message": run.message, "hint": run.hint})
        elif failed:
            self._print(f"{run.vm}: {run.outcome}")
        else:
            text = f"{run.vm}: {run.outcome}" + (f": {run.message}" if run.message else "")
            self._print(text + (f"\n  hint: {run.hint}" if run.hint else ""))
        if failed:
            self._error(f"{run.vm}: {run.outcome}" + (f": {run.message}" if run.message else ""), run.hint)

    def _error(self, message: str, hint: str = "") -> None:
        if self.mode == "tty":
            self._clear()
        self.out.flush()
        self.err.write(f"error: {message}\n" + (f"  hint: {hint}\n" if hint else ""))
        self.err.flush()
        if self.mode == "tty":
            self._draw()
            self.out.flush()

    def summary(self, runs: List[Any]) -> None:
        if self.mode == "json" or len(runs) < 2:
            return
        self._clear()
        width = max(len(r.vm) for r in runs)
        self.out.write(f"\n{'VM'.ljust(width)}  {'OUTCOME':10}  MIGRATION ID\n")
        for r in runs:
            self.out.write(f"{r.vm.ljust(width)}  {str(r.outcome):10}  {r.migration_id}\n")
        self.out.flush()
