"""The router's own HTTP/1.1 server: asyncio Protocol + httptools, serving the ASGI subset
the router app uses (http and lifespan scopes), with the request-head limits built in.

Why not uvicorn: profiled at 32 streams (py-spy, docs/guides/router-performance.md), its
request cycle, ASGI bookkeeping and one `write` per message were about a quarter of the
router's CPU. This server keeps the app's ASGI interface (so the app runs unchanged under
any ASGI server) and adds two things uvicorn cannot give:
- the response head is held until the first body message and written with it (one
  `write`), and a final body message carries the chunked terminator in the same `write`;
- `Cycle.relay_sink()`: the proxy (router/proxy.py) hands the upstream connection a sink,
  and streamed chunks go from the engine's socket to the client's in the upstream
  protocol's `data_received`, without waking the request's task per chunk.

Limits (formerly router/http_guard.py on uvicorn): 431 (and close) past `max_headers`
headers or `max_header_bytes` of request line plus headers; 408 (and close) when a request
head is not complete within `head_timeout_s` of the connection opening or of the previous
response ending; 400 on a malformed request; 503 past `max_connections` connections.
Bodies are bounded in the app (router/responses.py). Idle kept-alive connections close
after `keep_alive_s`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, cast

import httptools

from controlplane.router.http_cycle import Cycle, head_bytes

log = logging.getLogger("glmctl.router.http")
App = Callable[[dict[str, Any], Any, Any], Coroutine[Any, Any, None]]
_SLACK = 64 * 1024  # one read of a request that is mostly body
_BODY_HIGH_WATER = 512 * 1024  # buffered request body before reading pauses
HEAD, IDLE = "head", "idle"  # what a connection's deadline is for


@dataclass(frozen=True, slots=True)
class ServerLimits:
    max_headers: int = 100
    max_header_bytes: int = 16 * 1024
    head_timeout_s: float = 30.0
    keep_alive_s: float = 30.0
    max_connections: int = 8192


class ServerState:
    """What every connection of one server shares: the app, limits, open connections."""

    def __init__(self, app: App, limits: ServerLimits) -> None:
        self.app = app
        self.limits = limits
        self.connections: set[HttpProtocol] = set()
        self.tasks: set[asyncio.Task[None]] = set()


class HttpProtocol(asyncio.Protocol):
    """One client connection: parses requests, runs one app task per request in order."""

    def __init__(self, shared: ServerState, loop: asyncio.AbstractEventLoop) -> None:
        self.shared = shared
        self.limits = shared.limits
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.cycle: Cycle | None = None  # the request whose response is being written
        self.pending: deque[Cycle] = deque()  # pipelined requests waiting their turn
        self.reading: Cycle | None = None  # the request whose body is being parsed
        self.timer: asyncio.TimerHandle | None = None
        self.deadline = 0.0  # loop time when `waiting_for` runs out
        self.waiting_for = ""  # HEAD, IDLE or "" (no deadline)
        self.head_open = False
        self.head_fed = 0
        self.head_size = 0
        self.header_count = 0
        self.over_limit = False
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.write_paused = False

    # -- asyncio.Protocol ----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        if len(self.shared.connections) >= self.limits.max_connections:
            self._refuse(503, b"Service Unavailable")
            return
        self.shared.connections.add(self)
        self._expect(HEAD, self.limits.head_timeout_s)

    def connection_lost(self, exc: Exception | None) -> None:
        self.shared.connections.discard(self)
        self.waiting_for = ""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        for cycle in (self.cycle, self.reading, *self.pending):
            if cycle is not None:
                cycle.lost()
        self.pending.clear()

    def data_received(self, data: bytes) -> None:
        if self.head_open or self.reading is None:
            self.head_fed += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._refuse(400, b"Bad Request")
        except httptools.HttpParserError:
            if self.over_limit:
                self._refuse(431, b"Request Header Fields Too Large")
            else:
                self._refuse(400, b"Bad Request")
            return
        # httptools buffers a header line until it ends, without a callback: bound the
        # bytes fed while a head stays open.
        if self.head_open and self.head_fed > self.limits.max_header_bytes + _SLACK:
            self.over_limit = True
            self._refuse(431, b"Request Header Fields Too Large")

    def pause_writing(self) -> None:
        self.write_paused = True
        if self.cycle is not None:
            self.cycle.pause_writing()

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.cycle is not None:
            self.cycle.resume_writing()

    # -- httptools callbacks -------------------------------------------------------------
    def on_message_begin(self) -> None:
        self.head_open = True
        self.head_size = 0
        self.header_count = 0
        self.url = b""
        self.headers = []
        if self.waiting_for != HEAD:  # a kept-alive connection wakes up
            self._expect(HEAD, self.limits.head_timeout_s)

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.header_count += 1
        if self.header_count > self.limits.max_headers:
            self.over_limit = True
            raise ValueError("too many headers")
        self._count(len(name) + len(value) + 4)
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        self.head_open = False
        self.head_fed = 0
        self.waiting_for = ""
        parser = self.parser
        path, _, query = self.url.partition(b"?")
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": parser.get_http_version(),
            "method": parser.get_method().decode("ascii"),
            "scheme": "http",
            "path": path.decode("latin-1"),
            "raw_path": path,
            "query_string": query,
            "headers": self.headers,
            "client": self.transport.get_extra_info("peername") if self.transport else None,
        }
        assert self.transport is not None
        cycle = Cycle(self, scope, parser.should_keep_alive())
        self.reading = cycle
        if self.cycle is None:
            self._start(cycle)
        else:
            self.pending.append(cycle)

    def on_body(self, body: bytes) -> None:
        cycle = self.reading
        if cycle is not None:
            cycle.body_arrived(body)
            if cycle.buffered > _BODY_HIGH_WATER and self.transport is not None:
                self.transport.pause_reading()

    def on_message_complete(self) -> None:
        cycle = self.reading
        if cycle is not None:
            cycle.body_complete()
        self.reading = None

    # -- request cycles ------------------------------------------------------------------
    def _start(self, cycle: Cycle) -> None:
        self.cycle = cycle
        task = self.loop.create_task(cycle.run(self.shared.app))
        self.shared.tasks.add(task)
        task.add_done_callback(self.shared.tasks.discard)

    def response_done(self, cycle: Cycle, keep_alive: bool) -> None:
        """Called by a cycle once its response is complete (or abandoned)."""
        if self.cycle is not cycle:
            return
        self.cycle = None
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if not keep_alive:
            transport.close()
            return
        if self.pending:
            self._start(self.pending.popleft())
        elif self.head_open:
            self._expect(HEAD, self.limits.head_timeout_s)
        else:
            self._expect(IDLE, self.limits.keep_alive_s)

    def resume_body(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    # -- limits --------------------------------------------------------------------------
    def _count(self, size: int) -> None:
        self.head_size += size
        if self.head_size > self.limits.max_header_bytes:
            self.over_limit = True
            raise ValueError("request head too large")

    def _expect(self, what: str, seconds: float) -> None:
        """A deadline for HEAD or IDLE. One timer per connection, re-armed only when it
        fires early: a deadline moved per request costs no timer cancel and re-arm."""
        self.waiting_for = what
        self.deadline = self.loop.time() + seconds
        if self.timer is None:
            self.timer = self.loop.call_at(self.deadline, self._deadline_passed)

    def _deadline_passed(self) -> None:
        self.timer = None
        if not self.waiting_for:
            return
        if self.loop.time() < self.deadline:
            self.timer = self.loop.call_at(self.deadline, self._deadline_passed)
            return
        if self.waiting_for == HEAD and self.cycle is None:
            self._refuse(408, b"Request Timeout")
        elif self.waiting_for == IDLE and self.cycle is None and not self.head_open:
            self.waiting_for = ""
            if self.transport is not None:
                self.transport.close()

    def _refuse(self, status: int, reason: bytes) -> None:
        """Answer `status` (unless a response already started) and close."""
        self.waiting_for = ""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        cycle = self.cycle
        if cycle is None or not cycle.started:
            if cycle is not None:
                cycle.lost()  # its app sees a disconnect; its answer is dropped
            body = b'{"error":{"message":"%s","type":"invalid_request_error","code":%d}}' % (
                reason.lower(),
                status,
            )
            headers = [(b"content-type", b"application/json"), (b"connection", b"close")]
            transport.write(head_bytes(status, headers, len(body)) + body)
        transport.close()


async def serve(
    app: App, sockets: list[Any], limits: ServerLimits, shutdown: asyncio.Event
) -> None:
    """Run `app` on `sockets` (listening): lifespan startup, serve until `shutdown` is set,
    stop accepting, let requests in flight finish (up to 5 s), lifespan shutdown."""
    loop = asyncio.get_running_loop()
    lifespan = Lifespan(app)
    await lifespan.startup()
    shared = ServerState(app, limits)
    servers = [
        await loop.create_server(lambda: HttpProtocol(shared, loop), sock=sock, backlog=2048)
        for sock in sockets
    ]
    try:
        await shutdown.wait()
    finally:
        for server in servers:
            server.close()
        for conn in list(shared.connections):
            if conn.cycle is None and conn.transport is not None:
                conn.transport.close()
        if shared.tasks:
            await asyncio.wait(list(shared.tasks), timeout=5)
        for task in list(shared.tasks):
            task.cancel()
        for conn in list(shared.connections):
            if conn.transport is not None:
                conn.transport.close()
        await lifespan.shutdown()


class Lifespan:
    """The ASGI lifespan protocol, driven from the server."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None

    async def startup(self) -> None:
        self.task = asyncio.get_running_loop().create_task(
            self.app({"type": "lifespan"}, self.inbox.get, self._send)
        )
        await self.inbox.put({"type": "lifespan.startup"})
        await self._expect("lifespan.startup.complete")

    async def shutdown(self) -> None:
        await self.inbox.put({"type": "lifespan.shutdown"})
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._expect("lifespan.shutdown.complete"), 10)

    async def _send(self, message: dict[str, Any]) -> None:
        await self.outbox.put(message)

    async def _expect(self, kind: str) -> None:
        getter = asyncio.ensure_future(self.outbox.get())
        assert self.task is not None
        done, _ = await asyncio.wait({getter, self.task}, return_when=asyncio.FIRST_COMPLETED)
        if getter not in done:
            getter.cancel()
            error = self.task.exception()
            raise RuntimeError(f"the app ended during {kind}: {error!r}")
        message = getter.result()
        if message["type"] != kind:
            raise RuntimeError(f"the app answered {message['type']} to {kind}")
