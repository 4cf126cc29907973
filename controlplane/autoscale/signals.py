"""Signals for the policy, read from what the routers already keep in Redis.

Per serving replica (registered under the deployment's app, healthy, not draining): the
engine's running / waiting requests and KV usage from the routers' load snapshots
(`ns:load`, scraped every second), and the requests the routers have in flight to it
(`ns:inflight:<router>`). For the whole deployment: TTFT p99 over the last reading
interval, from the routers' merged `glmctl_router_ttft_seconds` histograms
(`ns:rmetrics:<router>`), and the requests the routers have in flight to overflow
endpoints (registered with kind `external`, role `overflow`; same `ns:inflight:<router>`
hashes, which count every endpoint a request went to). The namespace is the
deployment's own, so its overflow endpoints serve only this deployment. Pool externals
are left out: they share load by design. Two Redis round trips per reading; nothing on
the request path.

A PD pool's policy reads only its own pool: endpoints whose `EndpointInfo.pd` is the
policy's role (`PolicyConfig.role`; "" the colocated replicas). ITL p99 comes the same
way as TTFT from the routers' `glmctl_router_itl_seconds` histogram where the routers
export one (None otherwise: the decode role then scales on KV usage and running only).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from controlplane.autoscale.policy import ReplicaSignal, Signals
from controlplane.router.external import EXTERNAL, OVERFLOW
from controlplane.router.metrics import LATENCY_BUCKETS
from controlplane.router.scripts import DRAINING

TTFT_HISTOGRAM = "glmctl_router_ttft_seconds"
ITL_HISTOGRAM = "glmctl_router_itl_seconds"
LOAD_STALE_S = 10.0  # a load snapshot older than this is no signal (its prober is gone)
TTFT_MIN_SAMPLES = 5  # fewer first tokens in an interval: no TTFT signal


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def quantile_from_buckets(counts: list[float], quantile: float) -> float | None:
    """Upper bound of the bucket holding `quantile` of the observations (counts per bucket
    in LATENCY_BUCKETS order, then the +Inf bucket); None when there are too few."""
    total = sum(counts[: len(LATENCY_BUCKETS) + 1])
    if total < TTFT_MIN_SAMPLES:
        return None
    rank, seen = quantile * total, 0.0
    for bound, count in zip((*LATENCY_BUCKETS, float("inf")), counts, strict=False):
        seen += count
        if seen >= rank:
            return float(bound)
    return float("inf")


@dataclass
class TtftWindow:
    """p99 of a routers' latency histogram (TTFT by default) since the previous reading
    (histogram deltas)."""

    previous: list[float] = field(default_factory=list)
    histogram: str = TTFT_HISTOGRAM

    def update(self, exports: list[dict[str, Any]]) -> float | None:
        current: list[float] = []
        for export in exports:
            data = export.get("histograms", {}).get(self.histogram, [])
            if len(current) < len(data):
                current += [0.0] * (len(data) - len(current))
            for index, value in enumerate(data):
                current[index] += float(value)
        delta = [c - p for c, p in zip(current, self.previous, strict=False)]
        if len(delta) != len(current) or any(d < 0 for d in delta):
            delta = current  # first reading, or a router restarted: its counters began again
        first = not self.previous
        self.previous = current
        return None if first else quantile_from_buckets(delta, 0.99)


def replica_signals(
    endpoints: dict[str, Any],
    health: dict[str, Any],
    load: dict[str, Any],
    draining: set[str],
    inflight: dict[str, int],
    app: str,
    now: float,
    pd: str = "",
) -> tuple[ReplicaSignal, ...]:
    """Serving replicas of `app` in pool `pd` ("" colocated) from raw Redis hashes (pure)."""
    out = []
    for endpoint_id, raw in sorted(endpoints.items()):
        info = json.loads(raw)
        if info.get("group") != app or info.get("pd", "") != pd or endpoint_id in draining:
            continue
        if not json.loads(health.get(endpoint_id, "{}")).get("ok", True):
            continue
        snapshot = json.loads(load.get(endpoint_id, "{}"))
        fresh = now - float(snapshot.get("ts", 0.0)) <= LOAD_STALE_S
        out.append(
            ReplicaSignal(
                endpoint_id,
                running=int(snapshot.get("running", 0)) if fresh else 0,
                waiting=int(snapshot.get("waiting", 0)) if fresh else 0,
                kv_usage=float(snapshot.get("kv_usage", 0.0)) if fresh else 0.0,
                inflight=inflight.get(endpoint_id, 0),
            )
        )
    return tuple(out)


def overflow_inflight(endpoints: dict[str, Any], inflight: dict[str, int]) -> int:
    """Requests in flight to the registered overflow endpoints (pure; health aside: a
    request sent there is demand whether or not the endpoint answers well)."""
    total = 0
    for endpoint_id, raw in endpoints.items():
        info = json.loads(raw)
        if info.get("kind") == EXTERNAL and info.get("role") == OVERFLOW:
            total += max(inflight.get(endpoint_id, 0), 0)
    return total


class SignalReader:
    """Reads one deployment's signals from Redis (sync; the Serve controller calls it)."""

    def __init__(self, redis_url: str, namespace: str, app: str, pd: str = "") -> None:
        from controlplane.store.redis import sync_client

        self.client = sync_client(redis_url, socket_timeout=0.5)
        self.ns = namespace
        self.app = app
        self.pd = pd
        self.ttft = TtftWindow()
        self.itl = TtftWindow(histogram=ITL_HISTOGRAM)

    def read(self) -> Signals:
        """One reading; raises redis errors (the caller holds its decision on them)."""
        ns = self.ns
        pipe = self.client.pipeline(transaction=False)
        for suffix in ("endpoints", "health", "load"):
            pipe.hgetall(f"{ns}:{suffix}")
        pipe.hkeys(DRAINING.format(ns=ns))
        pipe.zrangebyscore(f"{ns}:routers", int(time.time() * 1000), "+inf")
        endpoints, health, load, draining, routers = pipe.execute()
        pipe = self.client.pipeline(transaction=False)
        for router in routers:
            pipe.hgetall(f"{ns}:inflight:{_text(router)}")
            pipe.get(f"{ns}:rmetrics:{_text(router)}")
        replies = pipe.execute()
        inflight: dict[str, int] = {}
        exports = []
        for counts, export in zip(replies[::2], replies[1::2], strict=True):
            for endpoint_id, count in counts.items():
                key = _text(endpoint_id)
                inflight[key] = inflight.get(key, 0) + int(count)
            if export:
                exports.append(json.loads(export))
        registered = {_text(k): v for k, v in endpoints.items()}
        replicas = replica_signals(
            registered,
            {_text(k): v for k, v in health.items()},
            {_text(k): v for k, v in load.items()},
            {_text(d) for d in draining},
            inflight,
            self.app,
            time.time(),
            self.pd,
        )
        overflow = overflow_inflight(registered, inflight) if not self.pd else 0
        return Signals(replicas, self.ttft.update(exports), overflow, self.itl.update(exports))

    def close(self) -> None:
        self.client.close()
