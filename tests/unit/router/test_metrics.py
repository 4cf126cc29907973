"""Router metrics: per-worker exports merge into one Prometheus exposition."""

from __future__ import annotations

from controlplane.router.engine_metrics import parse_samples
from controlplane.router.metrics import RouterMetrics, merge, render


def test_two_workers_sum_and_render_valid_exposition() -> None:
    one, two = RouterMetrics(), RouterMetrics()
    one.inc("glmctl_router_requests_total", (("route", "chat"), ("status", "200")))
    two.inc("glmctl_router_requests_total", (("route", "chat"), ("status", "200")), 2)
    one.observe("glmctl_router_ttft_seconds", 0.0007)
    two.observe("glmctl_router_ttft_seconds", 100.0)
    text = render(merge([one.export(), two.export()]))
    samples = parse_samples(text)
    assert samples["glmctl_router_requests_total"] == [3.0]
    assert samples["glmctl_router_ttft_seconds_count"] == [2.0]
    assert samples["glmctl_router_ttft_seconds_sum"] == [100.0007]
    buckets = samples["glmctl_router_ttft_seconds_bucket"]
    assert buckets == sorted(buckets) and buckets[-1] == 2.0 and buckets[0] == 0.0
    assert text.count("# TYPE glmctl_router_requests_total") == 1


def test_prefix_hit_ratio_is_matched_over_total_blocks() -> None:
    worker = RouterMetrics()
    worker.inc("glmctl_router_prefix_blocks_total", (), 8)
    worker.inc("glmctl_router_prefix_blocks_matched_total", (), 6)
    samples = parse_samples(render(merge([worker.export()])))
    assert samples["glmctl_router_prefix_hit_ratio"] == [6 / 8]


def test_in_flight_gauges_sum_over_workers() -> None:
    one, two = RouterMetrics(), RouterMetrics()
    text = render(merge([one.export({"e0": 2, "e1": 0}), two.export({"e0": 1})]))
    assert 'glmctl_router_inflight{endpoint="e0"} 3' in text
    assert 'glmctl_router_inflight{endpoint="e1"} 0' in text


def test_each_request_counts_once_with_its_outcome() -> None:
    from controlplane.router.metrics import BAD_OUTCOMES, count_request, outcome_of

    assert [outcome_of(s) for s in (200, 400, 401, 429, 500, 503, 504)] == [
        "ok", "client_error", "client_error", "rate_limited", "error", "error", "error"
    ]  # fmt: skip
    assert outcome_of(200, "midstream_error") == "midstream_error"
    assert outcome_of(429, "overloaded") == "overloaded"
    assert set(BAD_OUTCOMES) == {"error", "overloaded", "midstream_error"}
    metrics = RouterMetrics()
    count_request(metrics, "chat", 200)
    count_request(metrics, "chat", 200, "midstream_error")
    text = render(merge([metrics.export()]))
    assert 'glmctl_router_requests_total{route="chat",status="200",outcome="ok"} 1.0' in text
    assert 'status="200",outcome="midstream_error"} 1.0' in text
