"""Constants of the performance model: fitted to published runs, or stated with their source.

The roofline assumptions that stand on their own (HBM and tensor-core efficiency, all-reduce
and pipeline latencies) stay in `controlplane.capacity.constants`. The numbers here are the
ones no datasheet gives: per-step and per-layer latency floors of each engine, the cost of
each running sequence, the expert-parallel all-to-all, MTP acceptance per position and the
SGLang prefill stall. Only these values ship; the runs they come from and the fitting code
live in `ops/calibration/` (not part of the package).

Provenance of `FITTED_FIELDS` (reproduce with `python -m ops.benchmarks.perf_fit`): a grid
search (7,560 points) ranking by the largest absolute log-error, then the sum of squared
log-errors, of TPOT and output tokens/s over the checked figures of the fit set
`ops/calibration/perf_cases.py` (40 figures from 5 sources; 37 of them from NVIDIA's two
TensorRT-LLM sweeps, replayed with the SGLang profile; vLLM #25993 contributes no checked
figure). Every fit-set figure is within 9.8% - an IN-SAMPLE fit, not a validation. Out of
sample, see `python -m ops.benchmarks.perf_calibration` and docs/guides/performance-model.md:
leave-one-source-out the two TensorRT-LLM sweeps reach 14.4% / 14.3% worst error, and on
the SGLang cookbook's GLM-4.6 runs on 8 x B200 (held out) 16 of 18 figures are within 10%,
the 1k / 1k run at 100 clients is not (-18% TPOT, +18% tokens/s). The stated assumptions
below are not fitted; each says what it rests on.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class PerfConstants:
    """Every tunable of the performance model; `FITTED` is the one glmctl uses."""

    # Fixed cost of one engine step outside the forward: scheduling, input preparation,
    # sampling, detokenisation hand-off. ONE value for every engine: the set has a single
    # reachable vLLM point (GPUStack, 4 clients), too few to give vLLM its own. No GPU term
    # either: every reachable case is Hopper (H100 / H200), where kernel launch and
    # synchronisation latencies are the same; a B200 case would split it.
    step_overhead_s: float = 0.25e-3
    # Latency of one decoder layer's kernel chain that does not overlap the bytes it reads
    # (norms, router, launch and synchronisation gaps between ~20 kernels even under CUDA
    # graphs). Added to, not max-ed with, the roofline: the published TPOTs stay flat at
    # ~16 ms from batch 4 to 16 while the expert bytes read grow threefold, which a max()
    # cannot produce. One value for every engine (as above).
    layer_floor_s: float = 125e-6
    # The layer floor on other GPUs than Hopper, as a factor, fitted on the GB200 sweep (the
    # only non-Hopper runs in the set: 7 points) over 0.8-1.1: 1.0, no sign that Blackwell's
    # kernel chain per layer is shorter or longer.
    layer_floor_gpu_scale: dict[str, float] = field(default_factory=lambda: {"B200": 1.0})
    # Per running sequence per step: the scheduler's bookkeeping, block tables, sampling and
    # output processing in Python (fitted; 0, 5 and 10 us were tried).
    per_sequence_s: float = 5e-6
    # Expert-parallel all-to-all per MoE layer: dispatch and combine each cost a latency
    # plus the routed activations over the interconnect. Stated assumption: DeepEP reports
    # ~10-20 us per NVLink dispatch or combine inside a node and ~100-200 us over RDMA
    # (deepseek-ai/DeepEP README, low-latency kernels); the intra-node value is fitted within
    # that range (10 us; 10, 20 and 30 tried), the inter-node one (no multi-node case in the
    # set) stated: 150 us.
    a2a_latency_intra_s: float = 10e-6
    a2a_latency_inter_s: float = 150e-6
    # Fraction of the interconnect bandwidth the all-to-all reaches (DeepEP: ~150 of
    # 450 GB/s per direction on NVLink; stated assumption).
    a2a_bandwidth_efficiency: float = 0.33
    # MoE grouped GEMM efficiency falls when each expert gets few tokens: a tile of
    # `moe_tile_tokens` rows is computed whatever the tokens, so FLOPs of an expert are
    # 2 x params x max(tokens, tile) x (1 / efficiency). Stated assumption: Hopper grouped
    # GEMMs (DeepGEMM, CUTLASS) use 64-row tiles for small M. Tested and rejected by the
    # fit: 64-row padding makes TPOT grow from batch 4 to 64 faster than published (max
    # error 15% against 9.8%), so 1 (no padding) is used: a small-M expert GEMM is bound by
    # reading its weights, which the HBM term already charges.
    moe_tile_tokens: int = 1
    # Per-position conditional acceptance of GLM's MTP draft (position 1 given nothing,
    # position 2 given position 1, ...). Sources: vLLM #25993 (one MTP token lifts single
    # stream 47 -> 73 tok/s; a second token "near 0 accept rate"), SGLang #14457 (accept
    # length 2.02 at 3 steps, 2.08 at 5 steps for GLM-4.6). Fitted by hand to both:
    # 1 + .72 = 1.72; 1 + .72 + .72 x .36 + .72 x .36 x .15 = 2.02.
    mtp_position_acceptance: tuple[float, ...] = (0.72, 0.36, 0.15, 0.1, 0.1, 0.1, 0.1, 0.1)
    # Fraction of peak tensor FLOP/s a prefill reaches (decode uses
    # `constants.FLOPS_EFFICIENCY`). Fitted over 0.25 / 0.35 / 0.5: the prefill mixed into
    # decode steps is what makes TPOT rise from 128 to 256 clients. Published prefill MFU
    # for MoE models is 30-50%; 0.35 fits best.
    prefill_flops_efficiency: float = 0.35
    # One draft forward of the one-layer MTP model outside its layer floor (a CUDA graph
    # replay, the draft's sampling). Stated assumption.
    draft_overhead_s: float = 0.0003
    # Fixed cost of one prefill pass that runs as a separate forward and stalls every running
    # decode: SGLang's default (`timing_rules.TimingRule.separate_prefill_pass`; extend and
    # decode batches alternate, and the extend forward runs without CUDA graphs: "SGLang's
    # current native prefilling can incur kernel launch overhead", sgl-project/sglang#10062,
    # which made piecewise prefill graphs opt-in). Read, not fitted, from a run the fit does not
    # use: the SGLang cookbook's GLM-4.5V page (8 x B200, TP 4, SGLang 0.5.6.post2,
    # sgl-project/sgl-cookbook docs/autoregressive/GLM/GLM-4.5V.md), 1k/1k at 100 clients: P95
    # inter-token latency 81.30 ms against a median of 18.35 ms, so one ~500-token prefill
    # stalls decoding for ~63 ms, where the roofline terms give 20 ms: 43 ms. Engines without a
    # separate pass (vLLM V1's chunked prefill inside the decode step, TensorRT-LLM's in-flight
    # batching) do not pay it. SGLang 0.5.23, glmctl's target, captures the extend forward in a
    # breakable CUDA graph by default (model_executor/runner/prefill_cuda_graph_runner.py; a PD
    # prefill server keeps it, arg_groups/cuda_graph_hook.py), which should shrink the stall;
    # no published 0.5.23 GLM run gives its new size, so the 0.5.6 figure stays
    # (docs/guides/disaggregation.md shows which PD verdict depends on it).
    prefill_stall_s: float = 43e-3

    def layer_floor(self, gpu: str = "") -> float:
        return self.layer_floor_s * self.layer_floor_gpu_scale.get(gpu, 1.0)


FITTED = PerfConstants()
# The fields the fit varies (the rest are stated assumptions).
FITTED_FIELDS = (
    "step_overhead_s",
    "layer_floor_s",
    "layer_floor_gpu_scale",
    "per_sequence_s",
    "a2a_latency_intra_s",
    "moe_tile_tokens",
    "prefill_flops_efficiency",
)
