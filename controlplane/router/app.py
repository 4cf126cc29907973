"""The router's raw ASGI app: OpenAI-compatible endpoints, no framework on the request path.

Routes: POST /v1/chat/completions, POST /v1/completions, GET /v1/models, GET /health,
GET /metrics. Request bodies are parsed once with orjson (for validation and routing) and
forwarded as the original bytes, so GLM-4.5 fields (tools, chat_template_kwargs, ...) pass
untouched. The chosen endpoint is named in the `x-glmctl-endpoint` response header.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
import uuid
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from controlplane.router import collector
from controlplane.router.config import RouterConfig
from controlplane.router.metrics import RouterMetrics, merge, redis_up, render
from controlplane.router.policies import (
    LOOKUP_PREFIX,
    LOOKUP_SESSION,
    Decision,
    EndpointView,
    Policy,
    RouteContext,
    default_policies,
)
from controlplane.router.prefix import block_hashes, prompt_bytes
from controlplane.router.proxy import (
    Receive,
    Send,
    UpstreamFailed,
    error_json,
    forward,
    read_body,
    request_headers,
)
from controlplane.router.registry import EndpointInfo
from controlplane.router.state import RedisState
from controlplane.router.upstream import UpstreamPool
from controlplane.router.validation import RequestProblem, validate

ROUTES = {b"/v1/chat/completions": "chat", b"/v1/completions": "completions"}
UPSTREAM_PATHS = {"chat": "/v1/chat/completions", "completions": "/v1/completions"}
_NO_LOOKUP = RouteContext(candidates=())  # frozen: shared by requests that need no lookup


@dataclass(slots=True)
class Exchange:
    """One client request in flight: what to forward and how to answer."""

    body: bytes
    send: Send
    receive: Receive
    started: float
    upstream_path: str


class RouterApp:
    """One worker's router. Start/stop happen in the ASGI lifespan."""

    def __init__(
        self,
        config: RouterConfig,
        policies: dict[str, Policy] | None = None,
        router_id: str | None = None,
    ) -> None:
        self.config = config
        self.policies = policies if policies is not None else default_policies()
        self.router_id = router_id or uuid.uuid4().hex[:12]
        self.metrics = RouterMetrics()
        self.inflight: dict[str, int] = {}
        self.local_down: dict[str, float] = {}  # endpoint -> monotonic time it may return
        self.sequence = 0
        self.state: RedisState | None = None
        self.session: aiohttp.ClientSession | None = None  # health and load probes
        self.pool: UpstreamPool | None = None  # the request path
        self._by_model: dict[str, list[EndpointInfo]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._session_header = config.session_header.lower().encode()
        self._policy_header = config.policy_header.lower().encode()

    # -- lifecycle -----------------------------------------------------------------------
    async def startup(self) -> None:
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=None)
        timeout = aiohttp.ClientTimeout(
            total=None,
            sock_connect=self.config.connect_timeout,
            sock_read=self.config.read_timeout,
        )
        self.session = aiohttp.ClientSession(
            connector=connector, timeout=timeout, auto_decompress=False
        )
        self.pool = UpstreamPool(self.config.connect_timeout, self.config.read_timeout)
        self.state = RedisState(self.config.redis_url, self.router_id, self.config.state)
        await self.state.refresh({})
        self.reindex()
        self._tasks = collector.start_background(self)

    async def shutdown(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=2.0)
        if self.session is not None:
            await self.session.close()
        if self.pool is not None:
            self.pool.close()
        if self.state is not None:
            await self.state.close()

    def reindex(self) -> None:
        """Rebuild model -> endpoints after the view changed."""
        assert self.state is not None
        by_model: dict[str, list[EndpointInfo]] = {}
        for info in sorted(self.state.view.endpoints.values(), key=lambda i: i.endpoint_id):
            by_model.setdefault(info.model, []).append(info)
        self._by_model = by_model

    # -- ASGI ----------------------------------------------------------------------------
    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope["raw_path"] if scope.get("raw_path") else scope["path"].encode()
            route = ROUTES.get(path.split(b"?", 1)[0])
            if route is not None and scope["method"] == "POST":
                await self._completion(scope, receive, send, route)
            elif path == b"/v1/models":
                await self._json(send, 200, self.models_body())
            elif path == b"/health":
                await self._json(send, 200, {"status": "ok", "redis": self._redis_ok()})
            elif path == b"/metrics":
                await self._metrics(send)
            else:
                await self._error(send, 404, f"no route {scope['path']}", "not_found")
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.startup()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # -- completions ---------------------------------------------------------------------
    async def _completion(
        self, scope: dict[str, Any], receive: Receive, send: Send, route: str
    ) -> None:
        started = time.perf_counter()
        body = await read_body(receive)
        exchange = Exchange(body, send, receive, started, UPSTREAM_PATHS[route])
        status = await self._route_and_forward(scope, exchange, route)
        self.metrics.inc(
            "glmctl_router_requests_total", (("route", route), ("status", str(status)))
        )
        self.metrics.observe("glmctl_router_e2e_seconds", time.perf_counter() - started)

    async def _route_and_forward(self, scope: dict[str, Any], ex: Exchange, route: str) -> int:
        send, body = ex.send, ex.body
        headers = request_headers(
            scope, (b"authorization", self._session_header, self._policy_header)
        )
        try:
            payload = validate(body, route, self._by_model)
            policy = self._policy(headers.get(self._policy_header))
            key_hash, limits = self._authorize(headers.get(b"authorization"))
        except RequestProblem as problem:
            return await self._error(send, problem.status, problem.message, problem.kind)
        candidates = [
            info for info in self._by_model[payload["model"]] if self._is_healthy(info.endpoint_id)
        ]
        if not candidates:
            return await self._error(
                send, 503, "no healthy endpoint serves this model", "service_unavailable"
            )
        session_key = headers.get(self._session_header, "") or str(payload.get("user") or "")
        need_prefix = LOOKUP_PREFIX in policy.lookups
        hashes = block_hashes(prompt_bytes(payload)) if need_prefix else []
        if not need_prefix and LOOKUP_SESSION not in policy.lookups:
            session_key = ""
        ctx_base = await self._lookup(hashes, session_key, key_hash, limits)
        if isinstance(ctx_base, float):
            return await self._error(
                send,
                429,
                "rate limit exceeded",
                "rate_limit_exceeded",
                retry_after=ctx_base,
            )
        views = [
            v for v in map(self._view, candidates) if v.load < self.config.max_queue_per_endpoint
        ]
        if not views:
            return await self._error(
                send, 429, "every endpoint's queue is full", "rate_limit_exceeded", retry_after=1.0
            )
        return await self._attempts(policy, ctx_base, views, hashes, session_key, ex)

    async def _attempts(
        self,
        policy: Policy,
        ctx: RouteContext,
        views: list[EndpointView],
        hashes: list[str],
        session_key: str,
        ex: Exchange,
    ) -> int:
        assert self.pool is not None and self.state is not None
        for _attempt in range(self.config.max_attempts):
            if not views:
                break
            self.sequence += 1
            decision = policy.choose(
                RouteContext(
                    tuple(views),
                    self.sequence,
                    (random.random(), random.random()),
                    ctx.prefix_endpoint,
                    ctx.prefix_depth,
                    len(hashes),
                    ctx.session_endpoint,
                    self.config.tuning,
                )
            )
            endpoint = decision.endpoint
            self._record(policy, decision, ctx, hashes, session_key)
            self.inflight[endpoint.endpoint_id] = self.inflight.get(endpoint.endpoint_id, 0) + 1
            try:
                status, first_byte_at, failed = await forward(
                    self.pool,
                    endpoint.url + ex.upstream_path,
                    ex.body,
                    ex.send,
                    [(b"x-glmctl-endpoint", endpoint.endpoint_id.encode())],
                    ex.receive,
                )
            except UpstreamFailed as exc:
                self._upstream_failed(endpoint.endpoint_id, str(exc))
                views = [v for v in views if v.endpoint_id != endpoint.endpoint_id]
                continue
            finally:
                self.inflight[endpoint.endpoint_id] -= 1
            self.metrics.observe("glmctl_router_ttft_seconds", first_byte_at - ex.started)
            if failed:
                self.metrics.inc("glmctl_router_errors_total", (("kind", "upstream_midstream"),))
            return status
        return await self._error(
            ex.send, 502, "every endpoint tried failed before answering", "upstream_error"
        )

    def _record(
        self,
        policy: Policy,
        decision: Decision,
        ctx: RouteContext,
        hashes: list[str],
        session_key: str,
    ) -> None:
        assert self.state is not None
        endpoint_id = decision.endpoint.endpoint_id
        self.metrics.inc(
            "glmctl_router_decisions_total",
            (("policy", policy.name), ("endpoint", endpoint_id), ("reason", decision.reason)),
        )
        if hashes:
            matched = ctx.prefix_depth if ctx.prefix_endpoint == endpoint_id else 0
            self.metrics.inc("glmctl_router_prefix_blocks_total", (), len(hashes))
            self.metrics.inc("glmctl_router_prefix_blocks_matched_total", (), matched)
        if hashes or session_key:
            self.state.record(endpoint_id, hashes, session_key)

    def _upstream_failed(self, endpoint_id: str, error: str) -> None:
        assert self.state is not None
        self.metrics.inc("glmctl_router_errors_total", (("kind", "upstream_connect"),))
        self.metrics.inc("glmctl_router_retries_total")
        self.local_down[endpoint_id] = time.monotonic() + 2 * self.config.scrape_interval
        collector.spawn(self.state.set_health(endpoint_id, False, error))

    async def _lookup(
        self, hashes: list[str], session_key: str, key_hash: str, limits: tuple[float, int]
    ) -> RouteContext | float:
        """Prefix match + session + rate limit in one round trip; when rate limited, the
        seconds until a retry may pass."""
        assert self.state is not None
        rate, burst = limits
        if not hashes and not session_key and rate <= 0:
            return _NO_LOOKUP
        began = time.perf_counter()
        found = await self.state.lookup(
            hashes, session_key, key_hash if rate > 0 else "", rate, burst
        )
        self.metrics.observe("glmctl_router_redis_seconds", time.perf_counter() - began)
        if not found.allowed:
            return max(found.retry_after_s, 0.001)
        return RouteContext(
            candidates=(),
            prefix_endpoint=found.prefix_endpoint,
            prefix_depth=found.prefix_depth,
            session_endpoint=found.session_endpoint,
        )

    def _policy(self, override: str | None) -> Policy:
        name = override or self.config.policy
        policy = self.policies.get(name)
        if policy is None:
            raise RequestProblem(
                400, f"unknown routing policy `{name}`; known: {', '.join(sorted(self.policies))}"
            )
        return policy

    def _authorize(self, authorization: str | None) -> tuple[str, tuple[float, int]]:
        assert self.state is not None
        keys = self.state.view.api_keys
        if not keys:
            return "", (0.0, 0)
        token = (authorization or "").removeprefix("Bearer ").strip()
        key_hash = hashlib.sha256(token.encode()).hexdigest()
        record = keys.get(key_hash)
        if not token or record is None:
            raise RequestProblem(401, "missing or unknown API key", "authentication_error")
        return key_hash, (float(record.get("rate", 0)), int(record.get("burst", 1)))

    def _is_healthy(self, endpoint_id: str) -> bool:
        assert self.state is not None
        down_until = self.local_down.get(endpoint_id)
        if down_until is not None and time.monotonic() < down_until:
            return False
        return self.state.view.healthy.get(endpoint_id, True)

    def _view(self, info: EndpointInfo) -> EndpointView:
        assert self.state is not None
        view = self.state.view
        load = view.load.get(info.endpoint_id)
        inflight = self.inflight.get(info.endpoint_id, 0) + view.others_inflight.get(
            info.endpoint_id, 0
        )
        if load is None:
            return EndpointView(info.endpoint_id, info.url, info.model, inflight)
        return EndpointView(
            info.endpoint_id,
            info.url,
            info.model,
            inflight,
            load.running,
            load.waiting,
            load.kv_usage,
        )

    # -- other routes --------------------------------------------------------------------
    def models_body(self) -> dict[str, Any]:
        data = [
            {"id": model, "object": "model", "created": 0, "owned_by": "glmctl"}
            for model in sorted(self._by_model)
        ]
        return {"object": "list", "data": data}

    def _redis_ok(self) -> bool:
        return self.state is not None and self.state.redis_ok

    async def _metrics(self, send: Send) -> None:
        assert self.state is not None
        own = self.metrics.export(self.inflight)
        others = await self.state.all_metrics() or []
        exports = [e for e in others if e.get("router") != self.router_id] + [own]
        text = (render(merge(exports)) + redis_up(self._redis_ok())).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/plain; version=0.0.4")],
            }
        )
        await send({"type": "http.response.body", "body": text})

    async def _json(
        self, send: Send, status: int, data: Any, extra: list[tuple[bytes, bytes]] | None = None
    ) -> int:
        body = orjson.dumps(data)
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *(extra or []),
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return status

    async def _error(
        self,
        send: Send,
        status: int,
        message: str,
        kind: str = "invalid_request_error",
        retry_after: float | None = None,
    ) -> int:
        extra = []
        if retry_after is not None:
            extra.append((b"retry-after", str(max(1, round(retry_after + 0.499))).encode()))
        if status >= 500 or status == 429:
            self.metrics.inc("glmctl_router_errors_total", (("kind", kind),))
        return await self._json(send, status, error_json(message, status, kind), extra)
