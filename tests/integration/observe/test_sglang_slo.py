"""The SLO recording rules on a simulated SGLang deployment: a real redis-server, the
simulator with SGLang's metric names and bucket bounds, a router, and a real Prometheus
running glmctl's generated rule files. The TTFT SLI returns a value for the deployment,
equal to what the engine's own histogram says (1 - le="2.0" bucket / count: SGLang has a
bound at the default 2 s objective), and the availability SLI reads the router's outcomes.

No Ray: the pieces start directly (as tests/integration/router does), so it is quick.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from controlplane.engines.sim import SimServer
from controlplane.local.ports import free_port
from controlplane.local.redis_server import LocalRedis
from controlplane.observe import catalog as cat
from controlplane.observe import prometheus as prom
from controlplane.router.registry import register_endpoint
from controlplane.router.server import RouterProcesses
from controlplane.spec import load_topology
from controlplane.spec.models import SloSpec
from tests.integration.observe import promql

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]
REPO = Path(__file__).resolve().parents[3]
TOPOLOGY = REPO / "topologies" / "glm45-air-fp8-h200x1.yaml"
DEPLOYMENT = "sg"
# The same engine scraped a second time as deployment TIGHT, whose TTFT objective (0.3 s)
# lies between SGLang's bounds 0.2 and 0.4: its SLI interpolates inside that bucket.
TIGHT, TIGHT_TTFT = "sg-tight", 0.3
TARGET = {cat.MODEL: "m", cat.REPLICA: "r0", cat.NODE_RANK: "0"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    topo = load_topology(TOPOLOGY)
    redis = LocalRedis.start()
    started: list[Any] = [redis]
    process: subprocess.Popen[bytes] | None = None
    try:
        engine = SimServer.start(topo, flavor="sglang", time_scale=40.0)
        started.append(engine)
        register_endpoint(redis.url, "e0", engine.url, topo.served_model_name, "g", "sglang")
        router = RouterProcesses.start(redis.url, workers=1, policy="round_robin",
                                       scrape_interval=0.3)  # fmt: skip
        started.append(router)
        layout = prom.Layout(tmp_path_factory.mktemp("prometheus"))
        prom.write_targets(layout, [
            prom.ScrapeTarget(engine.url.removeprefix("http://"), cat.JOB_ENGINE,
                              {**TARGET, cat.DEPLOYMENT: DEPLOYMENT}),
            prom.ScrapeTarget(engine.url.removeprefix("http://"), cat.JOB_ENGINE,
                              {**TARGET, cat.DEPLOYMENT: TIGHT}),
            prom.ScrapeTarget(router.url.removeprefix("http://"), cat.JOB_ROUTER,
                              {cat.DEPLOYMENT: DEPLOYMENT}),
        ])  # fmt: skip
        prom.write_rules(layout, {DEPLOYMENT: SloSpec(), TIGHT: SloSpec(ttft_p99=TIGHT_TTFT)})
        port = free_port()
        process = prom.start(layout, port, 1.0, 1.0)
        yield {"prometheus": f"http://127.0.0.1:{port}", "engine": engine.url,
               "router": router.url, "model": topo.served_model_name}  # fmt: skip
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=20)
        for item in reversed(started):
            item.stop()


_query, _wait = promql.query, promql.wait_for  # tests/integration/observe/promql.py


def _chat(router: str, model: str, index: int) -> int:
    body = {"model": model, "messages": [{"role": "user", "content": f"question {index}"}],
            "max_tokens": 16, "stream": index % 2 == 0}  # fmt: skip
    with httpx.stream("POST", f"{router}/v1/chat/completions", json=body, timeout=60) as reply:
        reply.read()
        return reply.status_code


def _engine_sample(text: str, name: str, le: str | None = None) -> float:
    """Sum of `name`'s samples in exposition `text` (only those with `le` when given)."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and (le is None or sample.labels.get("le") == le):
                total += sample.value
    return total


def _sli(url: str, name: str, deployment: str = DEPLOYMENT) -> float:
    query = f'glmctl:slo_{name}_bad:ratio_rate5m{{deployment="{deployment}"}}'
    result = _wait(lambda: _query(url, query), 30, f"{name} SLI")
    assert len(result) == 1, result
    return float(result[0]["value"][1])


@pytest.fixture(scope="module")
def driven(stack: dict[str, Any]) -> dict[str, Any]:
    """A zero sample first (both scraped before traffic), then 48 requests, 8 at a time,
    then one more scrape after the last."""
    url = stack["prometheus"]
    _wait(lambda: len(_query(url, 'up{job=~"glmctl-engine|glmctl-router"} == 1')) == 3, 30,
          "engine and router scraped")  # fmt: skip
    _wait(lambda: _query(url, "sglang:time_to_first_token_seconds_count"), 30, "TTFT count")
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda i: _chat(stack["router"], stack["model"], i), range(48)))
    assert codes.count(200) == 48, codes
    time.sleep(3.0)  # scrapes at 1 s: the final counts are in Prometheus
    return stack


def test_the_engine_exports_sglang_bounds(driven: dict[str, Any]) -> None:
    url = driven["prometheus"]
    assert _query(url, 'sglang:time_to_first_token_seconds_bucket{le="2.0"}')
    assert not _query(url, 'sglang:time_to_first_token_seconds_bucket{le="2.5"}')  # vLLM's
    assert _query(url, 'sglang:inter_token_latency_seconds_bucket{le="0.04"}')
    assert not _query(url, 'sglang:inter_token_latency_seconds_bucket{le="0.05"}')  # vLLM's


def test_ttft_sli_matches_the_engines_histogram(driven: dict[str, Any]) -> None:
    text = httpx.get(f"{driven['engine']}/metrics", timeout=10).text
    name = "sglang:time_to_first_token_seconds"
    count = _engine_sample(text, f"{name}_count")
    good = _engine_sample(text, f"{name}_bucket", "2.0")
    assert count == 48
    bad = _sli(driven["prometheus"], "ttft")
    print(f"TTFT SLI: {bad:.4f} of requests over 2 s ({count - good:.0f} of {count:.0f})")
    assert bad == pytest.approx(1 - good / count, abs=1e-9)


def test_ttft_sli_interpolates_between_sglang_bounds(driven: dict[str, Any]) -> None:
    """Objective 0.3 s: good = le=0.2 + (0.3 - 0.2) / (0.4 - 0.2) of the 0.2-0.4 bucket."""
    text = httpx.get(f"{driven['engine']}/metrics", timeout=10).text
    name = "sglang:time_to_first_token_seconds"
    count = _engine_sample(text, f"{name}_count")
    low, high = (_engine_sample(text, f"{name}_bucket", le) for le in ("0.2", "0.4"))
    good = low + (TIGHT_TTFT - 0.2) / (0.4 - 0.2) * (high - low)
    bad = _sli(driven["prometheus"], "ttft", TIGHT)
    print(f"TTFT SLI at {TIGHT_TTFT} s: {bad:.4f} (le=0.2: {low:.0f}, le=0.4: {high:.0f})")
    assert bad == pytest.approx(1 - good / count, abs=1e-6)


def test_itl_and_availability_slis_return_values(driven: dict[str, Any]) -> None:
    url = driven["prometheus"]
    assert 0.0 <= _sli(url, "itl") <= 1.0
    ok = _query(url, 'glmctl_router_requests_total{outcome="ok"}')
    assert sum(float(r["value"][1]) for r in ok) == 48
    assert _sli(url, "errors") == 0.0
