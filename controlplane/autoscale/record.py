"""Where scaling decisions go: the deployment's router namespace in Redis.

`ns:autoscale` holds the last reading per deployment (desired / running / max / reason,
and `overflow_inflight`: requests on overflow endpoints counted as local demand), read by
`glmctl status` and rendered by the router's /metrics as glmctl_autoscale_*;
`ns:autoscale:count` counts the actions taken by direction and reason
(glmctl_autoscale_decisions_total).
"""

from __future__ import annotations

import json
import time
from typing import Any

from controlplane.autoscale.policy import Decision
from controlplane.router.scripts import AUTOSCALE, AUTOSCALE_COUNT


def record_key(deployment: str, role: str = "") -> str:
    """Where one group's readings go: the deployment's name, `<name>/<pool>` for a PD pool
    (each pool's policy records its own, so `glmctl status` shows both)."""
    return f"{deployment}/{role}" if role else deployment


def decision_record(
    decision: Decision, running: int, max_replicas: int, now: float, overflow: int = 0
) -> str:
    """JSON of one reading (pure); `overflow` the reading's overflow in-flight count."""
    return json.dumps(
        {
            "desired": decision.desired,
            "wanted": decision.wanted,
            "running": running,
            "max": max_replicas,
            "direction": decision.direction,
            "reason": decision.reason,
            "overflow_inflight": overflow,
            "ts": now,
        }
    )


def write_decision(
    client: Any,
    namespace: str,
    deployment: str,
    decision: Decision,
    running: int,
    max_: int,
    overflow: int = 0,
) -> None:
    """Record the reading, and count it when it changed the replica count (one round trip)."""
    pipe = client.pipeline(transaction=False)
    record = decision_record(decision, running, max_, time.time(), overflow)
    pipe.hset(AUTOSCALE.format(ns=namespace), deployment, record)
    if decision.acted:
        field = f"{deployment}|{decision.direction}|{decision.reason}"
        pipe.hincrby(AUTOSCALE_COUNT.format(ns=namespace), field, 1)
    pipe.execute()


def read_decisions(client: Any, namespace: str) -> dict[str, dict[str, Any]]:
    """Last reading per deployment in `namespace` (empty when none was recorded)."""
    raw = client.hgetall(AUTOSCALE.format(ns=namespace))
    return {(k.decode() if isinstance(k, bytes) else k): json.loads(v) for k, v in raw.items()}
