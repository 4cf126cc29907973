"""The upstream client over TLS (hosted APIs are https://): the request and its extra header
lines arrive through an encrypted, hostname-verified connection; an untrusted certificate
is a failure before the first byte (retried elsewhere), never a silent plain-text fallback."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from pathlib import Path

import pytest

from controlplane.router import upstream
from controlplane.router.upstream import UpstreamError, UpstreamPool
from tests.unit.router.test_upstream import read_request


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for `localhost` and its key (openssl, 1 day)."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)  # fmt: skip
    return cert, key


async def test_https_upstream_gets_the_request_and_its_key_over_tls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = self_signed(tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    seen: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await read_request(reader))
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=server_context)
    port = server.sockets[0].getsockname()[1]
    url = f"https://localhost:{port}/v4/chat/completions"
    pool = UpstreamPool(connect_timeout=5, read_timeout=5)
    try:
        with pytest.raises(UpstreamError):  # not trusted yet: refused, before any byte
            await pool.post(url, b"{}", b"authorization: Bearer sk-x\r\n")
        trusting = ssl.create_default_context(cafile=str(cert))
        monkeypatch.setattr(upstream, "_TLS", [trusting])
        conn = await pool.post(url, b"{}", b"authorization: Bearer sk-x\r\n")
        assert conn.status == 200 and await conn.read() == b"ok"
        pool.release(conn)
    finally:
        pool.close()
        server.close()
    assert len(seen) == 1
    assert seen[0].startswith(b"POST /v4/chat/completions HTTP/1.1\r\nhost: localhost:")
    assert b"\r\nauthorization: Bearer sk-x\r\n" in seen[0] and seen[0].endswith(b"{}")
