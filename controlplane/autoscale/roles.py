"""Which signals a group's policy scales on, chosen by the group's role (pure).

A colocated group (`EngineGroupPlan.pd` empty) serves whole requests; a PD deployment runs
a prefill pool and a decode pool, and each pool's own policy reads only its own replicas
(signals.py filters endpoints by `EndpointInfo.pd`). The role decides what "full" means:

- colocated: ongoing requests, KV usage, overflow demand, waiting requests, TTFT (policy.py);
- prefill: work queued for prefill (running + waiting per replica over
  `target_ongoing_requests`, waiting over `max_waiting`) and TTFT over its SLO. Not KV
  usage: a prefill replica holds KV only until the transfer ends, so it measures transfer
  speed, not demand (NVIDIA Dynamo's planner likewise sizes prefill from TTFT and decode
  from ITL: shared/reference/operations-anchors.md, A);
- decode: KV usage (decode holds every sequence's cache to its last token), running
  sequences over `target_ongoing_requests`, and ITL over its SLO.

Each role is a `RolePolicy` of two pure functions registered by name in `ROLES`: `asks`
(replicas the load asks for, with the signal asking) and `fits` (the hysteresis test: does
the load fit on `keep` replicas below (1 - tolerance) of every target). No engine kind is
consulted: the signals are engine-neutral (router/engine_metrics.py maps each engine's).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # policy.py imports this module; the types are only annotations here
    from controlplane.autoscale.policy import PolicyConfig, Signals

COLOCATED, PREFILL, DECODE = "", "prefill", "decode"

Ask = tuple[int, str]  # (replicas wanted, the signal asking)


@dataclass(frozen=True, slots=True)
class RolePolicy:
    """The signals one role scales on (both functions pure)."""

    asks: Callable[[Signals, int, PolicyConfig], list[Ask]]
    fits: Callable[[Signals, int, PolicyConfig], bool]


def _ttft_over(signals: Signals, config: PolicyConfig, margin: float = 1.0) -> bool:
    return signals.ttft_p99_s is not None and signals.ttft_p99_s > config.ttft_slo_s * margin


def _itl_over(signals: Signals, config: PolicyConfig, margin: float = 1.0) -> bool:
    return signals.itl_p99_s is not None and signals.itl_p99_s > config.itl_slo_s * margin


def _colocated_asks(signals: Signals, current: int, config: PolicyConfig) -> list[Ask]:
    replicas = signals.replicas
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
    if waiting / max(len(replicas), 1) > config.max_waiting:
        asks.append((current + 1, "waiting_requests"))
    if _ttft_over(signals, config):
        asks.append((current + 1, "ttft_slo"))
    return asks


def _colocated_fits(signals: Signals, keep: int, config: PolicyConfig) -> bool:
    margin = 1.0 - config.tolerance
    replicas = signals.replicas
    ongoing = (sum(r.ongoing for r in replicas) + signals.overflow_inflight) / keep
    kv = sum(r.kv_usage for r in replicas) / keep
    return (
        ongoing <= config.target_ongoing_requests * margin
        and kv <= config.target_kv_usage * margin
        and all(r.waiting == 0 for r in replicas)
        and signals.overflow_inflight == 0  # overflow in use: local replicas are saturated
        and not _ttft_over(signals, config, margin)
    )


def _prefill_asks(signals: Signals, current: int, config: PolicyConfig) -> list[Ask]:
    replicas = signals.replicas
    queued = sum(r.ongoing for r in replicas)
    waiting = sum(r.waiting for r in replicas)
    asks = [(math.ceil(queued / config.target_ongoing_requests), "prefill_queue")]
    if waiting / max(len(replicas), 1) > config.max_waiting:
        asks.append((current + 1, "prefill_waiting"))
    if _ttft_over(signals, config):
        asks.append((current + 1, "ttft_slo"))
    return asks


def _prefill_fits(signals: Signals, keep: int, config: PolicyConfig) -> bool:
    margin = 1.0 - config.tolerance
    queued = sum(r.ongoing for r in signals.replicas) / keep
    return (
        queued <= config.target_ongoing_requests * margin
        and all(r.waiting == 0 for r in signals.replicas)
        and not _ttft_over(signals, config, margin)
    )


def _decode_asks(signals: Signals, current: int, config: PolicyConfig) -> list[Ask]:
    replicas = signals.replicas
    running = sum(r.running for r in replicas)
    kv = sum(r.kv_usage for r in replicas)
    asks = [
        (math.ceil(kv / config.target_kv_usage), "kv_usage"),
        (math.ceil(running / config.target_ongoing_requests), "running_requests"),
    ]
    if _itl_over(signals, config):
        asks.append((current + 1, "itl_slo"))
    return asks


def _decode_fits(signals: Signals, keep: int, config: PolicyConfig) -> bool:
    margin = 1.0 - config.tolerance
    replicas = signals.replicas
    return (
        sum(r.kv_usage for r in replicas) / keep <= config.target_kv_usage * margin
        and sum(r.running for r in replicas) / keep <= config.target_ongoing_requests * margin
        and not _itl_over(signals, config, margin)
    )


ROLES: dict[str, RolePolicy] = {
    COLOCATED: RolePolicy(_colocated_asks, _colocated_fits),
    PREFILL: RolePolicy(_prefill_asks, _prefill_fits),
    DECODE: RolePolicy(_decode_asks, _decode_fits),
}


def role_policy(role: str) -> RolePolicy:
    """The registered policy of `role`; a ValueError names the known roles otherwise."""
    try:
        return ROLES[role]
    except KeyError:
        known = ", ".join(repr(name) for name in ROLES)
        raise ValueError(f"no autoscaling policy for role {role!r}; known: {known}") from None
