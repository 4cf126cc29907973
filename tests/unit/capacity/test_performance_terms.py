"""Each term of the performance model, checked against the number it is derived from."""

from __future__ import annotations

import dataclasses

import pytest

from controlplane.capacity import constants as c
from controlplane.capacity.perf_constants import FITTED
from controlplane.capacity.performance import acceptance_length, performance_model
from controlplane.capacity.steady_state import steady_state
from tests.unit.capacity.conftest import make_topology

NO_MTP = {"algorithm": "none"}


def _glm46(**extra: object) -> object:
    kw: dict[str, object] = {"model": "glm-4.6-fp8", "gpu": "H100", "count": 8,
                             "speculative": NO_MTP}  # fmt: skip
    return make_topology(**{**kw, **extra})


def test_expert_parallel_swaps_an_all_reduce_for_dispatch_and_combine() -> None:
    tp = _glm46(parallelism={"tensor": 8, "expert": 1})
    ep = _glm46(parallelism={"tensor": 8, "expert": 8})
    one_tp = performance_model(tp).decode_step_seconds(1, 100)
    one_ep = performance_model(ep).decode_step_seconds(1, 100)
    latency = tp.arch.num_moe_layers * (
        2 * FITTED.a2a_latency_intra_s - c.ALLREDUCE_LATENCY_INTRA_S
    )
    assert one_ep - one_tp == pytest.approx(latency, rel=0.05)
    # The routed activations make the all-to-all grow with the batch, faster than the all-reduce.
    grow_tp = performance_model(tp).decode_step_seconds(256, 100) - one_tp
    grow_ep = performance_model(ep).decode_step_seconds(256, 100) - one_ep
    assert grow_ep > grow_tp


def test_all_to_all_across_nodes_costs_the_inter_node_latency() -> None:
    intra = _glm46(parallelism={"tensor": 8, "expert": 8})
    inter = _glm46(count=16, parallelism={"tensor": 16, "expert": 16})
    assert inter.nodes == 2
    step_intra = performance_model(intra).decode_step_seconds(1, 100)
    step_inter = performance_model(inter).decode_step_seconds(1, 100)
    extra = (
        inter.arch.num_moe_layers * 2 * (FITTED.a2a_latency_inter_s - FITTED.a2a_latency_intra_s)
    )
    assert step_inter - step_intra > 0.8 * extra


def test_attention_reads_grow_with_context_and_halve_with_an_fp8_cache() -> None:
    def context_cost(kv: str) -> float:
        model = performance_model(_glm46(model="glm-4.6", precision="bf16", gpu="H200",
                                         kv_cache_dtype=kv))  # fmt: skip
        return model.decode_step_seconds(64, 64 * 32_000) - model.decode_step_seconds(64, 64 * 1000)

    bf16, fp8 = context_cost("bf16"), context_cost("fp8")
    assert bf16 > 0.002  # 2M tokens of BF16 KV is milliseconds of HBM reads
    # The KV bytes halve; attention FLOPs stay, so a little more than half remains.
    assert 0.5 * bf16 < fp8 < 0.6 * bf16


def test_layer_floor_and_step_overhead_add_to_every_step() -> None:
    """One layer floor per decoder layer and one step overhead per step, whatever the engine
    (the fit gives both one value: engine scheduling differences live in timing_rules)."""
    layers = _glm46().arch.num_layers
    wide = dataclasses.replace(FITTED, layer_floor_s=150e-6, step_overhead_s=2e-3)
    narrow = dataclasses.replace(FITTED, layer_floor_s=100e-6, step_overhead_s=1e-3)
    for engine in ("sglang", "vllm"):
        topo = _glm46(engine={"kind": engine})
        gap = performance_model(topo, wide).decode_step_seconds(1, 100) - performance_model(
            topo, narrow
        ).decode_step_seconds(1, 100)
        assert gap == pytest.approx(layers * 50e-6 + 1e-3, rel=1e-6)


def test_mtp_acceptance_compounds_per_position() -> None:
    a = FITTED.mtp_position_acceptance
    vllm_one = make_topology(model="glm-4.6", precision="bf16", count=8, engine={"kind": "vllm"},
                             speculative={"algorithm": "mtp", "num_steps": 1})  # fmt: skip
    assert acceptance_length(vllm_one) == pytest.approx(1 + a[0])
    sglang_three = make_topology(speculative={"num_steps": 3, "eagle_topk": 1,
                                              "num_draft_tokens": 4})  # fmt: skip
    expected = 1 + a[0] + a[0] * a[1] + a[0] * a[1] * a[2]
    assert acceptance_length(sglang_three) == pytest.approx(expected)
    # SGLang #14457 measured 2.02 at 3 steps for GLM-4.6.
    assert expected == pytest.approx(2.02, abs=0.03)


def test_mtp_step_costs_verify_tokens_and_draft_forwards() -> None:
    plain = performance_model(make_topology(speculative=NO_MTP))
    mtp = performance_model(make_topology())
    assert mtp.decode_step_seconds(1, 1000) > plain.decode_step_seconds(1, 1000)
    assert mtp.decode_tokens_per_second(1, 1000) > plain.decode_tokens_per_second(1, 1000)


def test_prefill_mixed_into_decode_raises_tpot_in_steady_state() -> None:
    model = performance_model(_glm46(parallelism={"tensor": 8, "expert": 8}))
    for clients in (4, 64, 256):
        state = steady_state(model, clients, 1024, 1024)
        decode = model.decode_step_seconds(clients, round(clients * (1024 + 512)))
        interleave = clients / 1024 * model.prefill_seconds(1024)
        assert state.tpot_s == pytest.approx(decode + interleave, rel=1e-9)
        assert state.output_tokens_per_s < clients / state.tpot_s


def test_per_sequence_scheduler_cost_is_linear_in_the_batch() -> None:
    costly = dataclasses.replace(FITTED, per_sequence_s=10e-6)
    base, with_cost = performance_model(_glm46()), performance_model(_glm46(), costly)
    for batch in (1, 100):
        extra = with_cost.decode_step_seconds(batch, 1000) - base.decode_step_seconds(batch, 1000)
        assert extra == pytest.approx(batch * (10e-6 - FITTED.per_sequence_s), abs=1e-12)


def test_grouped_gemm_row_tile_charges_small_batches_more() -> None:
    tiled = dataclasses.replace(FITTED, moe_tile_tokens=64)
    untiled = dataclasses.replace(FITTED, moe_tile_tokens=1)
    topo = _glm46()
    small = [performance_model(topo, k).decode_step_seconds(8, 1000) for k in (tiled, untiled)]
    assert small[0] > small[1]


def test_prefill_efficiency_scales_the_compute_part_only() -> None:
    topo = _glm46()
    slow = dataclasses.replace(FITTED, prefill_flops_efficiency=FITTED.prefill_flops_efficiency / 2)
    fast_s = performance_model(topo).prefill_seconds(8192)
    slow_s = performance_model(topo, slow).prefill_seconds(8192)
    assert fast_s < slow_s < 2 * fast_s
