"""One upstream attempt: forward the body untouched, stream SSE bytes through as they come.

Contract: `UpstreamFailed` means nothing was sent to the client yet (the caller may retry on
another endpoint). The response start is sent only once the first body bytes arrived, so
an engine that accepts and then dies before its first token is still retried. A failure
after that ends the stream with an SSE `error` event.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from controlplane.router.upstream import Connection, UpstreamError, UpstreamPool

Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]


class UpstreamFailed(Exception):
    """The endpoint failed before the first byte reached the client (`status`: the HTTP
    status that counted as a failure, 0 for a network failure)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


def error_json(
    message: str, status: int, kind: str = "invalid_request_error", code: str | None = None
) -> dict[str, Any]:
    """OpenAI's error shape; `code` is OpenAI's error code (`model_not_found`), else the
    HTTP status."""
    return {"error": {"message": message, "type": kind, "code": status if code is None else code}}


def sse_error_event(message: str) -> bytes:
    """The event that ends a stream whose engine failed mid-way (OpenAI error shape)."""
    payload = {"error": {"message": message, "type": "upstream_error", "code": 502}}
    return b"data: " + orjson.dumps(payload) + b"\n\n"


async def forward(
    pool: UpstreamPool,
    url: str,
    body: bytes,
    send: Send,
    extra_headers: list[tuple[bytes, bytes]],
    receive: Receive,
    upstream_headers: bytes = b"",
    retry_statuses: tuple[int, ...] = (),
) -> tuple[int, float, bool]:
    """Proxy one request; returns (status, perf_counter at the first byte, failed mid-stream).
    Answers >= 500 or in `retry_statuses` raise UpstreamFailed (the caller tries elsewhere)."""
    try:
        conn = await pool.post(url, body, upstream_headers)
    except UpstreamError as exc:
        raise UpstreamFailed(str(exc)) from exc
    try:
        if conn.status >= 500 or conn.status in retry_statuses:
            raise UpstreamFailed(f"HTTP {conn.status}", conn.status)
        content_type = conn.header(b"content-type") or b"application/json"
        headers = [(b"content-type", content_type), *extra_headers]
        encoding = conn.header(b"content-encoding")
        if encoding:  # never decompressed: bytes go out as they came
            headers.append((b"content-encoding", encoding))
        if content_type.startswith(b"text/event-stream"):
            return await _stream(conn, send, headers, receive)
        data = await _read_all(conn)
        headers.append((b"content-length", b"%d" % len(data)))
        await send({"type": "http.response.start", "status": conn.status, "headers": headers})
        await send({"type": "http.response.body", "body": data})
        return conn.status, time.perf_counter(), False
    finally:
        pool.release(conn)


async def _read_all(conn: Connection) -> bytes:
    parts = []
    try:
        while chunk := await conn.read():
            parts.append(chunk)
    except UpstreamError as exc:
        raise UpstreamFailed(str(exc)) from exc
    return b"".join(parts)


async def _stream(
    conn: Connection,
    send: Send,
    headers: list[tuple[bytes, bytes]],
    receive: Receive,
) -> tuple[int, float, bool]:
    try:
        first = await conn.read()
    except UpstreamError as exc:
        raise UpstreamFailed(str(exc)) from exc
    if not first:
        raise UpstreamFailed("empty stream")
    first_byte_at = time.perf_counter()
    headers.append((b"cache-control", b"no-cache"))
    await send({"type": "http.response.start", "status": conn.status, "headers": headers})
    await send({"type": "http.response.body", "body": first, "more_body": True})
    relay_sink = getattr(getattr(send, "__self__", None), "relay_sink", None)
    if relay_sink is not None:  # the router's own server (router/http_cycle.py)
        return conn.status, first_byte_at, await _relay(conn, send, relay_sink)
    return conn.status, first_byte_at, await _pump(conn, send, receive)


async def _relay(conn: Connection, send: Send, relay_sink: Callable[..., Any]) -> bool:
    """Zero-copy: the engine's chunks are written to the client from the upstream
    protocol; this task wakes once at the end. Returns whether the engine failed mid-way."""
    cycle = send.__self__  # type: ignore[attr-defined]
    await conn.relay(relay_sink(conn))
    if cycle.disconnected:
        conn.close()
        await send({"type": "http.response.body", "body": b""})
        return False
    tail, failed = b"", False
    try:
        while chunk := await conn.read():
            tail += chunk
    except UpstreamError as exc:
        failed = True
        tail += sse_error_event(f"engine failed mid-stream: {exc}")
    await send({"type": "http.response.body", "body": tail})
    return failed


async def _pump(conn: Connection, send: Send, receive: Receive) -> bool:
    """Chunk by chunk through ASGI `send` (any other ASGI server)."""
    gone = ClientGone(send, receive)
    failed = False
    try:
        while not gone() and (chunk := await conn.read()):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
    except UpstreamError as exc:
        failed = True
        event = sse_error_event(f"engine failed mid-stream: {exc}")
        await send({"type": "http.response.body", "body": event, "more_body": True})
    finally:
        if gone():
            conn.close()  # drop the upstream connection: the engine aborts the request
        gone.cancel()
    await send({"type": "http.response.body", "body": b""})
    return failed


class ClientGone:
    """Whether the client disconnected, asked once per streamed chunk.

    For `_pump` (an ASGI server other than the router's own). The request body is read, so
    the next `receive()` is the client's disconnect. uvicorn's send is a bound method of its
    request cycle, whose `disconnected` flag tells the same without a task per request;
    other servers get a task waiting on `receive()`.
    """

    __slots__ = ("_cycle", "_task")

    def __init__(self, send: Send, receive: Receive) -> None:
        cycle = getattr(send, "__self__", None)
        if isinstance(getattr(cycle, "disconnected", None), bool):
            self._cycle: Any = cycle
            self._task: asyncio.Future[Any] | None = None
        else:
            self._cycle = None
            self._task = asyncio.ensure_future(receive())

    def __call__(self) -> bool:
        if self._task is not None:
            return self._task.done()
        return bool(self._cycle.disconnected)

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()


async def read_body(receive: Receive) -> bytes:
    """The whole request body from ASGI messages."""
    message = await receive()
    body: bytes = message.get("body", b"")
    if not message.get("more_body"):
        return body
    parts = [body]
    while message.get("more_body"):
        message = await receive()
        parts.append(message.get("body", b""))
    return b"".join(parts)


def request_headers(scope: dict[str, Any], wanted: tuple[bytes, ...]) -> dict[bytes, str]:
    """The `wanted` (lower-case) request headers that are present."""
    found: dict[bytes, str] = {}
    for name, value in scope["headers"]:
        if name in wanted:
            found[name] = value.decode("latin-1")
    return found
