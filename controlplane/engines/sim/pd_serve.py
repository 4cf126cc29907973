"""The request flows of a PD replica (engines/sim/pd.py has the hand-off and its protocol).

Prefill role: the request is run for one token (its prompt prefilled), its KV published
under its key; SGLang answers once the decode side pulled the KV (or after the bootstrap
timeout, with SGLang's 500), vLLM answers at once with `kv_transfer_params`.
Decode role: the KV is pulled from the prefill replica the request names, then the request
decodes as a colocated one whose prompt is cached. When the pull fails the request fails as
the engine fails it: SGLang aborts with status 500 (disaggregation/decode.py
`prepare_abort(..., HTTPStatus.INTERNAL_SERVER_ERROR)`: a streamed `data: {"error": ...}`
event, entrypoints/openai/serving_chat.py, or a 500 JSON body, http_server.py's
HTTPException handler); vLLM finishes it with reason "error" under the default
`kv_load_failure_policy: fail` (v1/core/sched/scheduler.py), which its OpenAI server turns
into GenerationError "Internal server error" (500, or the same as an SSE error event).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import orjson

from controlplane.engines.sim import responses
from controlplane.engines.sim.pd import Handoffs, PdConfig, PdStats, TransferFailed, pull_kv
from controlplane.engines.sim.requests import ApiError, Choice, Request
from controlplane.engines.sim.scheduler import Mailbox
from controlplane.spec import EngineKind

if TYPE_CHECKING:
    import aiohttp

    from controlplane.engines.sim.app import Receive, Send, SimApp

_SSE = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache")]
_JSON = [(b"content-type", b"application/json")]


class PdSide:
    """One replica's PD state: its config, queues and (prefill) hand-offs."""

    def __init__(self, config: PdConfig, host: str, port: int) -> None:
        self.config = config
        self.stats = PdStats()
        self.handoffs = Handoffs(config, self.stats)
        self.host = host
        self.port = port
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        """The decode side's client for KV pulls (kept-alive connections to the prefills)."""
        import aiohttp

        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    @property
    def engine_type(self) -> str:
        return self.config.role


def sglang_bootstrap(data: dict[str, Any]) -> tuple[str, int, int]:
    """(bootstrap_host, bootstrap_port, bootstrap_room) of an SGLang PD request."""
    host, port, room = (data.get(k) for k in ("bootstrap_host", "bootstrap_port", "bootstrap_room"))
    if not isinstance(room, int) or isinstance(room, bool):
        raise ApiError(400, "A disaggregated SGLang server needs `bootstrap_room` (an integer)"
                       " in the request: send it through a PD router.")  # fmt: skip
    if not isinstance(host, str) or not isinstance(port, int):
        raise ApiError(400, "`bootstrap_host` and `bootstrap_port` must name the prefill server.")
    return host, port, room


async def generate(app: SimApp, req: Request, data: dict[str, Any], send: Send,
                   receive: Receive) -> bool:  # fmt: skip
    """Serve `req` in the replica's PD role; False when it is no PD request (vLLM without
    `kv_transfer_params`: a kv_both engine serves it colocated)."""
    side = app.pd
    assert side is not None
    vllm = side.config.flavor is EngineKind.VLLM
    params = data.get("kv_transfer_params") if vllm else None
    if vllm and not isinstance(params, dict):
        return False
    if side.config.role == "prefill":
        if vllm and not params.get("do_remote_decode"):  # type: ignore[union-attr]
            return False
        await _prefill(app, side, req, data, send)
        return True
    if vllm:
        assert isinstance(params, dict)
        if not params.get("do_remote_prefill"):
            return False
        host, port = str(params.get("remote_host", "")), int(params.get("remote_port") or 0)
        key = str(params.get("remote_request_id", ""))
    else:
        host, port, room = sglang_bootstrap(data)
        key = str(room)
    await _decode(app, side, req, (host, port, key), send, receive)
    return True


def _one_token(req: Request) -> Request:
    """The prefill replica's share: the prompt and one output token."""
    words = [c.reasoning + c.content for c in req.choices]
    choices = [Choice(w[:1] or ["."], [], finish_reason="length") for w in words]
    return replace(req, choices=choices)


async def _prefill(app: SimApp, side: PdSide, req: Request, data: dict[str, Any],
                   send: Send) -> None:  # fmt: skip
    vllm = side.config.flavor is EngineKind.VLLM
    key = uuid.uuid4().hex if vllm else str(sglang_bootstrap(data)[2])
    short = _one_token(req)
    item = side.handoffs.entry(key)
    stats = side.stats
    stats.bootstrap_queue += not vllm
    mailbox = Mailbox()
    seqs = app.submit(short, mailbox, hold_kv=True)

    def release() -> None:
        for seq in seqs:
            app.scheduler.release_held(seq)

    try:
        remaining = len(seqs)
        while remaining:
            remaining -= sum(1 for *_, finish in await mailbox.get() if finish is not None)
        side.handoffs.ready(key, short.prompt_tokens, release)
        # vLLM: the KV waits for the decode side's read until its lease runs out.
        asyncio.get_running_loop().call_later(side.config.timeout_s, side.handoffs.forget, key)
        if not vllm:
            await asyncio.wait_for(item.done.wait(), side.config.timeout_s)
    except TimeoutError:
        side.handoffs.forget(key)
        stats.failed_bootstraps += 1
        message = (
            f"Request {key} timed out after {side.config.timeout_s:.1f}s in KVPoll.Bootstrapping"
        )
        await _fail(send, req.stream, message, side.config.flavor, started=False)
        return
    finally:
        stats.bootstrap_queue -= not vllm
    rid = f"{'chatcmpl' if req.chat else 'cmpl'}-{uuid.uuid4().hex}"
    if vllm or not short.stream:
        body = orjson.loads(responses.full_response(short, rid, int(time.time())))
        if vllm:
            body["kv_transfer_params"] = _vllm_params(side, key, short.prompt_tokens)
        await _reply(send, 200, orjson.dumps(body), _JSON)
        return
    writer = responses.ChunkWriter(short, rid, int(time.time()))
    await send({"type": "http.response.start", "status": 200, "headers": _SSE})
    parts = [writer.opening()]
    parts += [writer.tokens(i, 0, 1, "length") for i in range(len(short.choices))]
    body = b"".join(parts) + writer.closing()
    await send({"type": "http.response.body", "body": body})


def _vllm_params(side: PdSide, key: str, tokens: int) -> dict[str, Any]:
    """What NixlConnector's `request_finished` returns on P (nixl/pull_scheduler.py)."""
    blocks = -(-tokens // 16)
    return {
        "do_remote_prefill": True,
        "do_remote_decode": False,
        "remote_block_ids": [list(range(blocks))],
        "remote_engine_id": side.config.engine_id,
        "remote_request_id": key,
        "remote_host": side.host,
        "remote_port": side.port,  # the simulator's transfer side channel is its HTTP port
        "tp_size": 1,
        "dcp_size": 1,
        "pp_size": 1,
        "remote_num_tokens": tokens,
        "remote_blocks_expiry_time": None,
    }


async def _decode(app: SimApp, side: PdSide, req: Request, source: tuple[str, int, str],
                  send: Send, receive: Receive) -> None:  # fmt: skip
    host, port, key = source
    if req.stream:  # both engines start the SSE response before the first token
        await send({"type": "http.response.start", "status": 200, "headers": _SSE})
    try:
        await pull_kv(side.session(), side.config, side.stats, (host, port), key)
    except TransferFailed as exc:
        # vLLM counts handshake failures as failed transfers too (nixl/stats.py).
        if exc.bootstrap and side.config.flavor is EngineKind.SGLANG:
            side.stats.failed_bootstraps += 1
        else:
            side.stats.failed_transfers += 1
        message = f"KVTransferError(bootstrap_room={key}): {exc}"
        if side.config.flavor is EngineKind.SGLANG and exc.bootstrap:
            message = (
                f"Decode handshake failed for request bootstrap_room={key} with exception {message}"
            )
        await _fail(send, req.stream, message, side.config.flavor, started=True)
        return
    await app.serve(req, receive, send, transferred=True, started=req.stream)


async def _fail(send: Send, stream: bool, message: str, flavor: EngineKind,
                started: bool) -> None:  # fmt: skip
    """Fail a request with status 500 the way `flavor` does (the module docstring)."""
    vllm = flavor is EngineKind.VLLM
    if vllm:
        message = "Internal server error"  # GenerationError's message; the cause is logged
    if not stream:
        kind = "InternalServerError" if vllm else "500"
        await _reply(send, 500, responses.error_body(500, message, kind), _JSON)
        return
    kind = "InternalServerError" if vllm else "INTERNAL_SERVER_ERROR"
    error = {"object": "error", "message": message, "type": kind, "param": None, "code": 500}
    if not started:
        await send({"type": "http.response.start", "status": 200, "headers": _SSE})
    body = b"data: " + orjson.dumps({"error": error}) + b"\n\ndata: [DONE]\n\n"
    await send({"type": "http.response.body", "body": body})


async def _reply(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
