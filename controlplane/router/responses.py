"""Answers the router writes itself (JSON, OpenAI-style errors) and the guarded body read."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from controlplane.router.proxy import Receive, Send, error_json
from controlplane.router.validation import RequestProblem

CLOSE = (b"connection", b"close")


async def send_json(
    send: Send, status: int, data: Any, extra: list[tuple[bytes, bytes]] | None = None
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


async def send_text(send: Send, text: str, content_type: bytes) -> None:
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", content_type)]}
    )
    await send({"type": "http.response.body", "body": text.encode()})


async def send_error(
    send: Send,
    status: int,
    message: str,
    kind: str = "invalid_request_error",
    retry_after: float | None = None,
    code: str | None = None,
) -> int:
    """An OpenAI-style error body (proxy.error_json); `retry_after` is sent as Retry-After
    (whole seconds, at least 1; the router sends it with 429 and 503); 408 and 413 close
    the connection (the rest of the request was not read)."""
    extra = []
    if retry_after is not None:
        extra.append((b"retry-after", str(max(1, round(retry_after + 0.499))).encode()))
    if status in (408, 413):
        extra.append(CLOSE)
    return await send_json(send, status, error_json(message, status, kind, code), extra)


def content_length(scope: dict[str, Any]) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def read_request_body(
    scope: dict[str, Any], receive: Receive, max_bytes: int, timeout_s: float
) -> bytes:
    """The whole body, or RequestProblem: 413 over `max_bytes` (by Content-Length before
    reading, else as it arrives), 408 when it does not all arrive within `timeout_s`."""
    declared = content_length(scope)
    if declared is not None and declared > max_bytes:
        raise RequestProblem(413, f"request body over {max_bytes} bytes", "request_too_large")
    ready = getattr(getattr(receive, "__self__", None), "body_ready", None)
    if ready is not None and ready():  # router/http_cycle.py: all here, no timer needed
        body: bytes = (await receive()).get("body", b"")
        if len(body) > max_bytes:
            raise RequestProblem(413, f"request body over {max_bytes} bytes", "request_too_large")
        return body
    parts: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                message = await receive()
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > max_bytes:
                    raise RequestProblem(
                        413, f"request body over {max_bytes} bytes", "request_too_large"
                    )
                parts.append(chunk)
                if not message.get("more_body"):
                    break
    except TimeoutError as exc:
        raise RequestProblem(
            408, f"request body did not arrive within {timeout_s:g} s", "request_timeout"
        ) from exc
    return parts[0] if len(parts) == 1 else b"".join(parts)
