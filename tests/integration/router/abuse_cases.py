"""Hostile clients and hostile engines for the router abuse test (raw sockets, loopback).

`CASES` are (name, expected outcomes, function(router host, port) -> outcome). An outcome
is the HTTP status the router answered, or `closed` when it closed the connection without
one. `BadEngine` is an HTTP server on loopback whose POST answers are broken in a chosen
way (one port per behaviour); it answers GET /health and /metrics properly so that the
router keeps it registered.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Callable

Outcome = str
CHUNK_CAP = 20 * 1024 * 1024  # a "never-ending" answer stops here (test bound)


def _read_status(sock: socket.socket, timeout: float) -> Outcome:
    """The status code of the first response, or `closed` / `timeout`."""
    sock.settimeout(timeout)
    data = b""
    try:
        while b"\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                return "closed" if not data else "garbled"
            data += chunk
    except TimeoutError:
        return "timeout"
    except ConnectionResetError:
        return "closed"
    parts = data.split(b" ", 2)
    return parts[1].decode() if len(parts) > 1 else "garbled"


def raw(
    payload: list[bytes], pause_s: float = 0.0, timeout: float = 10.0
) -> Callable[[str, int], Outcome]:
    """Send `payload` pieces (with `pause_s` between them), then read one status."""

    def run(host: str, port: int) -> Outcome:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            try:
                for piece in payload:
                    sock.sendall(piece)
                    if pause_s:
                        time.sleep(pause_s)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the router stopped listening mid-way: read what it said
            return _read_status(sock, timeout)

    return run


def post(path: bytes, body: bytes, extra: bytes = b"") -> bytes:
    head = b"POST %s HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n" % path
    return head + extra + b"content-length: %d\r\n\r\n" % len(body) + body


def chat(model: str, **extra: object) -> bytes:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}
    return json.dumps(body).encode()


def slow_head(host: str, port: int) -> Outcome:
    """One byte per second of a request head: cut off at the head timeout."""
    request = post(b"/v1/chat/completions", chat("m"))
    with socket.create_connection((host, port), timeout=30) as sock:
        sock.settimeout(1.0)
        for byte in request:
            try:
                sock.sendall(bytes([byte]))
                if sock.recv(65536, socket.MSG_PEEK):
                    break
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                return "closed"
        return _read_status(sock, 5)


def idle_crowd(count: int) -> Callable[[str, int], Outcome]:
    """`count` connections that send nothing: all closed by the router in bounded time."""

    def run(host: str, port: int) -> Outcome:
        socks = [socket.create_connection((host, port), timeout=10) for _ in range(count)]
        outcomes = set()
        for sock in socks:
            outcomes.add(_read_status(sock, 10))
            sock.close()
        return "+".join(sorted(outcomes))

    return run


def disconnect_mid_stream(model: str) -> Callable[[str, int], Outcome]:
    def run(host: str, port: int) -> Outcome:
        body = chat(model, stream=True, max_tokens=2000, ignore_eos=True)
        with socket.create_connection((host, port), timeout=10) as sock:
            sock.sendall(post(b"/v1/chat/completions", body))
            status = _read_status(sock, 10)
        return f"{status}, then client gone"

    return run


def stream_outcome(model: str) -> Callable[[str, int], Outcome]:
    """A stream from an engine that never stops: the router cuts it with an error event."""

    def run(host: str, port: int) -> Outcome:
        body = chat(model, stream=True)
        with socket.create_connection((host, port), timeout=30) as sock:
            sock.sendall(post(b"/v1/chat/completions", body))
            sock.settimeout(30)
            data = b""
            while chunk := sock.recv(1 << 20):
                data += chunk
                if data.endswith(b"0\r\n\r\n"):
                    break
        status = data.split(b" ", 2)[1].decode() if data.startswith(b"HTTP/") else "garbled"
        ended = b'"type": "upstream_error"' in data or b'"type":"upstream_error"' in data
        return f"{status}+error event" if ended else status

    return run


class BadEngine:
    """Broken engine answers, one behaviour per port; runs its own loop in a thread."""

    BEHAVIOURS = ("malformed", "endless_headers", "endless_json", "endless_sse", "silent",
                  "bad_chunk")  # fmt: skip

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.ports: dict[str, int] = {}
        self.servers: list[asyncio.base_events.Server] = []
        self.writers: set[asyncio.StreamWriter] = set()
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self.thread.start()
        ready.wait(10)

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)

        async def start() -> None:
            for behaviour in self.BEHAVIOURS:
                server = await asyncio.start_server(
                    lambda r, w, b=behaviour: self._serve(b, r, w), "127.0.0.1", 0
                )
                self.servers.append(server)
                self.ports[behaviour] = server.sockets[0].getsockname()[1]

        self.loop.run_until_complete(start())
        ready.set()
        self.loop.run_forever()

    async def _serve(
        self, behaviour: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.writers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                await reader.readexactly(length)
                if head.startswith(b"GET"):
                    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                    await writer.drain()
                    continue
                await self._answer(behaviour, reader, writer)
                return
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            return
        finally:
            self.writers.discard(writer)
            writer.close()

    async def _answer(
        self, behaviour: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        if behaviour == "malformed":
            writer.write(b"HTTP/1.1 two hundred OK\r\n\x00\x01garbage\r\n\r\n")
        elif behaviour == "endless_headers":
            writer.write(b"HTTP/1.1 200 OK\r\n")
            for index in range(CHUNK_CAP // 64):
                writer.write(b"x-h%d: %s\r\n" % (index, b"v" * 50))
                await writer.drain()
        elif behaviour in ("endless_json", "endless_sse"):
            kind = b"text/event-stream" if behaviour == "endless_sse" else b"application/json"
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: %s\r\n" % kind)
            writer.write(b"transfer-encoding: chunked\r\n\r\n")
            event = b'data: {"tok":"aaaa"}\n\n' * 400
            for _ in range(CHUNK_CAP // len(event)):
                writer.write(b"%x\r\n%s\r\n" % (len(event), event))
                await writer.drain()
        elif behaviour == "bad_chunk":
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n")
            writer.write(b"transfer-encoding: chunked\r\n\r\nzz-not-hex\r\nabc\r\n")
        elif behaviour == "silent":
            await asyncio.wait_for(reader.read(), 60)  # until the router hangs up
        await writer.drain()

    def close(self) -> None:
        async def shutdown() -> None:
            for server in self.servers:
                server.close()
            for writer in list(self.writers):
                writer.close()  # every handler's next read or drain ends it
            current = asyncio.current_task()
            tasks = [t for t in asyncio.all_tasks() if t is not current]
            await asyncio.wait(tasks, timeout=5) if tasks else None

        asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
