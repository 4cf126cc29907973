"""The SLO recording rules on a simulated SGLang deployment: a real redis-server, the
simulator with SGLang's metric names and bucket bounds, a router, and a real Prometheus
running glmctl's generated rule files. The TTFT SLI returns a value for the deployment,
equal to what the engine's own histogram says (1 - le="2.0" bucket / count: SGLang has a
bound at the default 2 s objective), and the availability SLI reads the router's outcomes.

No Ray: the pieces start directly (as tests/integration/router does), so it is quick.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from controlplane.engines.sim import SimServer
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
    try:
        engine = SimServer.start(topo, flavor="sglang", time_scale=40.0)
        started.append(engine)
        register_endpoint(redis.url, "e0", engine.url, topo.served_model_name, "g", "sglang")
        router = RouterProcesses.start(redis.url, workers=1, policy="round_robin",
                                       scrape_interval=0.3)  # fmt: skip
        started.append(router)
        targets = [
            prom.ScrapeTarget(engine.url.removeprefix("http://"), cat.JOB_ENGINE,
                              {**TARGET, cat.DEPLOYMENT: DEPLOYMENT}),
            prom.ScrapeTarget(engine.url.removeprefix("http://"), cat.JOB_ENGINE,
                              {**TARGET, cat.DEPLOYMENT: TIGHT}),
            prom.ScrapeTarget(router.url.removeprefix("http://"), cat.JOB_ROUTER,
                              {cat.DEPLOYMENT: DEPLOYMENT}),
        ]  # fmt: skip
        slos = {DEPLOYMENT: SloSpec(), TIGHT: SloSpec(ttft_p99=TIGHT_TTFT)}
        layout = prom.Layout(tmp_path_factory.mktemp("prometheus"))
        with promql.running(layout, targets, slos) as url:
            yield {"prometheus": url, "engine": engine.url, "router": router.url,
                   "model": topo.served_model_name}  # fmt: skip
    finally:
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


def _kinds(result: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {
        (r["metric"].get(cat.DEPLOYMENT, ""), r["metric"].get("is_streaming", "")) for r in result
    }


@pytest.fixture(scope="module")
def driven(stack: dict[str, Any]) -> dict[str, Any]:
    """One streamed and one plain request first: SGLang's series carry `is_streaming` and
    appear only once a request of that kind has finished (sglang 0.5.23
    observability/metrics_collector.py labelnames [..., "is_streaming"]), so both are
    scraped before the measured traffic; then 48 requests, 8 at a time, then one more
    scrape after the last. `before` is the engine's exposition between the two."""
    url = stack["prometheus"]
    _wait(lambda: len(_query(url, 'up{job=~"glmctl-engine|glmctl-router"} == 1')) == 3, 30,
          "engine and router scraped")  # fmt: skip
    assert [_chat(stack["router"], stack["model"], i) for i in (0, 1)] == [200, 200]
    want = {(d, k) for d in (DEPLOYMENT, TIGHT) for k in ("true", "false")}  # 2 targets
    _wait(lambda: _kinds(_query(url, "sglang:time_to_first_token_seconds_count")) == want, 30,
          "TTFT count of both kinds on both targets")  # fmt: skip
    time.sleep(1.5)  # the scrape Prometheus just stored is the window's first sample
    before = httpx.get(f"{stack['engine']}/metrics", timeout=10).text
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda i: _chat(stack["router"], stack["model"], i), range(48)))
    assert codes.count(200) == 48, codes
    time.sleep(3.0)  # scrapes at 1 s: the final counts are in Prometheus
    return {**stack, "before": before}


def _engine_delta(driven: dict[str, Any], name: str, le: str | None = None) -> float:
    """`name`'s increase on the engine over the measured traffic."""
    text = httpx.get(f"{driven['engine']}/metrics", timeout=10).text
    return _engine_sample(text, name, le) - _engine_sample(driven["before"], name, le)


def test_the_engine_exports_sglang_bounds(driven: dict[str, Any]) -> None:
    url = driven["prometheus"]
    assert _query(url, 'sglang:time_to_first_token_seconds_bucket{le="2.0"}')
    assert not _query(url, 'sglang:time_to_first_token_seconds_bucket{le="2.5"}')  # vLLM's
    assert _query(url, 'sglang:inter_token_latency_seconds_bucket{le="0.04"}')
    assert not _query(url, 'sglang:inter_token_latency_seconds_bucket{le="0.05"}')  # vLLM's


def _increase_at(url: str, ts: float, series: str, deployment: str, le: str | None = None) -> float:
    """Prometheus's own 5m increase of `series` (summed over `is_streaming`) at time `ts`."""
    le_match = f',le="{le}"' if le else ""
    expr = f'sum(increase({series}{{deployment="{deployment}"{le_match}}}[5m]))'
    return float(_query(url, expr, ts)[0]["value"][1])


def _sli_checked(driven: dict[str, Any], deployment: str, lo: str, hi: str | None,
                 share: float) -> tuple[float, float]:  # fmt: skip
    """The TTFT SLI of `deployment` and what it must be from the histogram Prometheus holds
    at the rule's own evaluation time: 1 - (le=lo + share * (le=hi - le=lo)) / count.

    Prometheus extrapolates each series' increase to the window's edges, limited at a
    series' zero point (promql/functions.go extrapolatedRate); SGLang's series appear only
    after their first request, so count and buckets extrapolate by slightly different
    factors and the SLI matches the engine's own deltas within a few per cent, not
    exactly. The rule's arithmetic is checked exactly against the same increases; the
    increases against the engine's deltas, which they can only exceed."""
    url, name = driven["prometheus"], "sglang:time_to_first_token_seconds"
    query = f'glmctl:slo_ttft_bad:ratio_rate5m{{deployment="{deployment}"}}'
    result = _wait(lambda: _query(url, query), 30, "ttft SLI")
    assert len(result) == 1, result
    # The sample's own timestamp (an instant query reports its query time instead).
    ts = float(_query(url, f"timestamp({query})")[0]["value"][1])
    bad = float(_query(url, query, ts)[0]["value"][1])
    count = _increase_at(url, ts, f"{name}_count", deployment)
    low = _increase_at(url, ts, f"{name}_bucket", deployment, lo)
    high = _increase_at(url, ts, f"{name}_bucket", deployment, hi) if hi else low
    # Extrapolation only adds to what the samples show (the zero point limits how much):
    # Prometheus saw every measured request.
    assert count >= _engine_delta(driven, f"{name}_count") - 1e-9
    assert low >= _engine_delta(driven, f"{name}_bucket", lo) - 1e-9
    return bad, 1 - (low + share * (high - low)) / count


def test_ttft_sli_matches_the_engines_histogram(driven: dict[str, Any]) -> None:
    name = "sglang:time_to_first_token_seconds"
    count = _engine_delta(driven, f"{name}_count")
    good = _engine_delta(driven, f"{name}_bucket", "2.0")
    assert count == 48
    bad, expected = _sli_checked(driven, DEPLOYMENT, "2.0", None, 0.0)
    print(f"TTFT SLI: {bad:.4f} of requests over 2 s ({count - good:.0f} of {count:.0f})")
    assert bad == pytest.approx(expected, abs=1e-9)
    assert bad == pytest.approx(1 - good / count, abs=0.05)  # extrapolation


def test_ttft_sli_interpolates_between_sglang_bounds(driven: dict[str, Any]) -> None:
    """Objective 0.3 s: good = le=0.2 + (0.3 - 0.2) / (0.4 - 0.2) of the 0.2-0.4 bucket."""
    name = "sglang:time_to_first_token_seconds"
    count = _engine_delta(driven, f"{name}_count")
    low, high = (_engine_delta(driven, f"{name}_bucket", le) for le in ("0.2", "0.4"))
    share = (TIGHT_TTFT - 0.2) / (0.4 - 0.2)
    bad, expected = _sli_checked(driven, TIGHT, "0.2", "0.4", share)
    print(f"TTFT SLI at {TIGHT_TTFT} s: {bad:.4f} (le=0.2: {low:.0f}, le=0.4: {high:.0f})")
    assert bad == pytest.approx(expected, abs=1e-9)
    assert bad == pytest.approx(1 - (low + share * (high - low)) / count, abs=0.05)  # extrapolation


def test_itl_and_availability_slis_return_values(driven: dict[str, Any]) -> None:
    url = driven["prometheus"]
    assert 0.0 <= _sli(url, "itl") <= 1.0
    ok = _query(url, 'glmctl_router_requests_total{outcome="ok"}')
    assert sum(float(r["value"][1]) for r in ok) == 50  # the two first requests and 48
    assert _sli(url, "errors") == 0.0
