"""The router under hostile HTTP, on loopback, bounded in count and time (~30 s).

Malformed request lines and headers, oversized and truncated bodies, invalid JSON and
UTF-8, chunked-encoding errors, a client sending one byte per second, a crowd of idle
connections, a client leaving mid-stream, and engines answering garbage, endless headers,
endless bodies or nothing. Meanwhile a well-formed client keeps going. The router must not
crash, must answer each case with its status (or close), must keep the well-formed
requests' p99 within 2x of a quiet run, and its memory must stay bounded. Prints a table.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from controlplane.local.redis_server import LocalRedis
from controlplane.router.limits import RequestLimits
from controlplane.router.registry import register_endpoint
from controlplane.spec import Topology
from tests.integration.router import abuse_cases as ab
from tests.integration.router.conftest import Cluster

pytestmark = pytest.mark.integration
Factory = Callable[[LocalRedis, Topology], Cluster]
LIMITS = RequestLimits(
    max_body_bytes=64 * 1024,
    max_headers=50,
    max_header_bytes=8 * 1024,
    client_idle_timeout=2.0,
    client_total_timeout=6.0,
    max_response_bytes=1024 * 1024,
)
WELL_FORMED = 120  # requests per phase
MAX_RSS_GROWTH = 64 * 1024 * 1024
CHAT = b"/v1/chat/completions"


def cases(model: str) -> list[tuple[str, set[str], Callable[[str, int], str]]]:
    good = ab.chat(model, max_tokens=2)
    return [
        ("malformed request line", {"400"}, ab.raw([b"GARBAGE\r\n\r\n"])),
        ("unknown HTTP version", {"400", "505"}, ab.raw([b"GET /health HTTP/7.3\r\n\r\n"])),
        ("NUL byte in a header", {"400"}, ab.raw([b"GET /health HTTP/1.1\r\nh: a\x00b\r\n\r\n"])),
        ("200 headers", {"431"},
         ab.raw([ab.post(CHAT, good, b"".join(b"x-%d: 1\r\n" % i for i in range(200)))])),
        ("one 20 KiB header", {"431"},
         ab.raw([ab.post(CHAT, good, b"x: " + b"a" * 20480 + b"\r\n")])),
        ("20 KiB URL", {"431"}, ab.raw([b"GET /" + b"u" * 20480 + b" HTTP/1.1\r\n\r\n"])),
        ("endless headers (2 MiB)", {"431", "closed"},
         ab.raw([b"GET /health HTTP/1.1\r\n"] + [b"x-a: " + b"b" * 1000 + b"\r\n"] * 2000)),
        ("Content-Length 10 MiB", {"413"},
         ab.raw([b"POST /v1/chat/completions HTTP/1.1\r\ncontent-length: 10485760\r\n\r\n{"])),
        ("chunked body 200 KiB", {"413"},
         ab.raw([b"POST /v1/chat/completions HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n"]
                + [b"2800\r\n" + b"a" * 10240 + b"\r\n"] * 20 + [b"0\r\n\r\n"])),
        ("truncated body", {"408"},
         ab.raw([b"POST /v1/chat/completions HTTP/1.1\r\ncontent-length: 1000\r\n\r\n{\"mo"])),
        ("invalid JSON", {"400"}, ab.raw([ab.post(CHAT, b'{"model": "x", "messages": [')])),
        ("invalid UTF-8", {"400"},
         ab.raw([ab.post(CHAT, b'{"model": "\xff\xfe", "messages": [{"role": "\xc3"}]}')])),
        ("JSON array body", {"400"}, ab.raw([ab.post(CHAT, b"[1, 2, 3]")])),
        ("messages not a list", {"400"}, ab.raw([ab.post(CHAT, b'{"model": "%s", "messages": 5}'
                                                         % model.encode())])),
        ("max_tokens -1", {"400"}, ab.raw([ab.post(CHAT, ab.chat(model, max_tokens=-1))])),
        ("chunked-encoding error", {"400"},
         ab.raw([b"POST /v1/chat/completions HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n"
                 b"zz\r\nabc\r\n"])),
        ("unknown route", {"404"}, ab.raw([b"GET /admin HTTP/1.1\r\nhost: x\r\n\r\n"])),
        ("slow client, 1 byte/s", {"408"}, ab.slow_head),
        ("300 idle connections", {"408"}, ab.idle_crowd(300)),
        ("client gone mid-stream", {"200, then client gone"}, ab.disconnect_mid_stream(model)),
        ("engine: malformed answer", {"502", "503"},
         ab.raw([ab.post(CHAT, ab.chat("bad-malformed"))])),
        ("engine: endless headers", {"502", "503"},
         ab.raw([ab.post(CHAT, ab.chat("bad-endless_headers"))])),
        ("engine: endless JSON body", {"502", "503"},
         ab.raw([ab.post(CHAT, ab.chat("bad-endless_json"))])),
        ("engine: endless SSE stream", {"200+error event"}, ab.stream_outcome("bad-endless_sse")),
        ("engine: bad chunk size", {"502", "503"},
         ab.raw([ab.post(CHAT, ab.chat("bad-bad_chunk"))])),
        ("engine: never answers", {"504"}, ab.raw([ab.post(CHAT, ab.chat("bad-silent"))])),
    ]  # fmt: skip


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


WELL_FORMED_CLIENT = """
import json, sys, time, httpx
url, model, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
body = {"model": model, "messages": [{"role": "user", "content": "hello"}], "max_tokens": 2}
latencies = []
with httpx.Client(base_url=url, timeout=30) as client:
    for _ in range(count):
        began = time.perf_counter()
        response = client.post("/v1/chat/completions", json=body)
        latencies.append(time.perf_counter() - began)
        assert response.status_code == 200, response.text
print(json.dumps(latencies))
"""


def well_formed(url: str, model: str, count: int) -> list[float]:
    """Latencies of `count` sequential requests, from a separate process (so the abusive
    clients' threads in this process do not slow the measuring client)."""
    done = subprocess.run([sys.executable, "-c", WELL_FORMED_CLIENT, url, model, str(count)],
                          capture_output=True, text=True, timeout=180)  # fmt: skip
    assert done.returncode == 0, done.stderr
    latencies: list[float] = json.loads(done.stdout)
    return latencies


def p99(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100)[98]


def test_router_survives_hostile_clients_and_engines(
    redis_server: LocalRedis, topo: Topology, cluster_factory: Factory
) -> None:
    cluster = cluster_factory(redis_server, topo)
    cluster.engine("good", namespace="abuse", time_scale=20.0)
    bad = ab.BadEngine()
    try:
        for behaviour, port in bad.ports.items():
            register_endpoint(redis_server.url, f"bad-{behaviour}", f"http://127.0.0.1:{port}",
                              f"bad-{behaviour}", "bad", "vllm", "abuse")  # fmt: skip
        url = cluster.router("round_robin", namespace="abuse", limits=LIMITS)
        router_pid = cluster.routers[-1].process.pid  # type: ignore[union-attr]
        host, port = "127.0.0.1", int(url.rsplit(":", 1)[1])
        time.sleep(0.5)
        well_formed(url, cluster.model, 20)  # warm up
        quiet = well_formed(url, cluster.model, WELL_FORMED)
        rss_before = rss_bytes(router_pid)
        loaded: list[float] = []
        results: dict[str, tuple[str, float]] = {}

        def timed(name: str, run: Callable[[str, int], str]) -> None:
            began = time.monotonic()
            try:
                outcome = run(host, port)
            except OSError as exc:
                outcome = f"client error {type(exc).__name__}"
            results[name] = (outcome, time.monotonic() - began)

        began = time.monotonic()
        load = threading.Thread(
            target=lambda: loaded.extend(well_formed(url, cluster.model, WELL_FORMED))
        )
        load.start()
        with ThreadPoolExecutor(max_workers=8) as pool:
            for name, _expected, run in cases(cluster.model):
                pool.submit(timed, name, run)
        load.join(120)
        abuse_s = time.monotonic() - began
        time.sleep(1.0)
        rss_after = rss_bytes(router_pid)
        alive = cluster.routers[-1].process.poll() is None  # type: ignore[union-attr]
        health = httpx.get(url + "/health", timeout=5).status_code
    finally:
        bad.close()

    rows = []
    failures = []
    for name, expected, _run in cases(cluster.model):
        outcome, seconds = results.get(name, ("missing", 0.0))
        ok = outcome in expected
        rows.append(f"| {name:28} | {'/'.join(sorted(expected)):22} | {outcome:22} |"
                    f" {seconds * 1000:7.0f} | {'ok' if ok else 'FAIL'} |")  # fmt: skip
        if not ok:
            failures.append(name)
    ratio = p99(loaded) / p99(quiet)
    print("\n| case | expected | outcome | ms | |\n|---|---|---|---:|---|")
    print("\n".join(rows))
    print(f"\nwell-formed p99: quiet {p99(quiet) * 1000:.1f} ms, under abuse"
          f" {p99(loaded) * 1000:.1f} ms (ratio {ratio:.2f}, limit 2.0);"
          f" {len(loaded)} requests in {abuse_s:.1f} s")  # fmt: skip
    print(f"router RSS: {rss_before / 2**20:.1f} MiB before, {rss_after / 2**20:.1f} MiB after")
    assert alive and health == 200, "the router died or stopped answering"
    assert not failures, f"wrong outcome for: {failures}"
    assert len(loaded) == WELL_FORMED
    assert ratio <= 2.0
    assert rss_after - rss_before < MAX_RSS_GROWTH
