"""TensorRT-LLM's `/metrics` JSON (iteration stats) parsed into a load snapshot.

Where the sample's shape comes from (not from our parser): trtllm-serve's `/metrics`
returns `JSONResponse(content=stats)`, `stats` the list of `json.loads` of each queued
`IterationStats` (tensorrt_llm/serve/openai_server.py @00057725 `get_iteration_stats`,
executor/result.py @005bc84 `IterationResult.__anext__`). Each entry's keys are the C++
struct members serialised by NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE in
cpp/tensorrt_llm/executor/jsonSerialization.cpp (the 1.2 field set: IterationStats with
maxNumTokens* and specDecodingStats, KvCacheStats, InflightBatchingStats); optional members
the engine does not fill serialise as null (jsonSerializeOptional.h). The numbers are
invented for the test: 3 active + 2 queued requests, 120 of 400 blocks used.
"""

from __future__ import annotations

import json
from typing import Any

from controlplane.router.engine_metrics import (
    LoadSnapshot,
    detect_flavor,
    latest_iteration,
    parse_engine_metrics,
    parse_trtllm_stats,
)


def iteration(step: int, active: int, queued: int, used: int, total: int) -> dict[str, Any]:
    return {
        "timestamp": "12-02-2026 01:50:00", "iter": step, "iterLatencyMS": 21.5,
        "newActiveRequestsQueueLatencyMS": 0.3, "numNewActiveRequests": 1,
        "numActiveRequests": active, "numQueuedRequests": queued, "numCompletedRequests": 0,
        "maxNumActiveRequests": 16, "maxBatchSizeStatic": 16, "maxBatchSizeTunerRecommended": 16,
        "maxBatchSizeRuntime": 16, "maxNumTokensStatic": 8192,
        "maxNumTokensTunerRecommended": 8192, "maxNumTokensRuntime": 8192,
        "gpuMemUsage": 40_000_000_000, "cpuMemUsage": 2_000_000, "pinnedMemUsage": 0,
        "kvCacheStats": {
            "maxNumBlocks": total, "freeNumBlocks": total - used, "usedNumBlocks": used,
            "tokensPerBlock": 64, "allocTotalBlocks": used, "allocNewBlocks": 2,
            "reusedBlocks": 6, "missedBlocks": 2, "cacheHitRate": 0.75,
        },
        "staticBatchingStats": None,
        "inflightBatchingStats": {
            "numScheduledRequests": active, "numContextRequests": 1, "numGenRequests": active - 1,
            "numPausedRequests": 0, "numCtxTokens": 512, "microBatchId": 0,
            "avgNumDecodedTokensPerIter": 1.0,
        },
        "specDecodingStats": None,
    }  # fmt: skip


def test_latest_iteration_is_the_engine_state() -> None:
    older = iteration(41, active=1, queued=0, used=30, total=400)
    newest = iteration(42, active=3, queued=2, used=120, total=400)
    text = json.dumps([older, newest])
    snap = parse_engine_metrics(text, "trtllm")
    assert (snap.running, snap.waiting) == (3, 2)
    assert snap.kv_usage == 120 / 400
    assert snap.prefix_hit_rate == 0.75
    # The newest by `iter`, not by position.
    assert parse_trtllm_stats(json.dumps([newest, older])) == snap
    assert detect_flavor(text) == "trtllm" and parse_engine_metrics(text, None) == snap


def test_no_iteration_since_the_last_read_is_idle() -> None:
    assert latest_iteration("[]") is None and parse_trtllm_stats("[]") is None
    assert parse_engine_metrics("[]", "trtllm") == LoadSnapshot()


def test_missing_kv_stats_give_no_kv_usage() -> None:
    entry = iteration(7, active=2, queued=0, used=10, total=100)
    entry["kvCacheStats"] = None
    snap = parse_engine_metrics(json.dumps([entry]), "trtllm")
    assert (snap.running, snap.kv_usage) == (2, 0.0)
    entry["kvCacheStats"] = {"maxNumBlocks": 0, "usedNumBlocks": 0}
    assert parse_engine_metrics(json.dumps([entry]), "trtllm").kv_usage == 0.0


def test_negative_controls_other_answers_are_no_load() -> None:
    """Prometheus text, a JSON object, broken JSON or vLLM's names under the trtllm
    flavour are not iteration stats: no load, and never a crash."""
    vllm = 'vllm:num_requests_running{engine="0"} 5.0\nvllm:num_requests_waiting 2.0\n'
    for text in (vllm, '{"numActiveRequests": 4}', "[{", "", '["x", 3]'):
        assert parse_engine_metrics(text, "trtllm") == LoadSnapshot(), text
    # ...and the trtllm JSON is no load under another flavour's names.
    text = json.dumps([iteration(1, active=4, queued=1, used=5, total=10)])
    assert parse_engine_metrics(text, "vllm") == LoadSnapshot()
    assert parse_engine_metrics(vllm, "vllm").running == 5
