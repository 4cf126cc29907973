"""The router's raw ASGI app: OpenAI-compatible endpoints, no framework on the request path.

Routes: POST /v1/chat/completions, POST /v1/completions, GET /v1/models, GET /health,
GET /metrics. Request bodies are parsed once with orjson (for validation and routing) and
forwarded as the original bytes, so GLM-4.5 fields (tools, chat_template_kwargs, ...) pass
untouched (but a `max_tokens` limit, router/admission.py). The chosen endpoint is named in
the `x-glmctl-endpoint` response header.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from dataclasses import dataclass
from typing import Any

from controlplane.router import collector, decisions, pd_route, pd_select
from controlplane.router.admission import Admitted, RateLimited
from controlplane.router.background import cancel_all, log, spawn
from controlplane.router.config import RouterConfig
from controlplane.router.exposition import send_metrics
from controlplane.router.kv_route import PreciseRouting, precise_routing
from controlplane.router.metrics import (
    OUTCOME_MIDSTREAM,
    OUTCOME_OVERLOADED,
    count_request,
    endpoint_info,
    redis_up,
)
from controlplane.router.overflow import Selection, select
from controlplane.router.policies import (
    LOOKUP_PREFIX,
    LOOKUP_SESSION,
    EndpointView,
    Policy,
    RouteContext,
    default_policies,
)
from controlplane.router.precise import PrefixMatch
from controlplane.router.prefix import block_hashes, prompt_bytes
from controlplane.router.proxy import Receive, Send, UpstreamFailed, forward, request_headers
from controlplane.router.registry import EndpointInfo
from controlplane.router.responses import read_request_body, send_error, send_json
from controlplane.router.runtime import RouterRuntime
from controlplane.router.sessions import session_decision
from controlplane.router.state import Lookup
from controlplane.router.validation import RequestProblem, validate
from controlplane.router.views import endpoint_view, models_body

ROUTES = {b"/v1/chat/completions": "chat", b"/v1/completions": "completions"}
UPSTREAM_PATHS = {"chat": "/v1/chat/completions", "completions": "/v1/completions"}
_AUTH = (b"authorization",)


@dataclass(slots=True)
class Exchange:
    """One client request in flight: what to forward and how to answer."""

    body: bytes
    send: Send
    receive: Receive
    started: float
    upstream_path: str
    route: str = "chat"  # chat | completions
    outcome: str = ""  # what the status cannot tell: overloaded, midstream (metrics.py)
    midstream_failed: bool = False  # the engine failed after the first byte went out
    kv: PrefixMatch | None = None  # precise_prefix: cached leading blocks per endpoint


class RouterApp(RouterRuntime):
    """One worker's router (its shared state: runtime.py). Start/stop happen in the ASGI
    lifespan."""

    def __init__(
        self,
        config: RouterConfig,
        policies: dict[str, Policy] | None = None,
        router_id: str | None = None,
    ) -> None:
        super().__init__(config, router_id or uuid.uuid4().hex[:12])
        self.policies = policies if policies is not None else default_policies()
        self.sequence = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._session_header = config.session_header.lower().encode()
        self._policy_header = config.policy_header.lower().encode()
        self._wanted = (b"authorization", self._session_header, self._policy_header)
        self.precise: PreciseRouting | None = precise_routing(config)  # kv_route.py
        self._tuning = self.precise.tuning(config.tuning) if self.precise else config.tuning

    # -- lifecycle -----------------------------------------------------------------------
    async def startup(self) -> None:
        await self.open()
        self._tasks = collector.start_background(self)

    async def shutdown(self) -> None:
        await cancel_all(self._tasks)
        if self.precise is not None:
            await self.precise.close()
        await self.close()

    # -- ASGI ----------------------------------------------------------------------------
    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope["raw_path"] if scope.get("raw_path") else scope["path"].encode()
            route = ROUTES.get(path.split(b"?", 1)[0])
            if route is not None and scope["method"] == "POST":
                await self._completion(scope, receive, send, route)
            elif path == b"/v1/models":
                await self._models(scope, send)
            elif path == b"/health":
                await send_json(send, 200, {"status": "ok", "redis": self._redis_ok()})
            elif path == b"/metrics":
                await send_metrics(
                    send,
                    self.state,
                    self.metrics,
                    self.inflight,
                    self.router_id,
                    extra=redis_up(self._redis_ok())
                    + endpoint_info(self.endpoints().values(), self.is_healthy)
                    + (self.precise.metrics_text() if self.precise else ""),
                )
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
        limits = self.config.limits
        exchange = Exchange(b"", send, receive, started, UPSTREAM_PATHS[route], route)
        try:
            exchange.body = await read_request_body(
                scope, receive, limits.max_body_bytes, limits.client_idle_timeout
            )
        except RequestProblem as problem:
            status = await self._problem(send, problem)
        else:
            try:
                async with asyncio.timeout(limits.client_total_timeout):
                    status = await self._route_and_forward(scope, exchange, route)
            except TimeoutError:
                status = await self._timed_out(send, limits.client_total_timeout)
        self._finished(exchange, status)

    def _finished(self, ex: Exchange, status: int) -> None:
        """The one place a completion request's final outcome is known: its status (429
        included), `ex.outcome` and whether its stream failed mid-way."""
        count_request(self.metrics, ex.route, status, ex.outcome)
        if ex.midstream_failed:
            self.metrics.inc("glmctl_router_errors_total", (("kind", "upstream_midstream"),))
        self.metrics.observe("glmctl_router_e2e_seconds", time.perf_counter() - ex.started)

    async def _route_and_forward(self, scope: dict[str, Any], ex: Exchange, route: str) -> int:
        send, body = ex.send, ex.body
        headers = request_headers(scope, self._wanted)
        assert self.admission is not None
        try:
            key = self.admission.authenticate(headers.get(b"authorization"))
            payload = validate(body, route, self.by_model, self.config.models)
            policy = self._policy(headers.get(self._policy_header))
            admitted = await self.admission.admit(key, payload, body)
        except RequestProblem as problem:
            return await self._problem(send, problem)
        except RateLimited as limited:
            return await self._error(
                send, 429, limited.message, "rate_limit_exceeded", limited.retry_after_s
            )
        try:
            return await self._admitted(policy, payload, admitted, headers, ex)
        finally:
            self.admission.release(admitted)

    async def _admitted(
        self,
        policy: Policy,
        payload: dict[str, Any],
        admitted: Admitted,
        headers: dict[bytes, str],
        ex: Exchange,
    ) -> int:
        send = ex.send
        ex.body = admitted.body
        registered = self.by_model[payload["model"]]
        # PD by what is registered, not by what is healthy: with one pool down, a request
        # sent to the other pool as if colocated would fail there (SGLang: 400, no room).
        if pd_select.is_pd(registered):  # prefill/decode pools (router/pd_route.py)
            return await pd_route.serve(self, registered, payload, admitted, ex)
        candidates = [info for info in registered if self.is_healthy(info.endpoint_id)]
        if not candidates:
            return await self._error(
                send, 503, "no healthy endpoint serves this model", "service_unavailable", 1.0
            )
        session_key = headers.get(self._session_header, "") or str(payload.get("user") or "")
        need_prefix = LOOKUP_PREFIX in policy.lookups
        hashes = block_hashes(prompt_bytes(payload)) if need_prefix else []
        if not need_prefix and LOOKUP_SESSION not in policy.lookups:
            session_key = ""
        assert self.state is not None
        ctx_base = await decisions.lookup(
            self.state, self.metrics, hashes, session_key, admitted.key_hash, admitted.legacy_rate
        )
        if isinstance(ctx_base, float):
            return await self._error(
                send, 429, "rate limit exceeded", "rate_limit_exceeded", retry_after=ctx_base
            )
        if self.precise is not None and policy.name == "precise_prefix":
            ex.kv = self.precise.match(payload, ex.route == "chat", candidates)
        views = [self._view(info) for info in candidates]
        offered = self._offer(views)
        if not offered.endpoints:
            ex.outcome = OUTCOME_OVERLOADED
            return await self._error(
                send, 429, "every endpoint's queue is full", "rate_limit_exceeded", retry_after=1.0
            )
        return await self._attempts(policy, ctx_base, views, offered, hashes, session_key, ex)

    async def _attempts(
        self,
        policy: Policy,
        ctx: Lookup,
        views: list[EndpointView],
        offered: Selection,
        hashes: list[str],
        session_key: str,
        ex: Exchange,
    ) -> int:
        """Up to `max_attempts` tries, each on an endpoint not yet failed (`offered`: the
        first try's choice); 429 when all left are full, 502 when every one tried failed
        before answering."""
        failures: list[str] = []
        for attempt in range(self.config.max_attempts):
            if attempt:
                offered = self._offer(views)
            if not offered.endpoints:
                break
            endpoint = await self._decide(policy, ctx, offered, hashes, session_key, ex.kv)
            self.inflight[endpoint.endpoint_id] = self.inflight.get(endpoint.endpoint_id, 0) + 1
            try:
                status, first_byte_at, failed = await self._forward(endpoint, ex)
            except UpstreamFailed as exc:
                failures.append(self._upstream_failed(endpoint.endpoint_id, exc))
                views = [v for v in views if v.endpoint_id != endpoint.endpoint_id]
                continue
            finally:
                self.inflight[endpoint.endpoint_id] -= 1
            self.metrics.observe("glmctl_router_ttft_seconds", first_byte_at - ex.started)
            ex.midstream_failed = failed
            if failed:
                ex.outcome = OUTCOME_MIDSTREAM
            return status
        if not failures:  # every endpoint left is full
            ex.outcome = OUTCOME_OVERLOADED
            return await self._error(
                ex.send, 429, "every endpoint's queue is full", "rate_limit_exceeded", 1.0
            )
        return await self._error(
            ex.send,
            502,
            "every endpoint tried failed before answering: " + "; ".join(failures),
            "upstream_error",
        )

    async def _decide(
        self,
        policy: Policy,
        ctx: Lookup,
        offered: Selection,
        hashes: list[str],
        session_key: str,
        kv: PrefixMatch | None = None,
    ) -> EndpointView:
        """The policy's choice among `offered` (a session's binding may override it), with
        the decision recorded and an overflow counted."""
        assert self.state is not None
        self.sequence += 1
        decision = policy.choose(
            RouteContext(
                offered.endpoints,
                self.sequence,
                (random.random(), random.random()),
                ctx.prefix_endpoint,
                ctx.prefix_depth,
                len(hashes),
                ctx.session_endpoint,
                self._tuning,
                kv.runs if kv else None,
                kv.blocks if kv else 0,
                kv.evicted if kv else frozenset(),
            )
        )
        if session_key:  # one endpoint for a session's concurrent first requests
            decision = await session_decision(
                self.state, session_key, decision, ctx, list(offered.endpoints)
            )
        endpoint = decision.endpoint
        decisions.record(self.state, self.metrics, policy, decision, ctx, hashes, session_key)
        if kv is not None:
            decisions.record_predicted(self.metrics, endpoint.endpoint_id, kv)
        if offered.overflow and endpoint.role == "overflow":
            labels = (("reason", offered.overflow), ("endpoint", endpoint.endpoint_id))
            self.metrics.inc("glmctl_router_overflow_total", labels)
        return endpoint

    def _offer(self, views: list[EndpointView]) -> Selection:
        """The endpoints the policy may choose from (router/overflow.py)."""
        return select(views, self.config.max_queue_per_endpoint, self.config.overflow_at)

    async def _forward(self, endpoint: EndpointView, ex: Exchange) -> tuple[int, float, bool]:
        """One try on `endpoint`; an external one gets its own URL, model name and key."""
        assert self.pool is not None
        tag = [(b"x-glmctl-endpoint", endpoint.endpoint_id.encode())]
        external = self.externals.get(endpoint.endpoint_id)
        if external is not None:
            return await external.forward(self.pool, ex.route, ex.body, ex.send, tag, ex.receive)
        url = endpoint.url + ex.upstream_path
        return await forward(self.pool, url, ex.body, ex.send, tag, ex.receive)

    def _upstream_failed(self, endpoint_id: str, failure: UpstreamFailed) -> str:
        """Take the endpoint out for a while; returns what to tell the client about it."""
        assert self.state is not None
        external = self.externals.get(endpoint_id)
        error, answer = str(failure), f"{endpoint_id} did not answer"
        if external is not None:
            error, answer = external.explain(failure)
            if self.is_healthy(endpoint_id):
                log.warning("external endpoint %s is out of rotation: %s", endpoint_id, error)
        kind = "upstream_auth" if failure.status in (401, 403) else "upstream_connect"
        self.metrics.inc("glmctl_router_errors_total", (("kind", kind),))
        self.metrics.inc("glmctl_router_retries_total")
        self.local_down[endpoint_id] = time.monotonic() + 2 * self.config.scrape_interval
        spawn(self.state.set_health(endpoint_id, False, error))
        return answer

    def _policy(self, override: str | None) -> Policy:
        name = override or self.config.policy
        policy = self.policies.get(name)
        if policy is None:
            raise RequestProblem(
                400, f"unknown routing policy `{name}`; known: {', '.join(sorted(self.policies))}"
            )
        return policy

    def reindex(self) -> None:
        super().reindex()
        if self.precise is not None:  # watch/unwatch the registered KV-event feeds
            self.precise.sync(self.endpoints())

    def _view(self, info: EndpointInfo) -> EndpointView:
        assert self.state is not None
        return endpoint_view(info, self.state.view, self.inflight.get(info.endpoint_id, 0))

    # -- other routes --------------------------------------------------------------------
    def models_body(self) -> dict[str, Any]:
        return models_body(self.by_model)

    async def _models(self, scope: dict[str, Any], send: Send) -> None:
        assert self.admission is not None
        try:  # the served models are not for anyone without a key
            self.admission.authenticate(request_headers(scope, _AUTH).get(b"authorization"))
        except RequestProblem as problem:
            await self._problem(send, problem)
            return
        await send_json(send, 200, self.models_body())

    def _redis_ok(self) -> bool:
        return self.state is not None and self.state.redis_ok

    async def _timed_out(self, send: Send, seconds: float) -> int:
        """Answer 504 if the response had not started; else the connection just closes."""
        self.metrics.inc("glmctl_router_errors_total", (("kind", "client_total_timeout"),))
        with contextlib.suppress(RuntimeError):  # the server: the response already started
            await send_error(send, 504, f"request took longer than {seconds:g} s", "timeout")
        return 504

    async def _error(
        self,
        send: Send,
        status: int,
        message: str,
        kind: str = "invalid_request_error",
        retry_after: float | None = None,
        code: str | None = None,
    ) -> int:
        if status >= 500 or status == 429:
            self.metrics.inc("glmctl_router_errors_total", (("kind", kind),))
        return await send_error(send, status, message, kind, retry_after, code)

    async def _problem(self, send: Send, problem: RequestProblem) -> int:
        """Answer a refused request (validation.py) with its status, type and code."""
        status, message, kind = problem.status, problem.message, problem.kind
        return await self._error(send, status, message, kind, problem.retry_after, problem.code)
