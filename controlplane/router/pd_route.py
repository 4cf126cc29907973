"""The PD route: one request through a prefill endpoint and a decode endpoint.

Entered from app.py when the model's endpoints form a PD deployment (pd_select.is_pd).
The answer names the decode endpoint in `x-glmctl-endpoint`, the prefill one in
`x-glmctl-prefill-endpoint`.
Per try: choose a pair (pd_select.choose_pair), then per flavour of the decode endpoint:
- SGLang: the bootstrap fields are added and the body is POSTed to P and D at once; D's
  answer goes to the client through the colocated relay (proxy.forward), P's is read and
  dropped (mini_lb does the same).
- vLLM: P first (one token, not streamed, `kv_transfer_params.do_remote_decode`), then D
  with P's returned `kv_transfer_params`, relayed like a colocated answer. A connector
  that returns none (ExampleConnector: D looks the prompt's KV up in the shared folder)
  gets D the request as the client sent it.

Failures, before anything reached the client:
- P or D refused the connection (down), or, for vLLM, P failed before answering: the
  endpoint is taken out (as in the colocated path) and the request retried on another pair.
- D failed the request because its KV never came (the engine answers 500, or opens its
  stream with an `error` event): the transfer failed. The client gets a clear error naming
  both endpoints: a 502 JSON error, or for a streamed request a 200 stream with one `error`
  event and `[DONE]`; counted as `glmctl_router_errors_total{kind="pd_transfer"}` and in
  the requests counter (status 502, or outcome `midstream_error` for a stream).
In-flight counts of both endpoints are taken for the try and always given back. Each pool
has the colocated queue limits (`max_queue_per_endpoint`): a full pool answers 429
(outcome `overloaded`). Routing-policy and session headers do not apply to PD requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson

from controlplane.catalog import pd_metrics as pm
from controlplane.router import decisions
from controlplane.router.metrics import OUTCOME_MIDSTREAM, OUTCOME_OVERLOADED
from controlplane.router.pd_select import (
    DECODE,
    PREFILL,
    PdPair,
    bootstrap_address,
    choose_pair,
    sglang_body,
    sse_error,
    transfer_params,
    vllm_decode_body,
    vllm_prefill_body,
)
from controlplane.router.policies import RouteContext
from controlplane.router.prefix import block_hashes, prompt_bytes
from controlplane.router.proxy import Send, UpstreamFailed, forward
from controlplane.router.registry import EndpointInfo
from controlplane.router.upstream import UpstreamError

if TYPE_CHECKING:
    from controlplane.router.admission import Admitted
    from controlplane.router.app import Exchange, RouterApp

PREFILL_GRACE_S = 5.0  # how long P's own (dropped) answer may trail D's (SGLang)
_SSE_HEADERS = [(b"content-type", b"text/event-stream; charset=utf-8"),
                (b"cache-control", b"no-cache")]  # fmt: skip


class _Retry(Exception):
    """This try's endpoint failed before anything reached the client: try another pair."""

    def __init__(self, endpoint_id: str, failure: UpstreamFailed) -> None:
        super().__init__(str(failure))
        self.endpoint_id = endpoint_id
        self.failure = failure


class _ErrorEvent(Exception):
    """D's stream opened with an `error` event (held back from the client)."""


class _Sniff:
    """Wraps the client's ASGI `send`: holds the response start until the first body
    chunk, and raises `_ErrorEvent` instead of sending a stream that opens with an error.
    Attribute reads fall through to the real server's cycle, so the zero-copy relay of
    proxy.py (`relay_sink`, `disconnected`) still applies."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self._cycle = getattr(send, "__self__", None)
        self._start: dict[str, Any] | None = None
        self.checked = False
        self.error = ""

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cycle, name)

    async def send(self, message: dict[str, Any]) -> None:
        if not self.checked and message["type"] == "http.response.start":
            self._start = message
            return
        if not self.checked:
            self.checked = True
            error = sse_error(message.get("body", b""))
            if error is not None and self._start is not None:
                self.error = error
                raise _ErrorEvent(error)
            if self._start is not None:
                await self._send(self._start)
        await self._send(message)


async def serve(
    app: RouterApp, infos: list[EndpointInfo], payload: dict[str, Any], admitted: Admitted,
    ex: Exchange,
) -> int:  # fmt: skip
    """Answer `ex` through a PD pair of `infos` (the model's registered endpoints; the
    unhealthy ones are skipped, and with no healthy pair the answer is 503)."""
    assert app.state is not None
    data = orjson.loads(ex.body)  # the admitted body (admission may cap max_tokens)
    hashes = block_hashes(prompt_bytes(payload))
    found = await decisions.lookup(
        app.state, app.metrics, hashes, "", admitted.key_hash, admitted.legacy_rate
    )
    if isinstance(found, float):
        return await app._error(ex.send, 429, "rate limit exceeded", "rate_limit_exceeded",
                                retry_after=found)  # fmt: skip
    by_id = {info.endpoint_id: info for info in infos}
    failures: list[str] = []
    for _ in range(app.config.max_attempts):
        live = [info for info in by_id.values() if app.is_healthy(info.endpoint_id)]
        prefill_all = [app._view(i) for i in live if i.pd == PREFILL]
        decode_all = [app._view(i) for i in live if i.pd == DECODE]
        if not prefill_all or not decode_all:
            break
        # Queue limits per pool, as for colocated endpoints (router/overflow.py).
        prefill = list(app._offer(prefill_all).endpoints)
        decode = list(app._offer(decode_all).endpoints)
        if not prefill or not decode:
            ex.outcome = OUTCOME_OVERLOADED
            full = "prefill" if not prefill else "decode"
            return await app._error(ex.send, 429, f"every {full} endpoint's queue is full",
                                    "rate_limit_exceeded", 1.0)  # fmt: skip
        app.sequence += 1
        ctx = RouteContext(tuple(prefill), app.sequence, (random.random(), random.random()),
                           found.prefix_endpoint, found.prefix_depth, len(hashes),
                           tuning=app.config.tuning)  # fmt: skip
        pair = choose_pair(prefill, decode, ctx)
        _record(app, pair, found, hashes)
        try:
            return await _try_pair(app, pair, by_id, data, ex)
        except _Retry as retry:
            failures.append(app._upstream_failed(retry.endpoint_id, retry.failure))
            by_id.pop(retry.endpoint_id, None)
    if not failures:
        return await app._error(ex.send, 503, "no healthy prefill and decode endpoints serve"
                                " this model", "service_unavailable", 1.0)  # fmt: skip
    message = "every prefill/decode pair tried failed before answering: " + "; ".join(failures)
    return await app._error(ex.send, 502, message, "upstream_error")


def _record(app: RouterApp, pair: PdPair, found: Any, hashes: list[str]) -> None:
    """Count both decisions; the prefix index learns the prefill endpoint (the KV's home)."""
    assert app.state is not None
    for endpoint, reason in ((pair.prefill, pair.prefill_reason),
                             (pair.decode, pair.decode_reason)):  # fmt: skip
        labels = (("policy", "pd"), ("endpoint", endpoint.endpoint_id), ("reason", reason))
        app.metrics.inc("glmctl_router_decisions_total", labels)
    if hashes:
        matched = found.prefix_depth if found.prefix_endpoint == pair.prefill.endpoint_id else 0
        app.metrics.inc("glmctl_router_prefix_blocks_total", (), len(hashes))
        app.metrics.inc("glmctl_router_prefix_blocks_matched_total", (), matched)
        app.state.record(pair.prefill.endpoint_id, hashes, "")


async def _try_pair(
    app: RouterApp, pair: PdPair, by_id: dict[str, EndpointInfo], data: dict[str, Any],
    ex: Exchange,
) -> int:  # fmt: skip
    p_id, d_id = pair.prefill.endpoint_id, pair.decode.endpoint_id
    for endpoint_id in (p_id, d_id):
        app.inflight[endpoint_id] = app.inflight.get(endpoint_id, 0) + 1
    try:
        handoff = pm.PD_BY_FLAVOR.get(by_id[d_id].flavor)
        if handoff is not None and handoff.handoff == pm.KV_TRANSFER_PARAMS:
            return await _vllm(app, pair, data, ex)
        return await _sglang(app, pair, by_id[p_id], data, ex)
    finally:
        for endpoint_id in (p_id, d_id):
            app.inflight[endpoint_id] -= 1


async def _sglang(
    app: RouterApp, pair: PdPair, p_info: EndpointInfo, data: dict[str, Any], ex: Exchange
) -> int:
    assert app.pool is not None
    host, port = bootstrap_address(p_info)
    body = sglang_body(data, host, port, random.getrandbits(63))
    p_task = asyncio.ensure_future(_post(app, pair.prefill.url + ex.upstream_path, body))
    try:
        status = await _decode(app, pair, body, ex, lambda: _prefill_refused(pair, p_task))
    except BaseException:
        await _settle(p_task, 0.0)
        raise
    await _settle(p_task, PREFILL_GRACE_S if status < 400 and not ex.outcome else 0.0)
    return status


async def _vllm(app: RouterApp, pair: PdPair, data: dict[str, Any], ex: Exchange) -> int:
    try:
        status, answer = await _post(app, pair.prefill.url + ex.upstream_path,
                                     vllm_prefill_body(data))  # fmt: skip
    except UpstreamError as exc:  # P failed before answering: nothing was transferred
        raise _Retry(pair.prefill.endpoint_id, UpstreamFailed(str(exc))) from exc
    if status >= 500:
        raise _Retry(pair.prefill.endpoint_id, UpstreamFailed(f"HTTP {status}", status))
    if status != 200:  # P refused the request itself (4xx): the client's answer
        await _reply(ex.send, status, answer)
        return status
    # No params (ExampleConnector): D finds the KV by the prompt itself.
    params = transfer_params(answer)
    return await _decode(app, pair, vllm_decode_body(data, params), ex, lambda: None)


async def _decode(
    app: RouterApp, pair: PdPair, body: bytes, ex: Exchange, refused: Callable[[], _Retry | None]
) -> int:
    """D's answer to the client; `refused()`: P's connect failure (retry) or None."""
    assert app.pool is not None
    sniff = _Sniff(ex.send)
    tag = [(b"x-glmctl-endpoint", pair.decode.endpoint_id.encode()),
           (b"x-glmctl-prefill-endpoint", pair.prefill.endpoint_id.encode())]  # fmt: skip
    url = pair.decode.url + ex.upstream_path
    try:
        status, first_at, failed = await forward(app.pool, url, body, sniff.send, tag, ex.receive)
    except UpstreamFailed as exc:
        await asyncio.sleep(0)  # let a refused P connection report first
        p_failure = refused()
        if exc.status == 0:
            raise _Retry(pair.decode.endpoint_id, exc) from exc
        if p_failure is not None:
            raise p_failure from exc
        return await _transfer_failed(app, pair, ex, f"decode answered {exc}", stream=False)
    except _ErrorEvent:
        p_failure = refused()
        if p_failure is not None:
            raise p_failure from None
        return await _transfer_failed(app, pair, ex, sniff.error, stream=True)
    app.metrics.observe("glmctl_router_ttft_seconds", first_at - ex.started)
    ex.midstream_failed = failed
    if failed:
        ex.outcome = OUTCOME_MIDSTREAM
    return status


def _prefill_refused(pair: PdPair, p_task: asyncio.Future[Any]) -> _Retry | None:
    """A retry on another pair when P refused the connection (it is down)."""
    if not p_task.done() or p_task.cancelled():
        return None
    exc = p_task.exception()
    if isinstance(exc, UpstreamError) and str(exc).startswith("cannot connect"):
        return _Retry(pair.prefill.endpoint_id, UpstreamFailed(str(exc)))
    return None


async def _transfer_failed(
    app: RouterApp, pair: PdPair, ex: Exchange, reason: str, stream: bool
) -> int:
    """The clear error of a failed KV transfer (module docstring), counted."""
    message = (
        f"KV transfer from prefill endpoint {pair.prefill.endpoint_id} to decode endpoint"
        f" {pair.decode.endpoint_id} failed: {reason}"
    )
    app.metrics.inc("glmctl_router_errors_total", (("kind", "pd_transfer"),))
    if not stream:
        return await app._error(ex.send, 502, message, "upstream_error")
    error = {"error": {"message": message, "type": "upstream_error", "code": 502}}
    await ex.send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})
    event = b"data: " + orjson.dumps(error) + b"\n\ndata: [DONE]\n\n"
    await ex.send({"type": "http.response.body", "body": event})
    ex.outcome = OUTCOME_MIDSTREAM
    return 200


async def _post(app: RouterApp, url: str, body: bytes) -> tuple[int, bytes]:
    """POST and read the whole answer (P's, which the client never sees)."""
    assert app.pool is not None
    conn = await app.pool.post(url, body)
    try:
        parts = []
        while chunk := await conn.read():
            parts.append(chunk)
        return conn.status, b"".join(parts)
    finally:
        app.pool.release(conn)


async def _settle(task: asyncio.Future[Any], grace: float) -> None:
    """Let P's answer finish within `grace` seconds (after a good answer it came before D's
    first token), then drop it; a P still busy is cancelled, its connection closed."""
    with contextlib.suppress(Exception, asyncio.CancelledError):
        await asyncio.wait_for(asyncio.shield(task), grace)
    if not task.done():
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
    elif not task.cancelled():
        task.exception()  # retrieved: a failed P answer is no unhandled error


async def _reply(send: Send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
