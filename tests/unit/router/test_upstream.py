"""The lean upstream client against scripted in-process loopback servers (raw bytes)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from controlplane.router.upstream import UpstreamError, UpstreamPool

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
Serve = Callable[[Handler], Awaitable[str]]
SSE_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"


async def read_request(reader: asyncio.StreamReader) -> bytes:
    """One request's head + body (content-length framed, as the client sends)."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return head + await reader.readexactly(length)


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    servers: list[asyncio.Server] = []

    async def start(handler: Handler) -> str:
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1/chat/completions"

    yield start
    for server in servers:
        server.close()


async def read_all(pool: UpstreamPool, url: str, body: bytes) -> tuple[int, bytes]:
    conn = await pool.post(url, body)
    parts = []
    while chunk := await conn.read():
        parts.append(chunk)
    pool.release(conn)
    return conn.status, b"".join(parts)


async def test_content_length_answer_and_the_request_it_sent(serve: Serve) -> None:
    seen: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await read_request(reader))
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                     b"content-length: 11\r\n\r\n{\"ok\":true}")  # fmt: skip
        await writer.drain()

    url = await serve(handler)
    pool = UpstreamPool(1.0, 5.0)
    status, data = await read_all(pool, url, b'{"model":"m"}')
    assert (status, data) == (200, b'{"ok":true}')
    head, _, body = seen[0].partition(b"\r\n\r\n")
    assert head.startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")
    assert b"content-type: application/json" in head and body == b'{"model":"m"}'
    pool.close()


async def test_chunked_stream_is_dechunked_and_the_connection_reused(serve: Serve) -> None:
    connections = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        for _ in range(3):
            await read_request(reader)
            writer.write(SSE_HEAD + b"transfer-encoding: chunked\r\n\r\n")
            for event in (b"data: 1\n\n", b"data: [DONE]\n\n"):
                writer.write(b"%x\r\n%s\r\n" % (len(event), event))
                await writer.drain()
            writer.write(b"0\r\n\r\n")
            await writer.drain()

    url = await serve(handler)
    pool = UpstreamPool(1.0, 5.0)
    for _ in range(3):
        status, data = await read_all(pool, url, b"{}")
        assert (status, data) == (200, b"data: 1\n\ndata: [DONE]\n\n")
    assert connections == 1
    pool.close()


async def test_close_delimited_body_ends_at_eof(serve: Serve) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(SSE_HEAD + b"\r\ndata: a\n\n")
        await writer.drain()
        writer.close()

    pool = UpstreamPool(1.0, 5.0)
    assert await read_all(pool, await serve(handler), b"{}") == (200, b"data: a\n\n")


async def test_a_stale_kept_alive_connection_is_retried_on_a_fresh_one(serve: Serve) -> None:
    connections = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        await writer.drain()
        if connections == 1:
            await read_request(reader)  # takes the second request, then drops it unanswered
        writer.close()

    url = await serve(handler)
    pool = UpstreamPool(1.0, 5.0)
    assert await read_all(pool, url, b"{}") == (200, b"ok")
    assert await read_all(pool, url, b"{}") == (200, b"ok")
    assert connections == 2
    pool.close()


async def test_closed_or_refused_connection_raises_upstream_error(serve: Serve) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    pool = UpstreamPool(1.0, 5.0)
    with pytest.raises(UpstreamError):  # closed before any byte, on a fresh connection
        await pool.post(await serve(handler), b"{}")
    with pytest.raises(UpstreamError, match="cannot connect"):
        await pool.post("http://127.0.0.1:1/v1/completions", b"{}")  # nothing listens


async def test_mid_stream_close_and_malformed_answers_raise(serve: Serve) -> None:
    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(SSE_HEAD + b"content-length: 100\r\n\r\ndata: 1\n\n")
        await writer.drain()
        writer.close()

    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"NOT HTTP AT ALL\r\n\r\n")
        await writer.drain()

    pool = UpstreamPool(1.0, 5.0)
    conn = await pool.post(await serve(cut), b"{}")
    assert await conn.read() == b"data: 1\n\n"
    with pytest.raises(UpstreamError):
        await conn.read()
    pool.release(conn)  # a failed connection is closed, never pooled
    with pytest.raises(UpstreamError):
        await pool.post(await serve(garbage), b"{}")


async def test_silence_longer_than_the_read_timeout_raises(serve: Serve) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(2)

    pool = UpstreamPool(1.0, 0.2)
    with pytest.raises(UpstreamError, match="silent"):
        await pool.post(await serve(silent), b"{}")


async def test_relay_writes_chunks_as_they_arrive_and_leaves_the_end_for_read(
    serve: Serve,
) -> None:
    go_on = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(SSE_HEAD + b"transfer-encoding: chunked\r\n\r\n5\r\nfirst\r\n")
        await writer.drain()
        await go_on.wait()
        for event in (b"a", b"bb"):
            writer.write(b"%x\r\n%s\r\n" % (len(event), event))
            await writer.drain()
            await asyncio.sleep(0.02)  # separate packets: each is relayed on arrival
        writer.write(b"4\r\nlast\r\n0\r\n\r\n")  # the end arrives with the last bytes
        await writer.drain()

    pool = UpstreamPool(1.0, 5.0)
    conn = await pool.post(await serve(handler), b"{}")
    assert await conn.read() == b"first"
    relayed: list[bytes] = []

    def sink(data: bytes) -> bool:
        relayed.append(data)
        return True

    go_on.set()
    await conn.relay(sink)
    assert relayed == [b"a", b"bb"]
    assert await conn.read() == b"last" and await conn.read() == b""
    pool.release(conn)
    pool.close()


async def test_relay_to_a_gone_client_drops_the_engine_connection(serve: Serve) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(SSE_HEAD + b"transfer-encoding: chunked\r\n\r\n1\r\na\r\n")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(b"1\r\nb\r\n")
        await writer.drain()
        await asyncio.sleep(5)

    pool = UpstreamPool(1.0, 5.0)
    conn = await pool.post(await serve(handler), b"{}")
    assert await conn.read() == b"a"
    await asyncio.wait_for(conn.relay(lambda data: False), 2)
    assert conn.closed
    pool.close()


async def test_a_relay_paused_for_a_slow_client_reads_no_more_until_resumed(
    serve: Serve,
) -> None:
    connections = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        for _ in range(2):
            await read_request(reader)
            writer.write(SSE_HEAD + b"transfer-encoding: chunked\r\n\r\n1\r\na\r\n")
            await writer.drain()
            for event in (b"b", b"c"):
                await asyncio.sleep(0.03)
                writer.write(b"1\r\n%s\r\n" % event)
                await writer.drain()
            writer.write(b"0\r\n\r\n")
            await writer.drain()

    pool = UpstreamPool(1.0, 5.0)
    url = await serve(handler)
    conn = await pool.post(url, b"{}")
    assert await conn.read() == b"a"
    relayed: list[bytes] = []

    def sink(data: bytes) -> bool:
        relayed.append(data)
        conn.pause_for_client()  # the client's buffer filled up
        return True

    relay = asyncio.ensure_future(conn.relay(sink))
    await asyncio.sleep(0.2)
    assert relayed == [b"b"] and not relay.done()  # "c" and the end wait in the kernel
    conn.resume_for_client()
    await asyncio.wait_for(relay, 2)
    assert await conn.read() == b"c"
    conn.pause_for_client()  # paused as the answer ended: released, it must read again
    pool.release(conn)
    status, data = await asyncio.wait_for(read_all(pool, url, b"{}"), 2)
    assert (status, data, connections) == (200, b"abc", 1)  # the same kept-alive connection
    pool.close()
