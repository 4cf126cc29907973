"""The performance model: monotone, bounded by the hardware, MTP speeds it up."""

from __future__ import annotations

import pytest

from controlplane.capacity.constants import HBM_EFFICIENCY
from controlplane.capacity.perf_constants import FITTED
from controlplane.capacity.performance import PerformanceModel, performance_model
from tests.unit.capacity.conftest import make_topology


def test_interface_fields() -> None:
    model = performance_model(make_topology())
    assert isinstance(model, PerformanceModel)
    assert model.tokens_per_step > 1.0  # MTP on by default on SGLang
    assert model.kv_token_capacity > 0
    assert model.assumptions and all(isinstance(a, str) for a in model.assumptions)


def test_decode_grows_with_batch_and_context() -> None:
    model = performance_model(make_topology())
    assert model.decode_step_seconds(1, 1000) < model.decode_step_seconds(8, 8000)
    assert model.decode_step_seconds(8, 8000) < model.decode_step_seconds(8, 200_000)
    assert model.decode_step_seconds(0, 0) == 0.0


def test_decode_is_never_faster_than_reading_active_weights() -> None:
    topo = make_topology(speculative={"algorithm": "none"})
    model = performance_model(topo)
    arch = topo.arch
    # Batch 1 touches at least the active parameters once (FP8: 1 byte each), plus the
    # per-layer latency floor; it costs no more than all terms added up.
    floor = arch.active_params() * 1.0 / (topo.gpu.hbm_bandwidth * topo.tp)
    latency = arch.num_layers * FITTED.layer_floor(topo.gpu.name)
    overhead = FITTED.step_overhead_s + FITTED.per_sequence_s
    step = model.decode_step_seconds(1, 1)
    assert step > floor + latency
    assert step < floor / HBM_EFFICIENCY * 3 + latency + overhead + 2 * arch.num_layers * 1e-4


def test_moe_batch_reads_more_experts_but_less_per_token() -> None:
    model = performance_model(make_topology(speculative={"algorithm": "none"}))
    one = model.decode_step_seconds(1, 1000)
    many = model.decode_step_seconds(64, 64_000)
    assert one < many < 64 * one


def test_mtp_raises_tokens_per_second_at_small_batch() -> None:
    plain = performance_model(make_topology(speculative={"algorithm": "none"}))
    mtp = performance_model(make_topology())
    assert plain.tokens_per_step == 1.0
    assert mtp.decode_tokens_per_second(1, 4000) > 1.3 * plain.decode_tokens_per_second(1, 4000)


def test_vllm_one_token_mtp_and_its_reported_speed_up() -> None:
    """vllm-project/vllm#25993: GLM-4.6 BF16 on 8 x H200, one MTP token, 47 -> 73 tok/s."""
    kw = {"model": "glm-4.6", "precision": "bf16", "count": 8, "engine": "vllm"}
    plain = performance_model(make_topology(speculative={"algorithm": "none"}, **kw))
    mtp = performance_model(make_topology(**kw))
    assert mtp.tokens_per_step == pytest.approx(1.72)
    base, fast = plain.decode_tokens_per_second(1, 2000), mtp.decode_tokens_per_second(1, 2000)
    assert 47 / 1.5 < base < 47 * 1.5 and 73 / 1.5 < fast < 73 * 1.5
    assert 1.3 < fast / base < 1.9


def test_acceptance_length_override() -> None:
    model = performance_model(make_topology(speculative={"acceptance_length": 3.5}))
    assert model.tokens_per_step == pytest.approx(3.5)
    capped = performance_model(make_topology(speculative={"acceptance_length": 9.0}))
    assert capped.tokens_per_step == pytest.approx(4.0)  # 3 drafted + 1


def test_prefill_is_compute_bound_and_cache_helps() -> None:
    topo = make_topology()
    model = performance_model(topo)
    cold = model.prefill_seconds(16_000)
    assert model.prefill_seconds(1_000, 15_000) < cold
    flops = 2 * topo.arch.active_params() * 16_000
    assert cold > flops / (topo.gpu.fp8_flops or 1) / topo.tp
    assert model.prefill_seconds(0) == 0.0


def test_more_gpus_decode_faster_and_pipeline_adds_latency() -> None:
    four = performance_model(make_topology(count=4))
    eight = performance_model(make_topology(count=8))
    assert eight.decode_step_seconds(8, 8000) < four.decode_step_seconds(8, 8000)
    tp8 = performance_model(make_topology(model="glm-4.5-air", count=8))
    pp = performance_model(
        make_topology(model="glm-4.5-air", count=8, parallelism={"tensor": 4, "pipeline": 2})
    )
    assert pp.decode_step_seconds(1, 100) > tp8.decode_step_seconds(1, 100) * 0.9
