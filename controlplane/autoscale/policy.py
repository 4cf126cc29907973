"""The scaling decision: engine signals + the policy's own state -> desired replicas and why.

Pure: no clock, no I/O (the caller passes `now`), so every branch is a unit test.

1. What the load needs (`_wanted`), in replicas, from what the engines carry, not from
   request counts alone (one request can be 20 tokens or 128K):
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
     (Ray Serve LLM's TTFTAutoscalingPolicy steps the same way).
2. Hysteresis: a scale-down is wanted only when the load on one replica fewer stays below
   (1 - tolerance) of every target, no request waits, none is on an overflow endpoint,
   and TTFT meets its SLO; between the two thresholds the count holds.
3. Stabilisation: a direction must be wanted continuously for `upscale_delay_s` /
   `downscale_delay_s` before it acts; a change of mind restarts the window.
4. Cooldowns: no scale-up within `upscale_cooldown_s` of the last one; no scale-down within
   `downscale_cooldown_s` of any scaling.
5. Steps: up by at most `max_scale_up_rate` x current; down by one replica at a time (each
   leaving replica drains first). Bounds: [min, max] where max never exceeds what the
   cluster holds (the planner's `fits`; a multi-node replica counts as one unit).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

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

    def to_dict(self) -> dict[str, Any]:
        return {
            "pending": self.pending,
            "pending_since": self.pending_since,
            "last_up": self.last_up if math.isfinite(self.last_up) else None,
            "last_down": self.last_down if math.isfinite(self.last_down) else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> PolicyState:
        data = data or {}
        last_up, last_down = data.get("last_up"), data.get("last_down")
        return cls(
            pending=str(data.get("pending", HOLD)),
            pending_since=float(data.get("pending_since", 0.0)),
            last_up=-math.inf if last_up is None else float(last_up),
            last_down=-math.inf if last_down is None else float(last_down),
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
    """Replicas the load asks for and the signal that asks most (before bounds)."""
    replicas = signals.replicas
    count = max(len(replicas), 1)
    local = sum(r.ongoing for r in replicas)
    kv = sum(r.kv_usage for r in replicas)
    waiting = sum(r.waiting for r in replicas)
    asks = [
        (math.ceil(local / config.target_ongoing_requests), "ongoing_requests"),
        (math.ceil(kv / config.target_kv_usage), "kv_usage"),
    ]
    if signals.overflow_inflight > 0:
        ongoing = local + signals.overflow_inflight
        asks.append((math.ceil(ongoing / config.target_ongoing_requests), "overflow_demand"))
    if waiting / count > config.max_waiting:
        asks.append((current + 1, "waiting_requests"))
    if signals.ttft_p99_s is not None and signals.ttft_p99_s > config.ttft_slo_s:
        asks.append((current + 1, "ttft_slo"))
    wanted, reason = max(asks, key=lambda ask: ask[0])  # first of equal asks wins
    if wanted > current:
        return wanted, reason
    if current > 1 and _fits_one_fewer(signals, current, config):
        return current - 1, "low_load"
    return current, "steady"


def _fits_one_fewer(signals: Signals, current: int, config: PolicyConfig) -> bool:
    """Hysteresis: one replica fewer still leaves every signal below (1 - tolerance)."""
    keep = current - 1
    margin = 1.0 - config.tolerance
    replicas = signals.replicas
    ongoing = (sum(r.ongoing for r in replicas) + signals.overflow_inflight) / keep
    kv = sum(r.kv_usage for r in replicas) / keep
    ttft_ok = signals.ttft_p99_s is None or signals.ttft_p99_s <= config.ttft_slo_s * margin
    return (
        ongoing <= config.target_ongoing_requests * margin
        and kv <= config.target_kv_usage * margin
        and all(r.waiting == 0 for r in replicas)
        and signals.overflow_inflight == 0  # overflow in use: local replicas are saturated
        and ttft_ok
    )


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
        return replace(bounded, state=replace(state, pending=HOLD, **{stamp: now}))
    if signals is None or not signals.replicas:
        return Decision(current, current, HOLD, "no_signal", replace(state, pending=HOLD))
    wanted, reason = _wanted(signals, current, config)
    wanted = min(max(wanted, config.min_replicas), config.max_replicas)
    direction = UP if wanted > current else DOWN if wanted < current else HOLD
    if direction == HOLD:
        why = {"steady": "steady", "low_load": "at_min"}.get(reason, "at_max")
        return Decision(current, wanted, HOLD, why, replace(state, pending=HOLD))
    if state.pending != direction:
        state = replace(state, pending=direction, pending_since=now)
    return _act(direction, wanted, reason, current, state, config, now)


def _act(
    direction: str,
    wanted: int,
    reason: str,
    current: int,
    state: PolicyState,
    config: PolicyConfig,
    now: float,
) -> Decision:
    """Apply the stabilisation window, the cooldowns and the step limits."""
    waited = now - state.pending_since
    if direction == UP:
        if waited < config.upscale_delay_s:
            return Decision(current, wanted, HOLD, f"stabilising:{reason}", state)
        if now - state.last_up < config.upscale_cooldown_s:
            return Decision(current, wanted, HOLD, f"cooldown:{reason}", state)
        step = max(current + 1, math.ceil(current * config.max_scale_up_rate))
        desired = min(wanted, step)
        return Decision(desired, wanted, UP, reason, replace(state, pending=HOLD, last_up=now))
    if waited < config.downscale_delay_s:
        return Decision(current, wanted, HOLD, f"stabilising:{reason}", state)
    if now - max(state.last_up, state.last_down) < config.downscale_cooldown_s:
        return Decision(current, wanted, HOLD, f"cooldown:{reason}", state)
    return Decision(current - 1, wanted, DOWN, reason, replace(state, pending=HOLD, last_down=now))
