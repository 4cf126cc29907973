"""The simulated engine's HTTP API as a raw ASGI app (no framework: it must stay cheap).

Routes: POST /v1/chat/completions, /v1/completions; GET /v1/models, /health, /metrics,
/version, SGLang's /get_model_info, /model_info, /get_server_info, /server_info,
/health_generate, /sim/stats (scheduler lag and token counts, for benchmarks) and
/sim/ttft?start=K and /sim/itl?start=K (every TTFT or inter-token gap from the K-th on,
simulated seconds, for load-test checks and sweeps).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from controlplane.engines.sim import responses
from controlplane.engines.sim.metrics import KvBlocks, iteration_stats, render
from controlplane.engines.sim.requests import ApiError, Limits, Request, parse_request
from controlplane.engines.sim.scheduler import Mailbox, Scheduler, Sequence
from controlplane.engines.sim.tokens import block_hashes
from controlplane.spec import EngineKind

if TYPE_CHECKING:
    from controlplane.engines.sim.kv_events import KvEventPublisher
    from controlplane.engines.sim.pd_serve import PdSide

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_JSON = [(b"content-type", b"application/json")]
_SSE = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache")]
_TEXT = [(b"content-type", b"text/plain; version=0.0.4; charset=utf-8")]


@dataclass(frozen=True)
class EngineInfo:
    flavor: EngineKind
    limits: Limits
    version: str
    topology: str


class SimApp:
    """ASGI callable; owns the scheduler task (started at lifespan startup or first use)."""

    def __init__(
        self,
        scheduler: Scheduler,
        info: EngineInfo,
        api_key: str | None = None,
        stats_wait_s: float = 0.0,
        kv_events: KvEventPublisher | None = None,
    ) -> None:
        """`api_key`: require `Authorization: Bearer <api_key>` on /v1/ routes, as a hosted
        API does (the simulator then stands in for one); None: open, like vLLM/SGLang.
        `stats_wait_s`: TensorRT-LLM's /metrics long poll (0: none)."""
        self.scheduler = scheduler
        self.info = info
        self._authorization = f"Bearer {api_key}".encode() if api_key else None
        self.stats_wait_s = stats_wait_s
        self._stats_armed = False  # a request arrived since the last long poll ran dry
        self._task: asyncio.Task[None] | None = None
        self._counter = 0
        self._open = 0  # generation requests whose response has not ended
        self._created = int(time.time())
        self._stats_read = 0  # the last step TensorRT-LLM's `/metrics` handed out
        self.kv_events = kv_events  # KV-event publisher (`--kv-events-config`), or None
        self.pd: PdSide | None = None  # a PD pool's replica (`--pd-role`, engines/sim/pd.py)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self.scheduler.run())
            if self.kv_events is not None:
                self.kv_events.start()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.kv_events is not None:
            await self.kv_events.stop()
        if self.pd is not None:
            await self.pd.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        self.start()
        path, method = scope["path"], scope["method"]
        if self._authorization and path.startswith("/v1/") and not self._authorized(scope):
            body = responses.error_body(401, "Incorrect API key provided.", "invalid_api_key")
            await _reply(send, 401, body)
            return
        if path == "/sim/pd/kv" and self.pd is not None:  # the KV hand-off (pd.py)
            query = scope.get("query_string", b"").decode(errors="replace")
            await self.pd.handoffs.serve(query.partition("key=")[2].split("&")[0], send)
            return
        if path in ("/sim/ttft", "/sim/itl"):
            await self._sample_log(path[5:], scope.get("query_string", b""), send)
            return
        if method == "POST" and path in ("/v1/chat/completions", "/v1/completions"):
            await self._generate(path == "/v1/chat/completions", receive, send)
        elif method in ("GET", "HEAD"):
            await self._get(path, send)
        else:
            await _reply(send, 405, b'{"detail":"Method Not Allowed"}')

    def _authorized(self, scope: Scope) -> bool:
        for name, value in scope["headers"]:
            if name == b"authorization":
                return bool(hmac.compare_digest(value, self._authorization or b""))
        return False

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _get(self, path: str, send: Send) -> None:
        info = self.info
        if path in ("/health", "/health_generate", "/ping"):
            await _reply(send, 200, b"")
        elif path == "/metrics" and info.flavor is EngineKind.TRTLLM:
            await _reply(send, 200, orjson.dumps(await self._iteration_stats()))
        elif path == "/metrics":
            text = self._render()
            await _reply(send, 200, text.encode(), _TEXT)
        elif path == "/v1/models":
            await _reply(send, 200, orjson.dumps(self._models()))
        elif path in ("/get_model_info", "/model_info"):
            name = info.limits.served_model_name
            body = {"model_path": name, "tokenizer_path": None, "is_generation": True}
            await _reply(send, 200, orjson.dumps(body))
        elif path in ("/get_server_info", "/server_info"):
            await _reply(send, 200, orjson.dumps(self._server_info()))
        elif path == "/version":
            await _reply(send, 200, orjson.dumps({"version": info.version}))
        elif path == "/sim/stats":
            stats = {**self.scheduler.stats_json(), "open_requests": self._open}
            await _reply(send, 200, orjson.dumps(stats))
        else:
            await _reply(send, 404, b'{"detail":"Not Found"}')

    async def _sample_log(self, kind: str, query: bytes, send: Send) -> None:
        start = 0
        for pair in query.decode(errors="replace").split("&"):
            key, _, value = pair.partition("=")
            if key == "start" and value.isdigit():
                start = int(value)
        metrics = self.scheduler.metrics
        log = metrics.ttft_log if kind == "ttft" else metrics.itl_log
        body = {"count": len(log), "start": start, f"{kind}_s": log[start:]}
        await _reply(send, 200, orjson.dumps(body))

    async def _iteration_stats(self) -> list[dict[str, object]]:
        """TensorRT-LLM's `/metrics`: the iterations since the last read, drained by the
        read. With `stats_wait_s`, as trtllm-serve 1.2 does it (openai_server.py
        `get_stats_async(2)`, executor/result.py `IterationResult`): keep collecting until
        `stats_wait_s` pass without a new iteration, then answer `[]` at once until the next
        request arrives; before the first request, `[]`. One entry per read pass (the real
        list holds every iteration; readers use the newest, router/engine_metrics.py)."""
        entries = self._take_iteration()
        if self.stats_wait_s <= 0:
            return entries
        if not self._stats_armed:
            return []
        loop = asyncio.get_running_loop()
        quiet_since = loop.time()
        while loop.time() - quiet_since < self.stats_wait_s:
            await asyncio.sleep(0.05)
            new = self._take_iteration()
            if new:
                entries = new  # the newest is what readers use
                quiet_since = loop.time()
        self._stats_armed = False
        return entries

    def _take_iteration(self) -> list[dict[str, object]]:
        sched = self.scheduler
        step = sched.stats.steps
        if step == self._stats_read:
            return []
        self._stats_read = step
        kv = KvBlocks(sched.kv.total_blocks, sched.kv.used_blocks, sched.config.block_tokens)
        return [iteration_stats(step, sched.gauges(), kv, sched.config.max_num_seqs, sched.metrics)]

    def _models(self) -> dict[str, Any]:
        name = self.info.limits.served_model_name
        if self.info.flavor is EngineKind.TRTLLM:  # serve/openai_protocol.py `ModelCard`
            card = {"id": name, "object": "model", "created": self._created}
            return {"object": "list", "data": [{**card, "owned_by": "tensorrt_llm"}]}
        model = {
            "id": name,
            "object": "model",
            "created": self._created,
            "owned_by": self.info.flavor.value,
            "root": name,
            "parent": None,
            "max_model_len": self.info.limits.context_length,
        }
        return {"object": "list", "data": [model]}

    def _server_info(self) -> dict[str, Any]:
        cfg = self.scheduler.config
        return {
            "served_model_name": self.info.limits.served_model_name,
            "context_length": self.info.limits.context_length,
            "max_running_requests": cfg.max_num_seqs,
            "max_total_num_tokens": cfg.kv_token_capacity,
            "chunked_prefill_size": cfg.chunk_tokens,
            "time_scale": cfg.time_scale,
            "topology": self.info.topology,
            "simulated": True,
            "version": self.info.version,
        }

    async def _generate(self, chat: bool, receive: Receive, send: Send) -> None:
        body = await _read_body(receive)
        try:
            try:
                data = orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                raise ApiError(400, f"The request body is not valid JSON: {exc}.") from None
            self._counter += 1
            self._stats_armed = True  # trtllm-serve: a submitted request re-arms the stats
            req = parse_request(data, chat, self.info.limits, self._counter)
            total = req.prompt_tokens + max(c.total_tokens for c in req.choices)
            if not self.scheduler.fits_ever(total):
                capacity = self.scheduler.config.kv_token_capacity
                raise ApiError(400, f"The request needs {total} tokens of KV cache but the"
                               f" engine holds {capacity}.")  # fmt: skip
        except ApiError as err:
            await _reply(send, err.status, responses.error_body(err.status, err.message, err.kind))
            return
        if self.pd is not None:
            from controlplane.engines.sim import pd_serve

            try:
                if await pd_serve.generate(self, req, data, send, receive):
                    return
            except ApiError as err:  # a PD request missing its fields: nothing sent yet
                body = responses.error_body(err.status, err.message, err.kind)
                await _reply(send, err.status, body)
                return
        await self.serve(req, receive, send)

    def _render(self) -> str:
        info, pd = self.info, self.pd
        extra = None
        if pd is not None:
            from controlplane.engines.sim.pd import render_pd

            def extra(model: str, engine_type: str) -> list[str]:
                return render_pd(info.flavor, pd.stats, model, engine_type)

        engine_type = pd.engine_type if pd else "unified"
        sched = self.scheduler
        name = info.limits.served_model_name
        return render(info.flavor, name, sched.metrics, sched.gauges(), engine_type, extra)

    async def serve(
        self, req: Request, receive: Receive, send: Send, transferred: bool = False,
        started: bool = False,
    ) -> None:  # fmt: skip
        """Run `req` and answer it; `transferred`: its prompt KV came from a prefill
        replica; `started`: the SSE response start was sent already."""
        mailbox = Mailbox()
        seqs = self.submit(req, mailbox, transferred)
        watcher = asyncio.get_running_loop().create_task(_watch_disconnect(receive))

        def client_gone(_: object) -> None:
            for seq in seqs:
                if seq.generated < seq.output_tokens and not seq.aborted:
                    self.scheduler.abort(seq)
                    # Wake the response loop: an aborted sequence never finishes by itself.
                    mailbox.put((seq.index, seq.generated, seq.generated, "abort"))

        watcher.add_done_callback(client_gone)
        self._open += 1
        try:
            rid = f"{'chatcmpl' if req.chat else 'cmpl'}-{uuid.uuid4().hex}"
            if req.stream:
                await self._stream(req, rid, mailbox, send, started)
            else:
                await _drain(mailbox, len(seqs))
                await _reply(send, 200, responses.full_response(req, rid, int(time.time())))
        except asyncio.CancelledError:
            client_gone(None)  # uvicorn's shutdown grace ran out: end the request quietly
        finally:
            self._open -= 1
            watcher.remove_done_callback(client_gone)
            if not watcher.done():
                watcher.cancel()

    def submit(
        self, req: Request, mailbox: Mailbox, transferred: bool = False, hold_kv: bool = False
    ) -> list[Sequence]:
        if self.kv_events is not None:  # vLLM's hashes, so the published ones match
            hashes = self.kv_events.block_hashes(req.prompt_words)
        else:
            hashes = block_hashes(req.prompt_words, self.scheduler.config.block_tokens)
        seqs = []
        for i, choice in enumerate(req.choices):
            seq = Sequence(i, req.prompt_tokens, max(1, choice.total_tokens), hashes,
                           mailbox, choice.finish_reason, stream=req.stream,
                           transferred=transferred, hold_kv=hold_kv)  # fmt: skip
            self.scheduler.submit(seq)
            seqs.append(seq)
        return seqs

    async def _stream(
        self, req: Request, rid: str, mailbox: Mailbox, send: Send, started: bool = False
    ) -> None:
        writer = responses.ChunkWriter(req, rid, int(time.time()))
        if not started:
            await send({"type": "http.response.start", "status": 200, "headers": _SSE})
        # Like vLLM, the role chunk leaves with the first token, so first byte = first token.
        parts = [writer.opening()]
        remaining = len(req.choices)
        while remaining:
            for index, lo, hi, finish in await mailbox.get():
                parts.append(writer.tokens(index, lo, hi, finish))
                remaining -= finish is not None
            await send({"type": "http.response.body", "body": b"".join(parts), "more_body": True})
            parts = []
        await send({"type": "http.response.body", "body": writer.closing(), "more_body": False})


async def _drain(mailbox: Mailbox, choices: int) -> None:
    remaining = choices
    while remaining:
        remaining -= sum(1 for *_, finish in await mailbox.get() if finish is not None)


async def _watch_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _reply(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] = _JSON
) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
