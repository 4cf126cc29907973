"""Metrics text parses with prometheus_client and carries the engines' names and labels."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from controlplane.catalog.engine_metrics import HistogramNames
from controlplane.engines.sim.metrics import EngineGauges, EngineMetrics, Histogram, render
from controlplane.spec import EngineKind

GAUGES = EngineGauges(
    running=3,
    waiting=2,
    kv_usage=0.5,
    used_tokens=400,
    kv_token_capacity=800,
    spec_accept_length=2.6,
    gen_throughput=10.0,
)


def samples(flavor: EngineKind) -> dict[str, dict]:
    m = EngineMetrics(prompt_tokens=100, generation_tokens=50, prefix_queries=100, prefix_hits=25)
    m.spec_drafts = 4
    m.log_ttft(0.03, 0.03, stream=True)
    m.log_ttft(3.0, 3.0, stream=False)
    m.log_finished(True, 60, 30, 1.0)
    m.log_finished(False, 40, 20, 2.0)
    text = render(flavor, 'glm "4.5"', m, GAUGES)
    out: dict[str, dict] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def value(found: dict[str, dict], name: str, **labels: str) -> float:
    for key, v in found[name].items():
        if all((k, want) in key for k, want in labels.items()):
            return float(v)
    raise KeyError(name)


def test_vllm_names_and_labels() -> None:
    found = samples(EngineKind.VLLM)
    lb = {"model_name": 'glm "4.5"', "engine": "0"}
    assert value(found, "vllm:num_requests_running", **lb) == 3
    assert value(found, "vllm:num_requests_waiting", **lb) == 2
    assert value(found, "vllm:kv_cache_usage_perc", **lb) == 0.5
    assert value(found, "vllm:prefix_cache_hits_total", **lb) == 25
    assert value(found, "vllm:prefix_cache_queries_total", **lb) == 100
    assert value(found, "vllm:request_success_total", finished_reason="stop") == 0
    assert value(found, "vllm:spec_decode_num_drafts_total") == 4
    assert value(found, "vllm:cache_config_info", num_gpu_blocks="50", block_size="16") == 1
    assert value(found, "vllm:time_to_first_token_seconds_bucket", le="0.04") == 1
    assert value(found, "vllm:time_to_first_token_seconds_bucket", le="+Inf") == 2
    assert value(found, "vllm:time_to_first_token_seconds_count") == 2


def test_sglang_names_and_labels() -> None:
    found = samples(EngineKind.SGLANG)
    assert value(found, "sglang:num_running_reqs", tp_rank="0", model_name='glm "4.5"') == 3
    assert value(found, "sglang:num_queue_reqs") == 2
    assert value(found, "sglang:token_usage") == 0.5
    assert value(found, "sglang:cache_hit_rate") == 0.25
    assert value(found, "sglang:spec_accept_length") == 2.6
    # SGLang 0.5.23 labels by the request's `stream` (metrics_collector.py
    # observe_one_finished_request / observe_time_to_first_token).
    assert value(found, "sglang:prompt_tokens_total", is_streaming="true") == 60
    assert value(found, "sglang:prompt_tokens_total", is_streaming="false") == 40
    assert value(found, "sglang:num_requests_total", is_streaming="false") == 1
    assert value(found, "sglang:time_to_first_token_seconds_count", is_streaming="true") == 1
    assert value(found, "sglang:time_to_first_token_seconds_count", is_streaming="false") == 1
    assert value(found, "sglang:e2e_request_latency_seconds_sum", is_streaming="false") == 2.0


def test_sglang_streaming_series_appear_once_used() -> None:
    text = render(EngineKind.SGLANG, "m", EngineMetrics(), GAUGES)
    assert "is_streaming" not in text  # prometheus_client: no labelled series before use


def test_histogram_buckets_are_cumulative_and_inclusive() -> None:
    h = Histogram((0.5, 1.0, 2.0))
    for v in (0.2, 1.0, 1.5, 5.0):
        h.observe(v)
    lines = h.lines(HistogramNames("x", (1.0, 2.0), ("a",)), 'a="b"', "help")
    assert 'x_bucket{a="b",le="1.0"} 2.0' in lines
    assert 'x_bucket{a="b",le="2.0"} 3.0' in lines
    assert 'x_bucket{a="b",le="+Inf"} 4.0' in lines
    assert not any('le="0.5"' in line for line in lines)  # only the asked-for bounds


# The members NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE serialises in TensorRT-LLM's
# cpp/tensorrt_llm/executor/jsonSerialization.cpp @086f692 (1.2 field set, without the later
# ForwardPassMetrics fields), copied from that file, not from the simulator.
ITERATION_STATS_FIELDS = {
    "timestamp", "iter", "iterLatencyMS", "newActiveRequestsQueueLatencyMS",
    "numNewActiveRequests", "numActiveRequests", "numQueuedRequests", "numCompletedRequests",
    "maxNumActiveRequests", "maxBatchSizeStatic", "maxBatchSizeTunerRecommended",
    "maxBatchSizeRuntime", "maxNumTokensStatic", "maxNumTokensTunerRecommended",
    "maxNumTokensRuntime", "gpuMemUsage", "cpuMemUsage", "pinnedMemUsage", "kvCacheStats",
    "staticBatchingStats", "inflightBatchingStats", "specDecodingStats",
}  # fmt: skip
KV_CACHE_STATS_FIELDS = {
    "maxNumBlocks", "freeNumBlocks", "usedNumBlocks", "tokensPerBlock", "allocTotalBlocks",
    "allocNewBlocks", "reusedBlocks", "missedBlocks", "cacheHitRate",
}  # fmt: skip
INFLIGHT_BATCHING_FIELDS = {
    "numScheduledRequests", "numContextRequests", "numGenRequests", "numPausedRequests",
    "numCtxTokens", "microBatchId", "avgNumDecodedTokensPerIter",
}  # fmt: skip


def test_trtllm_iteration_stats_have_the_cpp_names_and_parse_as_load() -> None:
    import json

    from controlplane.engines.sim.metrics import KvBlocks, iteration_stats
    from controlplane.router.engine_metrics import parse_engine_metrics

    m = EngineMetrics(prefix_queries=100, prefix_hits=25)
    entry = iteration_stats(7, GAUGES, KvBlocks(total=50, used=20, tokens_per_block=16), 16, m)
    assert set(entry) == ITERATION_STATS_FIELDS
    kv = entry["kvCacheStats"]
    batching = entry["inflightBatchingStats"]
    assert isinstance(kv, dict) and isinstance(batching, dict)
    assert set(kv) == KV_CACHE_STATS_FIELDS and set(batching) == INFLIGHT_BATCHING_FIELDS
    assert kv["freeNumBlocks"] == 30 and kv["cacheHitRate"] == 0.25
    snap = parse_engine_metrics(json.dumps([entry]), "trtllm")
    assert (snap.running, snap.waiting, snap.kv_usage) == (3, 2, 20 / 50)
