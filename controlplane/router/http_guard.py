"""uvicorn's httptools protocol with limits on the request head.

uvicorn 0.54 bounds neither the number nor the size of request headers on its httptools
path, and arms no timer before a connection's first request (its keep-alive timer starts
after a response), so a client sending one byte per second, or nothing, holds a
connection and its buffers for ever. This subclass answers 431 (and closes) past
`max_headers` headers or `max_header_bytes` of request line plus headers, and 408 (and
closes) when a request head is not complete within `head_timeout_s` of its first byte
(or of the connection opening). Bodies are bounded in the app (router/responses.py).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_SLACK = 64 * 1024  # one read of a request that is mostly body
_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


class _HeadRefused(Exception):
    pass


class GuardedHttpProtocol(HttpToolsProtocol):
    """Set the class attributes through `guarded_protocol(...)`."""

    max_headers = 100
    max_header_bytes = 16 * 1024
    head_timeout_s = 30.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_open = True
        self._head_bytes = 0
        self._header_count = 0
        self._head_timer: asyncio.TimerHandle | None = None
        self._over_limit = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._head_open:
            self._head_bytes += len(data)
        super().data_received(data)  # a callback's _HeadRefused ends in send_400_response
        # httptools buffers a header line until it ends, without a callback: bound the
        # bytes fed while a head stays open (a body's bytes count only once it completed).
        if self._head_open and self._head_bytes > self.max_header_bytes + _SLACK:
            self._over_limit = True
            self._refuse(431)

    def send_400_response(self, msg: str) -> None:
        if self._over_limit:
            self._refuse(431)
        else:
            super().send_400_response(msg)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_open = True
        self._head_bytes = 0
        self._header_count = 0
        if self._head_timer is None:
            self._arm()

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self.max_headers:
            self._over_limit = True
            raise _HeadRefused
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._head_open = False
        self._disarm()
        super().on_headers_complete()

    # -- internals -----------------------------------------------------------------------
    def _count(self, size: int) -> None:
        self._head_size = getattr(self, "_head_size", 0) + size
        if self._head_size > self.max_header_bytes:
            self._over_limit = True
            raise _HeadRefused

    def _arm(self) -> None:
        self._head_size = 0
        self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_timed_out)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._head_open and not self.transport.is_closing():
            self._refuse(408)

    def _refuse(self, status: int) -> None:
        self._disarm()
        if self.transport.is_closing():
            return
        body = b'{"error":{"message":"%s","type":"invalid_request_error","code":%d}}' % (
            _REASONS[status].lower(),
            status,
        )
        head = b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\n" % (status, _REASONS[status])
        head += b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body)
        self.transport.write(head + body)
        self.transport.close()


def guarded_protocol(
    max_headers: int, max_header_bytes: int, head_timeout_s: float
) -> type[GuardedHttpProtocol]:
    """A protocol class with these limits, for `uvicorn.Config(http=...)`."""
    return type(
        "GuardedHttpProtocolWithLimits",
        (GuardedHttpProtocol,),
        {
            "max_headers": max_headers,
            "max_header_bytes": max_header_bytes,
            "head_timeout_s": head_timeout_s,
        },
    )
