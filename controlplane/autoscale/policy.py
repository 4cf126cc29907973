"""The scaling decision: engine signals + the policy's own state -> desired replicas and why.

Pure: no clock, no I/O (the caller passes `now`), so every branch is a unit test.

1. What the load needs (`_wanted`), in replicas, from what the engines carry, not from
   request counts alone (one request can be 20 tokens or 128K). Which signals count is the
   group's role (`PolicyConfig.role`, roles.py): a colocated group scales on
   - ongoing requests (the larger of the engine's running + waiting and the routers'
     in-flight count) over `target_ongoing_requests` per replica;
   - overflow demand: ongoing per local replica = (local ongoing + the routers' in-flight
     to overflow endpoints, `Signals.overflow_inflight`) / local replicas, over the same
     target (reason `overflow_demand` when it asks more than the local count alone).
     Overflow holds each local replica at its saturation point and sends the rest to a
     hosted API, so the local count alone never shows the excess; counted, it grows the
     local replicas and overflow drains back. Pool externals share load by design: not
     counted (signals.py reads only role `overflow`);
   - KV-cache usage summed over replicas, over `target_kv_usage` per replica;
   - waiting requests per replica above `max_waiting`: one more replica;
   - the routers' recent TTFT p99 above the topology's `slo.ttft_p99`: one more replica
     (Ray Serve LLM's TTFTAutoscalingPolicy steps the same way);
   a PD prefill pool on its queue and TTFT, a decode pool on KV usage, running and ITL.
2. Hysteresis: a scale-down is wanted only when the load on fewer replicas stays below
   (1 - tolerance) of every target (and, colocated, no request waits, none is on an
   overflow endpoint, TTFT meets its SLO); `wanted` is then the fewest replicas that hold
   the load so; between the two thresholds the count holds.
3. Stabilisation: a direction must be wanted continuously for `upscale_delay_s` /
   `downscale_delay_s` before it acts; a change of mind restarts the window.
4. Cooldowns: no scale-up within `upscale_cooldown_s` of the last one; no scale-down within
   `downscale_cooldown_s` of any scaling.
5. Steps: up by at most `max_scale_up_rate` x current; down by one replica at a time (each
   leaving replica drains first). Bounds: [min, max] where max never exceeds what the
   cluster holds (the planner's `fits`; a multi-node replica counts as one unit).
6. Return to the minimum: once a scale-down has been wanted continuously for
   `scale_to_min_s` (`PolicyState.low_since`, kept across the one-replica steps of one low
   spell, ended by any tick that does not want down), the count goes to `wanted` at once,
   cooldowns aside: after a load ends the deployment is at the replicas the remaining load
   needs (the minimum when idle) within `scale_to_min_s` + one reading + the drain of the
   leaving replicas. The anti-flap guarantees stand: the spell must outlast
   `downscale_delay_s` (the deadline is never earlier) and `wanted` keeps the hysteresis
   margin, so the remaining replicas sit below (1 - tolerance) of every target.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from controlplane.autoscale.roles import role_policy

UP, DOWN, HOLD = "up", "down", "hold"


@dataclass(frozen=True, slots=True)
class ReplicaSignal:
    """What one serving replica reports (engine scrape + routers' in-flight count)."""

    endpoint_id: str
    running: int = 0
    waiting: int = 0
    kv_usage: float = 0.0  # 0..1
    inflight: int = 0

    @property
    def ongoing(self) -> int:
        return max(self.running + self.waiting, self.inflight)


@dataclass(frozen=True, slots=True)
class Signals:
    """One reading of the deployment: serving replicas and the routers' recent TTFT p99."""

    replicas: tuple[ReplicaSignal, ...] = ()
    ttft_p99_s: float | None = None  # None: no request finished its first token lately
    # Requests in flight through the routers to overflow endpoints (queued there
    # included): demand the local replicas would carry if they could.
    overflow_inflight: int = 0
    itl_p99_s: float | None = None  # None: no inter-token latency measured lately


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    """Settings of one deployment's policy (from the plan: `AutoscalingPlan` + SLO)."""

    min_replicas: int
    max_replicas: int
    target_ongoing_requests: float = 8.0
    target_kv_usage: float = 0.8
    max_waiting: int = 5
    ttft_slo_s: float = 2.0
    upscale_delay_s: float = 5.0
    downscale_delay_s: float = 180.0
    upscale_cooldown_s: float = 30.0
    downscale_cooldown_s: float = 300.0
    tolerance: float = 0.1
    max_scale_up_rate: float = 2.0
    scale_to_min_s: float = 300.0
    itl_slo_s: float = 0.05
    role: str = ""  # the group's PD pool (roles.py): "" colocated, prefill, decode

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PolicyConfig:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


@dataclass(frozen=True, slots=True)
class PolicyState:
    """What the policy remembers between ticks (JSON-able through `to_dict`)."""

    pending: str = HOLD  # direction wanted since `pending_since`
    pending_since: float = 0.0
    last_up: float = -math.inf
    last_down: float = -math.inf
    low_since: float | None = None  # a scale-down wanted without a break since then

    def to_dict(self) -> dict[str, Any]:
        return {
            "pending": self.pending,
            "pending_since": self.pending_since,
            "last_up": self.last_up if math.isfinite(self.last_up) else None,
            "last_down": self.last_down if math.isfinite(self.last_down) else None,
            "low_since": self.low_since,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> PolicyState:
        data = data or {}
        last_up, last_down = data.get("last_up"), data.get("last_down")
        low_since = data.get("low_since")  # absent in states saved before it existed
        return cls(
            pending=str(data.get("pending", HOLD)),
            pending_since=float(data.get("pending_since", 0.0)),
            last_up=-math.inf if last_up is None else float(last_up),
            last_down=-math.inf if last_down is None else float(last_down),
            low_since=None if low_since is None else float(low_since),
        )


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one tick. `desired` is what to run now; `wanted` what the load asks."""

    desired: int
    wanted: int
    direction: str  # up | down | hold: what `desired` does to `current`
    reason: str  # the signal behind `wanted`, or why a wanted change waits
    state: PolicyState

    @property
    def acted(self) -> bool:
        return self.direction != HOLD


def _wanted(signals: Signals, current: int, config: PolicyConfig) -> tuple[int, str]:
    """Replicas the load asks for and the signal that asks most (before bounds): more
    than `current` when a signal of the role asks so, else the fewest replicas the load
    fits on inside the hysteresis band (`low_load`), else `current`."""
    role = role_policy(config.role)
    asks = role.asks(signals, current, config)
    wanted, reason = max(asks, key=lambda ask: ask[0])  # first of equal asks wins
    if wanted > current:
        return wanted, reason
    for keep in range(1, current):
        if role.fits(signals, keep, config):
            return keep, "low_load"
    return current, "steady"


def _bounded(current: int, config: PolicyConfig) -> Decision | None:
    """Outside [min, max] (bounds changed, replicas lost): move there at once."""
    if current < config.min_replicas:
        return Decision(config.min_replicas, config.min_replicas, UP, "below_min", PolicyState())
    if current > config.max_replicas:
        return Decision(config.max_replicas, config.max_replicas, DOWN, "above_max", PolicyState())
    return None


def decide(
    signals: Signals | None,
    current: int,
    state: PolicyState,
    config: PolicyConfig,
    now: float,
) -> Decision:
    """One tick of the policy. `current` is the replica count last asked for; `signals`
    None means no fresh reading (the policy then holds, as Ray Serve LLM's does)."""
    bounded = _bounded(current, config)
    if bounded is not None:
        stamp = "last_up" if bounded.direction == UP else "last_down"
        calm = replace(state, pending=HOLD, low_since=None, **{stamp: now})
        return replace(bounded, state=calm)
    if signals is None or not signals.replicas:
        calm = replace(state, pending=HOLD, low_since=None)  # no data is no low spell
        return Decision(current, current, HOLD, "no_signal", calm)
    wanted, reason = _wanted(signals, current, config)
    wanted = min(max(wanted, config.min_replicas), config.max_replicas)
    direction = UP if wanted > current else DOWN if wanted < current else HOLD
    if direction == HOLD:
        why = {"steady": "steady", "low_load": "at_min"}.get(reason, "at_max")
        calm = replace(state, pending=HOLD, low_since=None)
        return Decision(current, wanted, HOLD, why, calm)
    if state.pending != direction:
        state = replace(state, pending=direction, pending_since=now)
    if direction == UP:
        state = replace(state, low_since=None)
    elif state.low_since is None:
        state = replace(state, low_since=now)
    return _act(direction, wanted, reason, current, state, config, now)


def scale_to_min_deadline(state: PolicyState, config: PolicyConfig) -> float | None:
    """When the current low spell goes straight to `wanted` (never before the downscale
    window ends); None outside a low spell (pure)."""
    if state.low_since is None:
        return None
    return state.low_since + max(config.scale_to_min_s, config.downscale_delay_s)


def _act(
    direction: str,
    wanted: int,
    reason: str,
    current: int,
    state: PolicyState,
    config: PolicyConfig,
    now: float,
) -> Decision:
    """Apply the stabilisation window, the cooldowns and the step limits (and, down, the
    scale-to-min deadline, which overrides the cooldowns and the one-replica step)."""
    waited = now - state.pending_since
    if direction == UP:
        if waited < config.upscale_delay_s:
            return Decision(current, wanted, HOLD, f"stabilising:{reason}", state)
        if now - state.last_up < config.upscale_cooldown_s:
            return Decision(current, wanted, HOLD, f"cooldown:{reason}", state)
        step = max(current + 1, math.ceil(current * config.max_scale_up_rate))
        desired = min(wanted, step)
        return Decision(desired, wanted, UP, reason, replace(state, pending=HOLD, last_up=now))
    deadline = scale_to_min_deadline(state, config)
    if deadline is not None and now >= deadline:
        done = replace(state, pending=HOLD, last_down=now)
        return Decision(wanted, wanted, DOWN, "scale_to_min", done)
    if waited < config.downscale_delay_s:
        return Decision(current, wanted, HOLD, f"stabilising:{reason}", state)
    if now - max(state.last_up, state.last_down) < config.downscale_cooldown_s:
        return Decision(current, wanted, HOLD, f"cooldown:{reason}", state)
    return Decision(current - 1, wanted, DOWN, reason, replace(state, pending=HOLD, last_down=now))
