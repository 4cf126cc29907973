"""How a replica leaves without failing requests, and how often a failing one comes back.

Leaving (scale-down, replacement, update, delete), in this order:
1. never empty: wait up to PEER_WAIT_S until another replica of the same model serves
   (healthy, not draining), so the routers always have somewhere to send new requests;
2. mark it draining in Redis (`ns:draining`): every router drops it from rotation at its
   next state refresh (0.1 s), at once, and routes new requests and retries elsewhere;
3. wait until no router has a request in flight to it and the engine runs none, up to the
   drain timeout (the plan's `graceful_shutdown_s`, derived from the topology);
4. the caller deregisters it and stops the engine.
In a PD deployment each pool drains on its own terms (pd_drain.py): the peer of step 1 is
a replica of the same pool, and step 3 also waits until the engine holds no request in
KV transfer: a prefill replica keeps serving bootstrap and transfer until its in-flight
rooms are done, a decode replica until the KV it receives has landed and decoded.
A replica that failed (engine exited, worker actor or node lost) skips 1 and 3: it is
marked draining the moment the failure is seen, so no router sends it anything more.

Restarts: each failure is recorded with its time; a new replica waits `restart_delay`
(exponential backoff) before starting, and after MAX_RESTARTS failures within
RESTART_WINDOW_S the deployment is reported failed instead of restarted forever.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from controlplane.router.scripts import DRAINING

PEER_WAIT_S = 30.0
ROUTER_NOTICE_S = 0.5  # > the routers' refresh interval (0.1 s) + one in-flight publish
STOP_S = 10.0  # SIGTERM to SIGKILL of the engine after the drain
POLL_S = 0.2
RESTART_WINDOW_S = 600.0
MAX_RESTARTS = 5
BACKOFF_BASE_S = 1.0
BACKOFF_CAP_S = 60.0


def shutdown_budget_s(drain_s: float) -> float:
    """Serve's graceful_shutdown_timeout_s for a drain timeout: peer wait + drain + stop."""
    return PEER_WAIT_S + drain_s + STOP_S


def has_peer(
    endpoints: dict[str, str], health: dict[str, str], draining: set[str], endpoint_id: str
) -> bool:
    """Another endpoint serves the same model in the same PD pool (`pd`, "" colocated),
    healthy and not draining (pure)."""
    mine = endpoints.get(endpoint_id)
    if mine is None:
        return False
    info = json.loads(mine)
    pool = (info["model"], info.get("pd", ""))
    for other, raw in endpoints.items():
        theirs = json.loads(raw)
        if (
            other == endpoint_id
            or other in draining
            or (theirs["model"], theirs.get("pd", "")) != pool
        ):
            continue
        if json.loads(health.get(other, "{}")).get("ok", True):
            return True
    return False


def restart_delay(failures: list[float], now: float) -> float | None:
    """Seconds a new replica waits before starting, after the recent `failures` (times);
    None: too many failures in the window, report instead of restarting (pure)."""
    recent = [t for t in failures if now - t <= RESTART_WINDOW_S]
    if len(recent) >= MAX_RESTARTS:
        return None
    if not recent:
        return 0.0
    return min(BACKOFF_BASE_S * 2 ** (len(recent) - 1), BACKOFF_CAP_S)


@dataclass(frozen=True, slots=True)
class DrainReport:
    peer_wait_s: float
    drain_s: float
    left_in_flight: int  # requests still in flight when the drain timeout ended it


class Drainer:
    """Takes one endpoint out of rotation and waits for it to empty (sync Redis)."""

    def __init__(self, client: Any, namespace: str, endpoint_id: str) -> None:
        self.client = client
        self.ns = namespace
        self.endpoint_id = endpoint_id

    def mark(self) -> None:
        """Out of every router's rotation at their next refresh (idempotent)."""
        self.client.hset(DRAINING.format(ns=self.ns), self.endpoint_id, str(time.time()))

    def in_flight(self) -> int:
        """Requests the live routers have in flight to this endpoint."""
        now_ms = int(time.time() * 1000)
        routers = self.client.zrangebyscore(f"{self.ns}:routers", now_ms, "+inf")
        pipe = self.client.pipeline(transaction=False)
        for router in routers:
            name = router.decode() if isinstance(router, bytes) else router
            pipe.hget(f"{self.ns}:inflight:{name}", self.endpoint_id)
        return sum(int(count) for count in pipe.execute() if count)

    def _registry(self) -> tuple[dict[str, str], dict[str, str], set[str]]:
        pipe = self.client.pipeline(transaction=False)
        pipe.hgetall(f"{self.ns}:endpoints")
        pipe.hgetall(f"{self.ns}:health")
        pipe.hkeys(DRAINING.format(ns=self.ns))
        endpoints, health, draining = (_decoded(v) for v in pipe.execute())
        return endpoints, health, set(draining)

    def wait_for_peer(self, timeout: float) -> float:
        began = time.monotonic()
        while time.monotonic() - began < timeout:
            if has_peer(*self._registry(), self.endpoint_id):
                break
            time.sleep(POLL_S)
        return time.monotonic() - began

    def drain(
        self, timeout: float, engine_idle: Callable[[], bool], peer_wait_s: float = PEER_WAIT_S
    ) -> DrainReport:
        """Steps 1-3 of the module docstring; returns how long each took. An endpoint that
        never registered has nothing to drain; one already marked draining (`glmctl delete`
        marks the whole deployment first) does not wait for a peer."""
        endpoints, _, draining = self._registry()
        if self.endpoint_id not in endpoints:
            return DrainReport(0.0, 0.0, 0)
        waited = 0.0 if self.endpoint_id in draining else self.wait_for_peer(peer_wait_s)
        self.mark()
        began = time.monotonic()
        time.sleep(ROUTER_NOTICE_S)
        left = self.in_flight()
        while time.monotonic() - began < timeout:
            left = self.in_flight()
            if left == 0 and engine_idle():
                break
            time.sleep(POLL_S)
        return DrainReport(waited, time.monotonic() - began, left)


def mark_all_draining(client: Any, namespace: str) -> int:
    """Take every endpoint of a namespace (one deployment) out of rotation: a delete.
    Returns how many were marked."""
    endpoints = [_text(e) for e in client.hkeys(f"{namespace}:endpoints")]
    if endpoints:
        now = str(time.time())
        client.hset(DRAINING.format(ns=namespace), mapping=dict.fromkeys(endpoints, now))
    return len(endpoints)


def _decoded(value: Any) -> Any:
    if isinstance(value, dict):
        return {_text(k): _text(v) for k, v in value.items()}
    return [_text(v) for v in value]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
