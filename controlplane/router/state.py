"""Router state shared through Redis, with a local view that keeps serving when Redis is down.

Design: the request path costs at most ONE Redis round trip, and none for round_robin /
least_load / power_of_two without API keys. Measured with ops/benchmarks/router_bench.py
(2 cores, bracketed, c=32): no Redis call 0.62x direct, one EVALSHA + prompt hashing
0.53x (sglang-router round_robin: 0.53x). Reading the whole state per request (the
alternative) would add a second round trip or a much larger script reply per request.
- Endpoints, health, engine load, API keys and the other routers' in-flight counts are
  read by `refresh()` every `refresh_interval` s (one EVALSHA), which also publishes this
  router's own in-flight counts under a lease: a router that dies mid-request stops
  renewing and its counts vanish with the lease (in-flight stays correct).
- `lookup()` (one EVALSHA, only when the policy or a rate limit needs it) returns the
  deepest prefix match, the session binding and the rate-limit verdict.
- What a decision teaches (prefix blocks -> endpoint, session -> endpoint) is buffered and
  written by `flush()` in the background (one EVALSHA per flush), off the request path.
- Redis errors open a breaker for `breaker_s`; meanwhile lookups use a local LRU of what
  this router recorded, rate limits are not enforced, and writes stay buffered (bounded).
  When Redis answers again and its epoch key is gone (it restarted empty), the router
  re-seeds the endpoints it knows: resynchronisation.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import Any

from controlplane.router import scripts
from controlplane.router.engine_metrics import LoadSnapshot
from controlplane.router.registry import EndpointInfo


@dataclass(frozen=True, slots=True)
class StateConfig:
    namespace: str = "glmctl"
    refresh_interval: float = 0.1
    lease_s: float = 2.0  # a dead router's in-flight counts expire after this
    prefix_window_s: float = 300.0  # prefix entries live between 1 and 2 windows
    prefix_max_entries: int = 200_000  # per window bucket
    session_ttl_s: float = 1800.0
    # A session's binding younger than this is followed even when its endpoint looks
    # overloaded: a new conversation's concurrent first requests arrive within it, and the
    # endpoint was the least loaded one when bound, so the load it shows is mostly the
    # session's own burst (router/sessions.py).
    session_settle_s: float = 5.0
    breaker_s: float = 0.5
    local_lru: int = 50_000
    max_buffered: int = 20_000
    redis_timeout_s: float = 0.25


@dataclass(frozen=True, slots=True)
class Lookup:
    prefix_endpoint: str | None = None
    prefix_depth: int = 0
    session_endpoint: str | None = None
    allowed: bool = True
    retry_after_s: float = 0.0
    session_age_s: float | None = None  # since the binding began; None: unknown (old)


@dataclass
class LocalView:
    """This router's last known copy of the shared state."""

    endpoints: dict[str, EndpointInfo] = field(default_factory=dict)
    healthy: dict[str, bool] = field(default_factory=dict)
    late: dict[str, int] = field(default_factory=dict)  # probes in a row that timed out
    load: dict[str, LoadSnapshot] = field(default_factory=dict)
    others_inflight: dict[str, int] = field(default_factory=dict)
    api_keys: dict[str, dict[str, Any]] = field(default_factory=dict)
    draining: frozenset[str] = frozenset()  # registered, but out of rotation (see scripts)
    refreshed_at: float = 0.0


def _pairs(flat: list[Any]) -> dict[str, Any]:
    return {_text(flat[i]): flat[i + 1] for i in range(0, len(flat), 2)}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisState:
    """Async adapter around the shared state; every method survives Redis being down."""

    def __init__(self, redis_url: str, router_id: str, config: StateConfig | None = None) -> None:
        from controlplane.store.redis import async_client

        self.config = config or StateConfig()
        self.router_id = router_id
        self.view = LocalView()
        timeout = self.config.redis_timeout_s
        self.client = async_client(redis_url, socket_timeout=timeout, retries=0)
        self._lookup = self.client.register_script(scripts.LOOKUP)
        self._record = self.client.register_script(scripts.RECORD)
        self._refresh = self.client.register_script(scripts.REFRESH)
        self._bind = self.client.register_script(scripts.BIND)
        self._down_until = 0.0
        self._prefix_lru: OrderedDict[str, str] = OrderedDict()
        self._sessions: OrderedDict[str, str] = OrderedDict()
        self._pending_prefix: dict[str, str] = {}
        self._pending_sessions: dict[str, str] = {}
        self.redis_ok = True

    @property
    def ns(self) -> str:
        return self.config.namespace

    def available(self) -> bool:
        return time.monotonic() >= self._down_until

    def _failed(self) -> None:
        self.redis_ok = False
        self._down_until = time.monotonic() + self.config.breaker_s

    async def close(self) -> None:
        await self.client.aclose()

    # -- request path -------------------------------------------------------------------
    async def lookup(
        self, hashes: list[str], session_key: str, rate_key: str, rate: float, burst: int
    ) -> Lookup:
        """Deepest prefix match, session binding, rate-limit verdict: one round trip."""
        if self.available():
            bucket = int(time.time() // self.config.prefix_window_s)
            args: list[Any] = [self.ns, bucket, 2, len(hashes), *hashes, session_key]
            args += [rate_key, rate, burst]
            try:
                depth, endpoint, bound, allowed, retry_ms, age_ms = await self._lookup(args=args)
            except Exception:  # any Redis failure: serve from the local view
                self._failed()
                return self._local_lookup(hashes, session_key)
            found = Lookup(
                _text(endpoint) or None,
                int(depth),
                _text(bound) or None,
                bool(int(allowed)),
                int(retry_ms) / 1000,
                int(age_ms) / 1000 if int(age_ms) >= 0 else None,
            )
            return self._with_pending(found, hashes, session_key)
        return self._local_lookup(hashes, session_key)

    def _with_pending(self, found: Lookup, hashes: list[str], session_key: str) -> Lookup:
        """Decisions this router made but has not flushed yet win over Redis's older view."""
        pending = self._pending_prefix
        for depth in range(len(hashes), found.prefix_depth, -1):
            endpoint = pending.get(hashes[depth - 1])
            if endpoint is not None:
                found = replace(found, prefix_endpoint=endpoint, prefix_depth=depth)
                break
        bound = self._pending_sessions.get(session_key) if session_key else None
        if bound is None or bound == found.session_endpoint:
            return found
        return replace(found, session_endpoint=bound, session_age_s=0.0)  # bound just now

    def _local_lookup(self, hashes: list[str], session_key: str) -> Lookup:
        for depth in range(len(hashes), 0, -1):
            endpoint = self._prefix_lru.get(hashes[depth - 1])
            if endpoint is not None:
                return Lookup(endpoint, depth, self._sessions.get(session_key))
        return Lookup(None, 0, self._sessions.get(session_key) if session_key else None)

    async def bind_session(self, session_key: str, endpoint_id: str) -> str:
        """Bind a new session to `endpoint_id` unless some request (on any router) bound it
        first; returns the session's endpoint. One round trip, on a session's first request
        only; with Redis down, this router's own binding wins."""
        if self.available():
            try:
                bound = await self._bind(
                    args=[self.ns, session_key, endpoint_id, int(self.config.session_ttl_s * 1000)]
                )
                endpoint_id = _text(bound)
            except Exception:
                self._failed()
                endpoint_id = self._sessions.get(session_key, endpoint_id)
        self._sessions[session_key] = endpoint_id
        return endpoint_id

    def record(self, endpoint_id: str, hashes: list[str], session_key: str) -> None:
        """Remember a decision locally and buffer it for the next `flush()`."""
        lru, limit = self._prefix_lru, self.config.local_lru
        for digest in hashes:
            lru[digest] = endpoint_id
            lru.move_to_end(digest)
        while len(lru) > limit:
            lru.popitem(last=False)
        if len(self._pending_prefix) < self.config.max_buffered:
            self._pending_prefix.update(dict.fromkeys(hashes, endpoint_id))
        if session_key:
            self._sessions[session_key] = endpoint_id
            if len(self._sessions) > limit:
                self._sessions.popitem(last=False)
            if len(self._pending_sessions) < self.config.max_buffered:
                self._pending_sessions[session_key] = endpoint_id

    # -- background ----------------------------------------------------------------------
    async def flush(self) -> None:
        """Write buffered decisions (one EVALSHA); kept for later if Redis is down."""
        if not (self._pending_prefix or self._pending_sessions) or not self.available():
            return
        prefix, sessions = self._pending_prefix, self._pending_sessions
        self._pending_prefix, self._pending_sessions = {}, {}
        cfg = self.config
        bucket = int(time.time() // cfg.prefix_window_s)
        args: list[Any] = [
            self.ns,
            bucket,
            int(cfg.prefix_window_s * 2000) + 1000,
            cfg.prefix_max_entries,
            int(cfg.session_ttl_s * 1000),
            len(prefix),
        ]
        for digest, endpoint in prefix.items():
            args += [digest, endpoint]
        args.append(len(sessions))
        for key, endpoint in sessions.items():
            args += [key, endpoint]
        try:
            await self._record(args=args)
        except Exception:
            self._failed()
            self._pending_prefix = {**prefix, **self._pending_prefix}
            self._pending_sessions = {**sessions, **self._pending_sessions}

    async def refresh(self, own_inflight: dict[str, int]) -> bool:
        """Publish own in-flight counts, read everything else; False if Redis is down."""
        args: list[Any] = [self.ns, self.router_id, int(self.config.lease_s * 1000), 0]
        counts = [(ep, n) for ep, n in own_inflight.items() if n > 0]
        args[3] = len(counts)
        for endpoint, count in counts:
            args += [endpoint, count]
        try:
            reply = await self._refresh(args=args)
        except Exception:
            self._failed()
            return False
        endpoints_raw, health_raw, load_raw, others, epoch, keys_raw, draining = reply
        if not _text(epoch) and self.view.endpoints:
            await self._reseed()
        else:
            self.view.draining = frozenset(_text(ep) for ep in draining)
            self._apply(_pairs(endpoints_raw), _pairs(health_raw), _pairs(load_raw), others)
            self.view.api_keys = {k: json.loads(v) for k, v in _pairs(keys_raw).items()}
        self.redis_ok = True
        self._down_until = 0.0
        return True

    def _apply(
        self,
        endpoints: dict[str, Any],
        health: dict[str, Any],
        load: dict[str, Any],
        others: list[Any],
    ) -> None:
        view = self.view
        view.endpoints = {ep: EndpointInfo.from_json(ep, raw) for ep, raw in endpoints.items()}
        records = {ep: json.loads(raw) for ep, raw in health.items()}
        view.healthy = {ep: bool(record.get("ok", True)) for ep, record in records.items()}
        view.late = {ep: int(record.get("late", 0)) for ep, record in records.items()}
        view.healthy.update(dict.fromkeys(view.draining, False))  # drained: out of rotation
        view.load = {ep: LoadSnapshot.from_dict(json.loads(raw)) for ep, raw in load.items()}
        totals: dict[str, int] = {}
        for index in range(0, len(others), 2):
            for ep, count in _pairs(others[index + 1]).items():
                totals[ep] = totals.get(ep, 0) + int(count)
        view.others_inflight = totals
        view.refreshed_at = time.monotonic()

    async def _reseed(self) -> None:
        """Redis came back empty: write back the endpoints this router knew."""
        pipe = self.client.pipeline(transaction=False)
        for info in self.view.endpoints.values():
            pipe.hsetnx(f"{self.ns}:endpoints", info.endpoint_id, info.to_json())
        for endpoint_id in self.view.draining:  # a draining replica stays out of rotation
            pipe.hsetnx(scripts.DRAINING.format(ns=self.ns), endpoint_id, str(time.time()))
        pipe.set(f"{self.ns}:epoch", str(time.time()), nx=True)
        recent = list(self._prefix_lru.items())[-self.config.max_buffered :]
        self._pending_prefix.update(dict(recent))
        self._pending_sessions.update(self._sessions)
        await pipe.execute()

    async def set_health(self, endpoint_id: str, ok: bool, error: str = "", late: int = 0) -> None:
        """Write an endpoint's health for every router; `late`: its probes in a row that
        timed out (router/collector.py `SLOW_PROBES`)."""
        self.view.healthy[endpoint_id] = ok and endpoint_id not in self.view.draining
        self.view.late[endpoint_id] = late
        record = {"ok": ok, "ts": time.time(), "error": error[:200]}
        if late:
            record["late"] = late
        text = json.dumps(record)
        await self._best_effort(self.client.hset(f"{self.ns}:health", endpoint_id, text))

    async def set_load(self, endpoint_id: str, load: LoadSnapshot) -> None:
        self.view.load[endpoint_id] = load
        record = json.dumps({**load.to_dict(), "ts": time.time()})
        await self._best_effort(self.client.hset(f"{self.ns}:load", endpoint_id, record))

    async def claim_scrape(self, endpoint_id: str, period_s: float) -> bool:
        """True if this router should probe `endpoint_id` this period (one router does)."""
        if not self.available():
            return True
        key = f"{self.ns}:scrape:{endpoint_id}"
        claimed = await self._best_effort(
            self.client.set(key, self.router_id, nx=True, px=max(1, int(period_s * 900)))
        )
        return claimed is None or bool(claimed)

    async def publish_metrics(self, export: dict[str, Any], ttl_s: float) -> None:
        key = f"{self.ns}:rmetrics:{self.router_id}"
        await self._best_effort(self.client.set(key, json.dumps(export), px=int(ttl_s * 1000)))

    async def all_metrics(self) -> list[dict[str, Any]] | None:
        """Every live router's metrics export, or None if Redis is down."""
        if not self.available():
            return None
        try:
            routers = await self.client.zrange(f"{self.ns}:routers", 0, -1)
            if not routers:
                return []
            keys = [f"{self.ns}:rmetrics:{_text(r)}" for r in routers]
            return [json.loads(raw) for raw in await self.client.mget(keys) if raw]
        except Exception:
            self._failed()
            return None

    async def autoscale_records(self) -> tuple[dict[str, Any], dict[str, float]]:
        """The autoscaler's last decision per deployment and its decision counters
        ("deployment|direction|reason" -> count); empty while Redis is down."""
        if not self.available():
            return {}, {}
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.hgetall(scripts.AUTOSCALE.format(ns=self.ns))
            pipe.hgetall(scripts.AUTOSCALE_COUNT.format(ns=self.ns))
            last, counts = await pipe.execute()
        except Exception:
            self._failed()
            return {}, {}
        decisions = {_text(k): json.loads(v) for k, v in last.items()}
        return decisions, {_text(k): float(v) for k, v in counts.items()}

    async def _best_effort(self, awaitable: Any) -> Any:
        if not self.available():
            awaitable.close()
            return None
        try:
            return await awaitable
        except Exception:
            self._failed()
            return None
