"""Weights per rank, KV per token, the engines' memory rules."""

from __future__ import annotations

from dataclasses import replace

import pytest

from controlplane.capacity import constants as c
from controlplane.capacity.engine_rules import engine_budget, sglang_auto_fraction
from controlplane.capacity.layout import layout_of
from controlplane.capacity.memory import replica_memory
from controlplane.capacity.weights import (
    Split,
    checkpoint_bytes,
    rank_weights,
    stage_layers,
    stage_weight_totals,
)
from controlplane.catalog import GIB, Precision, find_gpu, find_model
from controlplane.catalog.quant import scheme_from_config
from tests.unit.capacity.conftest import make_topology

GLM45 = find_model("glm-4.5")
AIR = find_model("glm-4.5-air")
assert GLM45 is not None and AIR is not None


def _split(
    tp: int = 1, pp: int = 1, group: int | None = None, stage: int = 0, mtp: int = 0
) -> Split:
    return Split(tp, tp, pp, group or tp, stage, mtp)


def test_bf16_checkpoint_is_two_bytes_per_parameter() -> None:
    total = checkpoint_bytes(GLM45.arch, Precision.BF16)
    assert total == pytest.approx(2 * GLM45.arch.total_params(), rel=1e-3)


def test_fp8_keeps_embeddings_norms_and_gate_in_bf16() -> None:
    bf16 = rank_weights(AIR.arch, Precision.BF16, _split())
    fp8 = rank_weights(AIR.arch, Precision.FP8, _split())
    assert fp8.embedding == bf16.embedding and fp8.lm_head == bf16.lm_head
    assert fp8.router_and_norms == bf16.router_and_norms
    assert fp8.routed_experts == pytest.approx(bf16.routed_experts / 2)
    # one float32 scale per 128 x 128 block
    linear = fp8.attention + fp8.dense_mlp + fp8.shared_experts + fp8.routed_experts
    assert fp8.quant_scales == pytest.approx(linear * 4 / 128**2, rel=0.01)


def test_tensor_parallel_shards_and_ranks_add_up() -> None:
    one = rank_weights(GLM45.arch, Precision.BF16, _split()).total
    eight = rank_weights(GLM45.arch, Precision.BF16, _split(tp=8)).total
    # replicated norms, gate and biases make 8 ranks slightly more than one copy
    assert one < 8 * eight < one * 1.01


def test_expert_parallel_places_the_same_bytes_as_tensor_parallel() -> None:
    tp = rank_weights(GLM45.arch, Precision.FP8, _split(tp=8, group=8)).routed_experts
    ep = rank_weights(GLM45.arch, Precision.FP8, Split(8, 8, 1, 8, 0, 0)).routed_experts
    assert (
        tp
        == ep
        == pytest.approx(
            GLM45.arch.num_moe_layers
            * GLM45.arch.num_routed_experts
            * GLM45.arch.expert_params()
            / 8
        )
    )


def test_pipeline_stages_split_layers_and_put_embedding_first_head_last() -> None:
    ranges = stage_layers(92, 4)
    assert ranges[0][0] == 0 and ranges[-1][1] == 92
    assert sum(end - start for start, end in ranges) == 92
    stages = [
        rank_weights(GLM45.arch, Precision.BF16, _split(pp=4, stage=s, mtp=1 if s == 3 else 0))
        for s in range(4)
    ]
    assert stages[0].embedding > 0 and stages[0].lm_head == 0
    assert stages[3].lm_head > 0 and stages[3].mtp_draft > 0 and stages[1].embedding == 0
    whole = rank_weights(GLM45.arch, Precision.BF16, _split(mtp=1)).total
    assert sum(s.total for s in stages) == pytest.approx(whole)


@pytest.mark.parametrize(
    "shape", [(1, 1, 1, 1, 1), (8, 8, 4, 8, 1), (4, 16, 2, 16, 0), (16, 16, 1, 16, 1)]
)
def test_fast_stage_totals_match_the_breakdown(shape: tuple[int, int, int, int, int]) -> None:
    tp, dense_tp, pp, group, mtp = shape
    for precision in (Precision.BF16, Precision.FP8):
        slow = [
            rank_weights(
                GLM45.arch, precision, Split(tp, dense_tp, pp, group, s, mtp if s == pp - 1 else 0)
            ).total
            for s in range(pp)
        ]
        assert stage_weight_totals(GLM45.arch, precision, shape) == pytest.approx(slow)


@pytest.mark.parametrize("shape", [(1, 1, 1, 1, 1), (8, 8, 4, 8, 1), (4, 16, 2, 16, 0)])
@pytest.mark.parametrize("group", [128, -1])
def test_fast_stage_totals_match_the_breakdown_for_gptq(
    shape: tuple[int, int, int, int, int], group: int
) -> None:
    # GPTQ adds bytes per matrix row (g_idx) and, per channel, per column: both paths agree.
    scheme = scheme_from_config({"quant_method": "gptq", "bits": 4, "group_size": group})
    assert scheme is not None
    arch = replace(GLM45.arch, quant=scheme)
    tp, dense_tp, pp, group_n, mtp = shape
    slow = [
        rank_weights(arch, Precision.INT4, Split(tp, dense_tp, pp, group_n, s, mtp * (s == pp - 1)))
        for s in range(pp)
    ]
    assert stage_weight_totals(arch, Precision.INT4, shape) == pytest.approx(
        [w.total for w in slow]
    )
    no_edges = replace(arch, quant=replace(scheme, row_bytes=0.0, column_bytes=0.0))
    first = Split(tp, dense_tp, pp, group_n, 0, 0)
    assert slow[0].quant_scales > rank_weights(no_edges, Precision.INT4, first).quant_scales


def test_kv_heads_replicate_beyond_their_count_and_fp8_halves() -> None:
    arch = GLM45.arch
    per_layer = 2 * 128 * 2  # K and V, head_dim 128, BF16
    assert arch.kv_bytes_per_token(2, 1) == 8 * per_layer * 92 == 376_832  # reference number
    assert arch.kv_bytes_per_token(2, 8) == per_layer * 92
    assert arch.kv_bytes_per_token(2, 32) == per_layer * 92  # one head per rank, replicated 4x
    assert arch.kv_bytes_per_token(1, 8) == per_layer * 92 / 2


def test_mtp_adds_its_layer_weights_and_kv() -> None:
    with_mtp = replica_memory(layout_of(make_topology(model="glm-4.5-air", count=2)))
    without = replica_memory(
        layout_of(make_topology(model="glm-4.5-air", count=2, speculative={"algorithm": "none"}))
    )
    stage, plain = with_mtp.stages[0], without.stages[0]
    assert stage.weights.mtp_draft > 0 and plain.weights.mtp_draft == 0
    assert stage.kv_bytes_per_token == pytest.approx(plain.kv_bytes_per_token * 47 / 46)


def test_sglang_auto_fraction_follows_its_rule() -> None:
    layout = layout_of(make_topology(gpu="H100", count=8))
    gpu_mib = 81559
    reserved = max(512 + 8192 * 1.5 + 512 * 2 + 8 / 8 * 1024, 10240) + 2048
    assert sglang_auto_fraction(layout) == round((gpu_mib - reserved) / gpu_mib, 3)
    budget = engine_budget(layout)
    assert budget.auto and budget.flag == "--mem-fraction-static"
    # SGLang multiplies the free memory it measured before loading: torch's total (79.19 GiB
    # on H100, not nvidia-smi's 79.65) less the CUDA context and the NCCL buffers of TP 8.
    pre_load = 79.19 * GIB - c.SGLANG_CONTEXT_BYTES - c.SGLANG_DIST_NVLINK_BYTES
    assert budget.static_bytes == pytest.approx(pre_load * budget.mem_fraction)
    single = engine_budget(layout_of(make_topology(model="glm-4.5-air", gpu="H100", count=1)))
    assert "torch_distributed" not in single.reserved  # TP 1: no NCCL buffers


def test_small_tp_graph_size_and_large_gpu_floor() -> None:
    h200_tp1 = layout_of(
        make_topology(model="glm-4.5-air", count=1, speculative={"algorithm": "none"})
    )
    gpu_mib = 143771
    reserved = 512 + 8192 * 1.5 + 256 * 2 + 1 / 8 * 1024  # cuda_graph_max_bs 256 below TP 4
    assert sglang_auto_fraction(h200_tp1) == round((gpu_mib - reserved) / gpu_mib, 3)
    small_chunks = layout_of(make_topology(gpu="H100", count=8, engine={"chunked_prefill": 2048}))
    floor = 10240 + 2048  # 512 + 3072 + 1024 + 1024 is below SGLang's 10 GiB floor on big GPUs
    assert sglang_auto_fraction(small_chunks) == round((81559 - floor) / 81559, 3)


def test_vllm_uses_gpu_memory_utilization_minus_profiled_activations() -> None:
    topo = make_topology(count=4, engine="vllm")
    budget = engine_budget(layout_of(topo))
    assert budget.mem_fraction == 0.9 and budget.flag == "--gpu-memory-utilization"
    total = topo.gpu.memory_bytes
    assert total * 0.9 - 6 * GIB < budget.static_bytes < total * 0.9


def test_model_card_fraction_07_cannot_hold_air_bf16_on_two_h200() -> None:
    """reference/glm45-deployment.md: 2 x 0.7 x ~140 GiB < ~203 GiB of Air BF16 weights."""
    auto = replica_memory(
        layout_of(make_topology(model="glm-4.5-air", precision="bf16", count=2, context=8192))
    )
    card = replica_memory(
        layout_of(
            make_topology(
                model="glm-4.5-air",
                precision="bf16",
                count=2,
                context=8192,
                engine={"mem_fraction": 0.7},
            )
        )
    )
    assert auto.fits and not card.fits
    assert card.stages[0].kv_pool_bytes < 0  # the weights alone do not fit


def test_cpu_offload_moves_weights_off_the_gpu() -> None:
    topo = make_topology(
        precision="bf16",
        gpu="H100",
        count=8,
        context=4096,
        engine={"kind": "vllm", "cpu_offload_gb": 16},
    )
    memory = replica_memory(layout_of(topo))
    assert memory.stages[0].offloaded_bytes == 16 * GIB
    assert memory.stages[0].weights_on_gpu == memory.stages[0].weights.total - 16 * GIB


def test_every_catalog_gpu_has_a_budget() -> None:
    for name in ("H100", "H200", "B200", "A100-80G", "A100-40G", "L40S", "V100"):
        gpu = find_gpu(name)
        assert gpu is not None
        layout = layout_of(
            make_topology(model="chatglm2-6b", precision="fp16", gpu=name, count=1, context=2048)
        )
        assert 0 < engine_budget(layout).static_bytes < gpu.memory_bytes


@pytest.mark.parametrize("pp", [1, 2, 3, 4, 5, 7, 8, 16, 23, 46, 64, 92])
def test_distinct_stage_pairs_cover_the_tightest_stage(pp: int) -> None:
    from controlplane.capacity.weights import distinct_stage_pairs

    for arch in (GLM45.arch, AIR.arch):
        if pp > arch.num_layers:
            continue
        shape = (8, 8, pp, 8, 1)
        weights = stage_weight_totals(arch, Precision.FP8, shape)
        ranges = stage_layers(arch.num_layers, pp)
        every = [
            (w, end - start + (1 if i == pp - 1 else 0))
            for i, (w, (start, end)) in enumerate(zip(weights, ranges, strict=True))
        ]
        fast = distinct_stage_pairs(arch, Precision.FP8, shape)
        for need in (0.0, 1e4, 1e6, 1e8):
            assert max(w + need * n for w, n in fast) == pytest.approx(
                max(w + need * n for w, n in every)
            )


def test_dp_attention_splits_the_embedding_over_attention_tp_only() -> None:
    """SGLang under DP attention: the embedding is vocab-parallel over the attention-TP group
    (`use_attn_tp_group`), the lm_head over the whole TP group (issue 11)."""
    layout = layout_of(
        make_topology(
            count=8, parallelism={"tensor": 4, "data": 2, "dp_attention": True, "expert": 8}
        )
    )
    assert (layout.tp, layout.dp, layout.moe_group) == (4, 2, 8)
    weights = replica_memory(layout).stages[0].weights
    arch = layout.arch
    assert weights.embedding == pytest.approx(-(-arch.vocab_size // 4) * arch.hidden_size * 2)
    assert weights.lm_head == pytest.approx(-(-arch.vocab_size // 8) * arch.hidden_size * 2)


def test_vllm_pool_is_whole_blocks_and_smallest_stage_decides() -> None:
    topo = make_topology(
        model="glm-4.5-air",
        precision="bf16",
        count=4,
        engine="vllm",
        parallelism={"tensor": 2, "pipeline": 2},
    )
    memory = replica_memory(layout_of(topo))
    assert memory.budget.page_tokens == 16
    assert all(s.kv_tokens % 16 == 0 for s in memory.stages)
    assert memory.kv_tokens == min(s.kv_tokens for s in memory.stages)
    assert len({s.kv_tokens for s in memory.stages}) == 2  # the stages differ


def test_vllm_budget_terms_follow_the_version() -> None:
    """0.21+ subtracts the CUDA-graph estimate; the sampler peak changes with the runner."""
    from controlplane.capacity.engine_rules import vllm_budget

    base = layout_of(make_topology(model="glm-4.5-air", count=2, engine="vllm"))
    old = vllm_budget(base.with_(engine_version=(0, 10)))
    target = vllm_budget(base)
    assert "cuda_graph_estimate" not in old.reserved
    assert target.reserved["cuda_graph_estimate"] == c.VLLM_CUDAGRAPH_ESTIMATE_BYTES
    total = base.gpu.torch_total_bytes
    kept = ("outside_gpu_memory_utilization", "not_visible_to_torch")
    assert target.static_bytes == pytest.approx(
        total * 0.9 - sum(v for k, v in target.reserved.items() if k not in kept)
    )
    assert target.static_bytes + target.reserved_bytes == pytest.approx(base.gpu.memory_bytes)
    wide = vllm_budget(base.with_(max_num_seqs=1024, engine_version=(0, 11)))
    assert wide.reserved["profiled_activation_peak"] == pytest.approx(
        1024 * base.arch.vocab_size * 4 * c.VLLM_SAMPLER_COPIES_V1
    )


@pytest.mark.parametrize("gpu", ["H100", "H200", "B200", "L40S", "A100-40G"])
@pytest.mark.parametrize("spec", [{}, {"speculative": {"algorithm": "none"}}])
def test_sglang_fast_static_matches_the_budget(gpu: str, spec: dict[str, object]) -> None:
    """The search's scalar path equals the itemised budget for every shape and flag."""
    from controlplane.capacity.engine_rules import SglangInputs, sglang_budget, sglang_static_bytes

    base = layout_of(make_topology(model="glm-4.5-air", gpu=gpu, count=1, **spec))
    for tp, pp, dp in ((1, 1, 1), (2, 1, 1), (4, 2, 1), (8, 1, 1), (2, 1, 4), (8, 2, 2)):
        for chunked in (None, 2048, 16384):
            layout = base.with_(tp=tp, pp=pp, dp=dp, dp_attention=dp > 1, chunked_prefill=chunked)
            inputs = SglangInputs.of(layout)
            assert sglang_static_bytes(inputs) == pytest.approx(sglang_budget(inputs).static_bytes)
