"""One request/response on the router's HTTP server (router/http_server.py): ASGI
`receive` and `send`, response framing, and the zero-copy relay sink.

Framing: a response with a Content-Length (given, or known because the first body message
is the last) is sent as is; otherwise chunked (HTTP/1.1) or close-delimited (HTTP/1.0).
The head waits for the first body message and goes out in the same `write`.

Contract for `send`: `RuntimeError` on a second `http.response.start` or a body before
the start (as uvicorn); after the client left, messages are dropped silently.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from controlplane.router.http_server import HttpProtocol

log = logging.getLogger("glmctl.router.http")
_TERMINATOR = b"0\r\n\r\n"
_STATUS_LINES: dict[int, bytes] = {}


class FlowTarget(Protocol):
    """The upstream side of a relay: paused while the client reads slowly, dropped when
    the client leaves."""

    def pause_for_client(self) -> None: ...
    def resume_for_client(self) -> None: ...
    def client_gone(self) -> None: ...


def status_line(status: int) -> bytes:
    line = _STATUS_LINES.get(status)
    if line is None:
        try:
            reason = HTTPStatus(status).phrase.encode()
        except ValueError:
            reason = b""
        line = _STATUS_LINES[status] = b"HTTP/1.1 %d %s\r\n" % (status, reason)
    return line


def head_bytes(status: int, headers: list[tuple[bytes, bytes]], length: int | None) -> bytes:
    """Status line and headers (with Content-Length when `length` is given)."""
    parts = [status_line(status)]
    parts += [b"%s: %s\r\n" % (name, value) for name, value in headers]
    if length is not None:
        parts.append(b"content-length: %d\r\n" % length)
    parts.append(b"\r\n")
    return b"".join(parts)


class Cycle:
    """One request: the app's `receive` / `send` and what the connection needs to know."""

    def __init__(self, conn: HttpProtocol, scope: dict[str, Any], keep_alive: bool) -> None:
        self.conn = conn
        self.scope = scope
        self.keep_alive = keep_alive
        self.http10 = scope["http_version"] == "1.0"
        self.no_body = scope["method"] == "HEAD"
        self.body: list[bytes] = []
        self.buffered = 0
        self.more_body = True
        self.delivered = False
        self.disconnected = False
        self.started = False
        self.head_sent = False
        self.complete = False
        self.chunked = False
        self.status = 200
        self.headers: list[tuple[bytes, bytes]] = []
        self.waiter: asyncio.Future[None] | None = None
        self.drain: asyncio.Future[None] | None = None
        self.flow: FlowTarget | None = None

    # -- from the connection -------------------------------------------------------------
    def body_arrived(self, data: bytes) -> None:
        self.body.append(data)
        self.buffered += len(data)
        self._wake()

    def body_complete(self) -> None:
        self.more_body = False
        self._wake()

    def lost(self) -> None:
        """The client is gone (or the connection refused the request)."""
        if self.disconnected:
            return
        self.disconnected = True
        self.more_body = False
        self._wake()
        self._release_drain()
        if self.flow is not None:
            self.flow.client_gone()

    def pause_writing(self) -> None:
        if self.flow is not None:
            self.flow.pause_for_client()

    def resume_writing(self) -> None:
        self._release_drain()
        if self.flow is not None:
            self.flow.resume_for_client()

    # -- the app -------------------------------------------------------------------------
    def body_ready(self) -> bool:
        """Whether the whole request body has arrived (`receive` will not wait)."""
        return not self.more_body and not self.disconnected and not self.delivered

    async def run(self, app: Callable[..., Awaitable[None]]) -> None:
        try:
            await app(self.scope, self.receive, self.send)
        except Exception:
            log.exception("request to %s failed", self.scope.get("path"))
        finally:
            if not self.complete:
                self._abandon()

    async def receive(self) -> dict[str, Any]:
        while not self.body and self.more_body:
            await self._wait()
        if self.body or not (self.delivered or self.disconnected or self.complete):
            data = self.body[0] if len(self.body) == 1 else b"".join(self.body)
            self.body.clear()
            self.delivered = True  # an empty body is still delivered once
            if self.buffered > 0:
                self.buffered = 0
                self.conn.resume_body()
            return {"type": "http.request", "body": data, "more_body": self.more_body}
        while not self.disconnected and not self.complete:
            await self._wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            if self.started:
                raise RuntimeError("the response already started")
            self.started = True
            self.status = message["status"]
            self.headers = list(message.get("headers", ()))
            return
        if kind != "http.response.body" or not self.started or self.complete:
            raise RuntimeError(f"unexpected ASGI message {kind!r} at this point")
        more = message.get("more_body", False)
        if self.disconnected:
            if not more:
                self._finish()
            return
        self._write(message.get("body", b""), more)
        if not more:
            self._finish()
        elif self.conn.write_paused and not self.disconnected:
            self.drain = asyncio.get_running_loop().create_future()
            await self.drain

    def relay_sink(self, flow: FlowTarget) -> Callable[[bytes], bool]:
        """A function that writes one body piece now (False once the client is gone), for
        a streamed response whose head was sent; `flow` follows the client's pace."""
        self.flow = flow
        if self.conn.write_paused:  # the client was already behind
            flow.pause_for_client()
        transport = self.conn.transport
        assert transport is not None
        chunked = self.chunked

        def write(data: bytes) -> bool:
            if self.disconnected:
                return False
            if chunked:
                transport.write(b"%x\r\n%s\r\n" % (len(data), data))
            else:
                transport.write(data)
            return True

        return write

    # -- internals -----------------------------------------------------------------------
    def _write(self, body: bytes, more: bool) -> None:
        out = b""
        if not self.head_sent:
            out = self._head(body, more)
        if self.no_body:
            body = b""
        if self.chunked:
            if body:
                out += b"%x\r\n%s\r\n" % (len(body), body)
            if not more:
                out += _TERMINATOR
        else:
            out += body
        transport = self.conn.transport
        if out and transport is not None and not transport.is_closing():
            transport.write(out)

    def _head(self, body: bytes, more: bool) -> bytes:
        self.head_sent = True
        headers = self.headers
        length: int | None = None
        declared = False
        for name, value in headers:
            if name == b"content-length":
                declared = True
            elif name == b"connection" and value.lower() == b"close":
                self.keep_alive = False
        if not declared:
            if not more:
                length = len(body)
            elif self.http10:
                self.keep_alive = False  # close-delimited
            else:
                self.chunked = True
                headers = [*headers, (b"transfer-encoding", b"chunked")]
        if not self.keep_alive and not any(n == b"connection" for n, _ in headers):
            headers = [*headers, (b"connection", b"close")]
        return head_bytes(self.status, headers, length)

    def _finish(self) -> None:
        self.complete = True
        self.flow = None
        self._wake()
        # A request body the app did not read to its end leaves bytes in the stream.
        self.conn.response_done(self, self.keep_alive and not self.more_body)

    def _abandon(self) -> None:
        """The app ended without completing its response: 500 if nothing was sent, else
        close the connection (the client sees a truncated response)."""
        if not self.started and not self.disconnected:
            self.started = True
            self.status = 500
            self.headers = [(b"content-type", b"text/plain; charset=utf-8")]
            self.keep_alive = False
            self._write(b"Internal Server Error", False)
        else:
            transport = self.conn.transport
            if transport is not None:
                transport.close()
        self.complete = True
        self.flow = None
        self.conn.response_done(self, False)

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _release_drain(self) -> None:
        drain = self.drain
        if drain is not None and not drain.done():
            drain.set_result(None)
        self.drain = None

    async def _wait(self) -> None:
        self.waiter = asyncio.get_running_loop().create_future()
        try:
            await self.waiter
        finally:
            self.waiter = None
