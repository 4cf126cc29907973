"""proxy.forward under an ASGI server without the relay sink (the `_pump` path)."""

from __future__ import annotations

import asyncio
from typing import Any

from controlplane.router.proxy import forward
from controlplane.router.upstream import UpstreamPool


async def scripted_engine(tail: bytes) -> tuple[asyncio.Server, str]:
    """An engine that streams two SSE chunks, then writes `tail` and closes."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                     b"transfer-encoding: chunked\r\n\r\n8\r\ndata: 1\n\r\n")  # fmt: skip
        await writer.drain()
        await asyncio.sleep(0.02)
        writer.write(b"8\r\ndata: 2\n\r\n" + tail)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}/v1/chat/completions"


async def run(tail: bytes) -> tuple[list[dict[str, Any]], bool]:
    server, url = await scripted_engine(tail)
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        await asyncio.sleep(3600)  # the client stays
        return {"type": "http.disconnect"}

    pool = UpstreamPool(1.0, 5.0)
    status, _first_at, failed = await forward(pool, url, b"{}", send, [], receive)
    pool.close()
    server.close()
    assert status == 200
    return sent, failed


async def test_stream_goes_through_asgi_send_chunk_by_chunk() -> None:
    sent, failed = await run(b"0\r\n\r\n")
    bodies = [m.get("body") for m in sent[1:]]
    assert sent[0]["type"] == "http.response.start" and not failed
    assert bodies == [b"data: 1\n", b"data: 2\n", b""]
    assert sent[-1].get("more_body", False) is False


async def test_engine_failing_mid_stream_ends_with_an_error_event() -> None:
    sent, failed = await run(b"")  # closes without the terminating chunk
    assert failed
    assert b'"type":"upstream_error"' in sent[-2]["body"] and sent[-1]["body"] == b""
