"""The router's HTTP/1.1 server (router/http_server.py) on loopback, driven with raw bytes."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

import pytest

from controlplane.router.http_server import ServerLimits, serve

App = Callable[[dict[str, Any], Any, Any], Coroutine[Any, Any, None]]
Start = Callable[..., Awaitable[int]]


async def echo_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Non-lifespan scopes: answer the body back; `/stream`: three chunks; `/boom`: raise."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["path"] == "/boom":
        raise RuntimeError("boom")
    await send({"type": "http.response.start", "status": 200, "headers": [(b"x-a", b"1")]})
    if scope["path"] == "/stream":
        for part in (b"one", b"two"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b"end"})
        return
    await send({"type": "http.response.body", "body": scope["method"].encode() + b":" + body})


@pytest.fixture
async def start() -> AsyncIterator[Start]:
    stops: list[tuple[asyncio.Event, asyncio.Task[None]]] = []

    async def run(app: App = echo_app, **limits: Any) -> int:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        stop = asyncio.Event()
        task = asyncio.create_task(serve(app, [sock], ServerLimits(**limits), stop))
        stops.append((stop, task))
        await asyncio.sleep(0.05)
        return int(sock.getsockname()[1])

    yield run
    for stop, task in stops:
        stop.set()
        await asyncio.wait_for(task, 10)


async def exchange(port: int, data: bytes, until: bytes = b"", wait: float = 2.0) -> bytes:
    """Send `data`; read until `until` is in the answer, the server closes, or `wait` s."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    answer = b""
    try:
        async with asyncio.timeout(wait):
            while not (until and until in answer):
                chunk = await reader.read(65536)
                if not chunk:
                    break
                answer += chunk
    except (TimeoutError, ConnectionResetError):  # reset: the server closed on unread bytes
        pass
    writer.close()
    return answer


def post(path: bytes, body: bytes, extra: bytes = b"") -> bytes:
    return b"POST %s HTTP/1.1\r\nhost: x\r\n%scontent-length: %d\r\n\r\n%s" % (
        path,
        extra,
        len(body),
        body,
    )


async def test_keep_alive_answers_with_content_length_in_order(start: Start) -> None:
    port = await start()
    # two requests in one packet (pipelined): answered in order on one connection
    answer = await exchange(port, post(b"/a", b"first") + post(b"/b", b"second"), b"second")
    first, _, rest = answer.partition(b"POST:first")
    assert first.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"content-length: 10\r\n" in first and b"x-a: 1\r\n" in first
    assert rest.endswith(b"POST:second") and b"content-length: 11" in rest


async def test_streamed_answer_is_chunked_and_ends_with_the_terminator(start: Start) -> None:
    port = await start()
    answer = await exchange(port, post(b"/stream", b""), b"0\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in head and b"content-length" not in head
    assert body == b"3\r\none\r\n3\r\ntwo\r\n3\r\nend\r\n0\r\n\r\n"


async def test_http10_stream_is_close_delimited(start: Start) -> None:
    port = await start()
    answer = await exchange(port, b"GET /stream HTTP/1.0\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"connection: close" in head and body == b"onetwoend"


async def test_chunked_request_body_arrives_whole(start: Start) -> None:
    port = await start()
    head = b"POST /x HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n"
    request = head + b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    assert (await exchange(port, request, b"abcde")).endswith(b"POST:abcde")


async def test_head_limits_answer_431_and_400(start: Start) -> None:
    port = await start(max_headers=5, max_header_bytes=1024)
    many = b"".join(b"x-%d: 1\r\n" % i for i in range(6))
    assert (await exchange(port, post(b"/a", b"", many))).startswith(b"HTTP/1.1 431 ")
    big = b"x: " + b"a" * 2000 + b"\r\n"
    assert (await exchange(port, post(b"/a", b"", big))).startswith(b"HTTP/1.1 431 ")
    endless = b"GET / HTTP/1.1\r\nx: " + b"a" * 200_000
    assert (await exchange(port, endless))[:13] in (b"HTTP/1.1 431 ", b"")  # or just closed
    assert (await exchange(port, b"GARBAGE\r\n\r\n")).startswith(b"HTTP/1.1 400 ")
    # under the limits, the same server answers
    assert (await exchange(port, post(b"/a", b"ok"), b"POST:ok")).endswith(b"POST:ok")


async def test_a_head_not_complete_in_time_gets_408_and_idle_connections_close(
    start: Start,
) -> None:
    port = await start(head_timeout_s=0.2, keep_alive_s=0.2)
    assert (await exchange(port, b"")).startswith(b"HTTP/1.1 408 ")
    assert (await exchange(port, b"POST /a HTTP/1.1\r\nhost:")).startswith(b"HTTP/1.1 408 ")
    answer = await exchange(port, post(b"/a", b"x"))  # answered, then closed when idle
    assert answer.endswith(b"POST:x") and answer.count(b"HTTP/1.1") == 1


async def test_connections_over_the_limit_get_503(start: Start) -> None:
    port = await start(max_connections=1)
    _held_reader, held = await asyncio.open_connection("127.0.0.1", port)
    await asyncio.sleep(0.05)
    assert (await exchange(port, post(b"/a", b""))).startswith(b"HTTP/1.1 503 ")
    held.close()


async def test_an_app_that_raises_before_answering_gives_500(start: Start) -> None:
    port = await start()
    assert (await exchange(port, post(b"/boom", b""))).startswith(b"HTTP/1.1 500 ")


async def test_client_gone_reaches_the_app_and_the_relay_target() -> None:
    seen: list[str] = []

    class Flow:
        def pause_for_client(self) -> None:
            seen.append("pause")

        def resume_for_client(self) -> None:
            seen.append("resume")

        def client_gone(self) -> None:
            seen.append("gone")

    done = asyncio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await echo_app(scope, receive, send)
            return
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"a", "more_body": True})
        write = send.__self__.relay_sink(Flow())
        assert write(b"relayed")
        seen.append((await receive())["type"])
        seen.append(f"write after gone: {write(b'x')}")
        done.set()

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    stop = asyncio.Event()
    server = asyncio.create_task(serve(app, [sock], ServerLimits(), stop))
    await asyncio.sleep(0.05)
    answer = await exchange(sock.getsockname()[1], post(b"/a", b""), b"relayed\r\n")
    await asyncio.wait_for(done.wait(), 5)
    assert answer.endswith(b"1\r\na\r\n7\r\nrelayed\r\n")
    assert seen == ["gone", "http.disconnect", "write after gone: False"]
    stop.set()
    await asyncio.wait_for(server, 10)


async def test_a_connection_in_use_outlives_its_first_keep_alive_deadline(start: Start) -> None:
    port = await start(head_timeout_s=0.3, keep_alive_s=0.3)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for index in range(5):  # 5 x 0.15 s: past the first deadline, never idle for 0.3 s
        writer.write(post(b"/a", b"%d" % index))
        answer = b""
        while not answer.endswith(b"POST:%d" % index):
            chunk = await asyncio.wait_for(reader.read(65536), 2)
            assert chunk, f"closed before answer {index}"
            answer += chunk
        await asyncio.sleep(0.15)
    await asyncio.sleep(0.5)
    assert await asyncio.wait_for(reader.read(65536), 2) == b""  # idle: closed, no 408
    writer.close()
