"""Bounded restarts of a failing deployment, and the report that replaces them (pure).

Every replica failure (engine exited, worker actor or node lost, engine never healthy) is
recorded as one entry `{"t": time, "cause": one line}` (older entries are bare times). A
new replica waits `restart_delay` (drain.py) after recent failures. At MAX_RESTARTS
failures within RESTART_WINDOW_S the deployment is *stopped*: a `StoppedRestarts` report
is latched in Redis with the first failure's cause, and from then on no replica starts an
engine (each refuses at once, even after the window has passed), the replicas still
running keep serving, and `glmctl status` shows the report. Only `glmctl apply` clears it
(the operator read the cause and changed something, or wants another try).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from controlplane.autoscale.drain import MAX_RESTARTS, RESTART_WINDOW_S, restart_delay


@dataclass(frozen=True, slots=True)
class Failure:
    at: float
    cause: str = ""


@dataclass(frozen=True, slots=True)
class StoppedRestarts:
    """Why a deployment gets no more replicas: what `glmctl status` reports."""

    since: float  # when the limit was reached
    failures: int  # failures within the window
    window_s: float
    first_cause: str  # the first of those failures

    def message(self, name: str) -> str:
        return (
            f"{name}: replicas failed {self.failures} times in {self.window_s / 60:.0f} min;"
            f" restarts stopped. First cause: {self.first_cause or 'not recorded'}."
            " To fix: read the engine logs, then `glmctl apply` again (it clears this)."
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: str | bytes) -> StoppedRestarts:
        return cls(**json.loads(raw))


def failure_entry(at: float, cause: str) -> str:
    """One failure as stored in the deployment's failure list."""
    return json.dumps({"t": at, "cause": cause[:300]})


def parse_failure(raw: str | bytes) -> Failure:
    """An entry of the failure list; a bare number (older glmctl) is a time, no cause."""
    text = raw.decode() if isinstance(raw, bytes) else raw
    try:
        value = json.loads(text)
    except ValueError:
        return Failure(0.0)
    if isinstance(value, int | float):
        return Failure(float(value))
    return Failure(float(value.get("t", 0.0)), str(value.get("cause", "")))


def restart_verdict(failures: list[Failure], now: float) -> float | StoppedRestarts:
    """Seconds a new replica waits before it starts, or the report when restarts stop."""
    delay = restart_delay([f.at for f in failures], now)
    if delay is not None:
        return delay
    recent = sorted((f for f in failures if now - f.at <= RESTART_WINDOW_S), key=lambda f: f.at)
    return StoppedRestarts(
        since=now,
        failures=len(recent),
        window_s=RESTART_WINDOW_S,
        first_cause=recent[0].cause if recent else "",
    )


__all__ = [
    "MAX_RESTARTS",
    "Failure",
    "StoppedRestarts",
    "failure_entry",
    "parse_failure",
    "restart_verdict",
]
