"""Decode and prefill time per replica: a roofline with latency floors, calibrated.

The simulated engine reuses this model to time its steps, so it stays pure and cheap:
`performance_model(topo)` precomputes the per-layout numbers once, and each call of
`decode_step_seconds` / `prefill_seconds` is a handful of float operations.

A forward pass costs the SUM of (constants in `constants` and `perf_constants`, each with
its source or stated assumption; the free ones fitted to published runs in
`ops/calibration/perf_cases.py`, an in-sample fit whose out-of-sample error is reported in
docs/guides/performance-model.md):
- a latency floor per decoder layer and a fixed step overhead;
- the HBM roofline: weights the batch touches (dense part, shared experts, lm_head and, for
  MoE, the expected number of distinct routed experts hit by tokens x experts_per_token
  draws) plus the KV of every running sequence (bytes by the spec's KV dtype);
- the tensor-core roofline: linear FLOPs (MoE grouped GEMMs padded to a row tile when an
  expert gets few tokens) and attention FLOPs over the context;
- communication: two all-reduces per dense layer under TP, and for expert parallelism one
  all-reduce plus an all-to-all dispatch and combine per MoE layer, each a latency plus
  bytes over the interconnect, intra- or inter-node;
- a per-sequence scheduler cost;
- for a prefill, the engine's prefill stall where the engine runs new prompts as a separate,
  un-graphed forward that every running decode waits for (SGLang; `timing_rules`,
  `perf_constants.prefill_stall_s`).
Summing rather than taking the max is what the published runs show (see `perf_constants`).
A topology's `performance:` section (measured on its own GPUs, `glmctl calibrate`) scales
the decode step and the prefill pass last.
With MTP a step is one verify forward over the drafted tokens plus the draft forwards of
the one-layer MTP model; it emits `tokens_per_step` tokens per sequence on average, from
per-position acceptance. Prefill uses the same terms over the new tokens.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from controlplane.capacity import constants as c
from controlplane.capacity.perf_constants import FITTED, PerfConstants
from controlplane.capacity.timing_rules import TimingRule, timing_rule
from controlplane.catalog import BYTES_PER_VALUE, Architecture, AttentionKind, Precision
from controlplane.spec import Topology

ACTIVATION_BYTES = 2  # decode activations travel in BF16 between ranks


@dataclass(frozen=True)
class _Forward:
    """The numbers of one forward pass shape (main model or draft layer) on one stage group."""

    fixed_bytes: float  # weight bytes read whatever the batch (dense part, shared, lm_head)
    expert_bytes: float  # bytes of one routed expert in one MoE layer
    expert_flops_per_row: float  # 2 x params of one routed expert (one MoE layer)
    moe_layers: int
    experts: int  # routed experts per MoE layer
    experts_per_token: int
    dense_flops_per_token: float  # 2 x active linear params outside the routed experts
    attn_flops_per_token_key: float  # per query token and cached key, all layers
    kv_bytes_per_token_rank: float  # KV bytes one rank reads per context token
    layers: int


@dataclass(frozen=True)
class _Comm:
    """Per-layer communication of one forward, as latency + seconds per token."""

    dense_layer_s: float  # per dense layer: all-reduces
    dense_layer_per_token_s: float
    moe_layer_s: float  # per MoE layer: all-reduce and/or all-to-all
    moe_layer_per_token_s: float


@dataclass(frozen=True)
class PerformanceModel:
    """Step times of one replica; see the module docstring for the model."""

    tokens_per_step: float  # mean tokens per sequence per decode step (acceptance length)
    kv_token_capacity: int  # KV-cache tokens one replica holds (from the memory model)
    assumptions: tuple[str, ...]
    _main: _Forward
    _draft: _Forward | None
    _verify_tokens: int  # tokens per sequence the verify forward scores (1 without MTP)
    _draft_passes: int  # draft forwards per step (num_steps [+ 1 draft extend on SGLang])
    _draft_tokens_per_pass: int  # eagle_topk
    _copies: int  # independent engine copies inside the replica (data parallel, no DP attn)
    _kv_groups: int  # attention groups that split the running sequences (DP attention)
    _bandwidth: float  # effective bytes/s of one stage group (all its GPUs)
    _rank_bandwidth: float  # effective bytes/s of one GPU
    _flops: float  # effective FLOP/s of one stage group
    _comm: _Comm
    _step_seconds: float  # step overhead + pipeline hand-offs
    _layer_floor: float
    _per_sequence: float
    _draft_overhead: float
    _moe_tile: int
    _prefill_flops_scale: float  # decode FLOP/s efficiency over prefill's
    _prefill_stall: float = 0.0  # fixed cost of one separate prefill pass (engine scheduling)
    separate_prefill_pass: bool = False  # prompts run in a forward of their own (TimingRule)
    # The topology's measured corrections (`performance:`, from `glmctl calibrate`).
    _decode_scale: float = 1.0
    _prefill_scale: float = 1.0

    def decode_step_seconds(self, batch_size: int, context_tokens: int) -> float:
        """One decode step for `batch_size` running sequences whose KV totals context_tokens."""
        if batch_size <= 0:
            return 0.0
        batch = math.ceil(batch_size / self._copies)
        context = context_tokens / self._copies / self._kv_groups
        verify = self._verify_tokens
        seconds = self._step_seconds + batch * self._per_sequence
        seconds += self._forward(self._main, batch * verify, verify, context)
        if self._draft is not None:
            per_pass = self._forward(self._draft, batch * self._draft_tokens_per_pass, 1, context)
            seconds += self._draft_passes * (per_pass + self._draft_overhead)
        return seconds * self._decode_scale

    def prefill_seconds(self, new_tokens: int, cached_tokens: int = 0) -> float:
        """One prefill pass of new_tokens on one replica (cached tokens are read, not computed)."""
        if new_tokens <= 0:
            return 0.0
        main = self._main
        stall = self._prefill_stall
        pairs = new_tokens * cached_tokens + new_tokens * (new_tokens + 1) / 2
        seconds = self._step_seconds + self._layer_seconds(main, new_tokens)
        flops_scale = self._prefill_flops_scale
        seconds += self._weights_seconds(main, new_tokens)
        seconds += self._linear_seconds(main, new_tokens) * flops_scale
        seconds += main.attn_flops_per_token_key * pairs / self._flops * flops_scale
        seconds += (
            (cached_tokens + new_tokens) * main.kv_bytes_per_token_rank / self._rank_bandwidth
        )
        if self._draft is not None:  # the draft layer extends over the prompt too
            seconds *= 1 + self._draft.layers / main.layers
        return (seconds + stall) * self._prefill_scale

    def prompt_chunk_seconds(self, chunk: int, cached_tokens: int = 0) -> float:
        """What `chunk` prompt tokens add to the inter-token latency of the running decodes.

        An engine that runs prompts in a separate forward (SGLang's default) stalls every
        running decode for that whole pass: its own step overhead, layer floors, weight reads
        and the prefill stall. An engine that schedules prompt chunks into the decode step
        (vLLM V1) adds only what the chunk's tokens cost beyond a one-token pass: the step
        overhead, layer floors and weight reads are shared with the decode.
        """
        if chunk <= 0:
            return 0.0
        whole = self.prefill_seconds(chunk, cached_tokens)
        if self.separate_prefill_pass:
            return whole
        return whole - self.prefill_seconds(1, cached_tokens)

    def decode_tokens_per_second(self, batch_size: int, context_per_seq: int) -> float:
        """Output tokens per second of the replica at a steady batch (a convenience)."""
        step = self.decode_step_seconds(batch_size, batch_size * context_per_seq)
        return batch_size * self.tokens_per_step / step if step > 0 else 0.0

    def _forward(self, fwd: _Forward, tokens: int, queries_per_seq: int, context: float) -> float:
        """Time of one forward over `tokens` tokens whose sequences hold `context` KV."""
        kv = context * fwd.kv_bytes_per_token_rank / self._rank_bandwidth
        attention = fwd.attn_flops_per_token_key * context * queries_per_seq / self._flops
        return (
            self._layer_seconds(fwd, tokens)
            + self._weights_seconds(fwd, tokens)
            + self._linear_seconds(fwd, tokens)
            + kv
            + attention
        )

    def _layer_seconds(self, fwd: _Forward, tokens: int) -> float:
        """Per-layer latency floors and communication."""
        comm = self._comm
        dense = fwd.layers - fwd.moe_layers
        return (
            fwd.layers * self._layer_floor
            + dense * (comm.dense_layer_s + tokens * comm.dense_layer_per_token_s)
            + fwd.moe_layers * (comm.moe_layer_s + tokens * comm.moe_layer_per_token_s)
        )

    def _weights_seconds(self, fwd: _Forward, tokens: int) -> float:
        distinct = _distinct_experts(fwd.experts, fwd.experts_per_token, tokens)
        return (fwd.fixed_bytes + fwd.moe_layers * distinct * fwd.expert_bytes) / self._bandwidth

    def _linear_seconds(self, fwd: _Forward, tokens: int) -> float:
        """Dense GEMMs plus MoE grouped GEMMs, each hit expert padded to the row tile."""
        flops = fwd.dense_flops_per_token * tokens
        distinct = _distinct_experts(fwd.experts, fwd.experts_per_token, tokens)
        if distinct > 0:
            rows = max(tokens * fwd.experts_per_token / distinct, self._moe_tile)
            flops += fwd.moe_layers * distinct * rows * fwd.expert_flops_per_row
        return flops / self._flops


def _distinct_experts(experts: int, per_token: int, tokens: int) -> float:
    """Expected distinct experts hit by `tokens` tokens drawing `per_token` experts each.

    Uniform routing: each expert is missed by one token with probability 1 - k/E.
    """
    if experts == 0 or tokens <= 0:
        return 0.0
    return experts * (1.0 - (1.0 - per_token / experts) ** tokens)


# ----- building the model ---------------------------------------------------------------------


def _weight_bytes(precision: Precision) -> float:
    return BYTES_PER_VALUE[precision]


def _embedding_bytes(precision: Precision) -> float:
    """Embeddings and lm_head stay 16-bit in FP8 and weight-only quantised checkpoints."""
    return 2.0 if BYTES_PER_VALUE[precision] < 2 else BYTES_PER_VALUE[precision]


def _attn_flops_per_key(arch: Architecture) -> float:
    """FLOPs per query token per cached key, all layers: QK^T and AV, 2 FLOPs per MAC."""
    if arch.attention is AttentionKind.MLA:
        qk = arch.qk_nope_head_dim + arch.qk_rope_head_dim
        per_layer = 2 * arch.num_attention_heads * (qk + arch.v_head_dim)
    else:
        per_layer = 4 * arch.num_attention_heads * arch.head_dim
    return float(per_layer * arch.num_layers)


def _main_forward(topo: Topology, kv_rank_bytes_per_token: float) -> _Forward:
    arch, precision = topo.arch, topo.precision
    routed = arch.num_moe_layers * arch.num_routed_experts * arch.expert_params()
    body = arch.total_params(include_nextn=False) - routed
    body -= arch.embedding_params() + arch.lm_head_params()
    head = arch.vocab_size * arch.hidden_size  # lm_head (or the tied embedding) read per step
    active_linear = arch.active_params() - arch.embedding_params() // arch.vocab_size
    routed_active = arch.num_moe_layers * arch.experts_per_token * arch.expert_params()
    return _Forward(
        fixed_bytes=body * _weight_bytes(precision) + head * _embedding_bytes(precision),
        expert_bytes=arch.expert_params() * _weight_bytes(precision),
        expert_flops_per_row=2.0 * arch.expert_params(),
        moe_layers=arch.num_moe_layers,
        experts=arch.num_routed_experts,
        experts_per_token=arch.experts_per_token,
        dense_flops_per_token=2.0
        * (active_linear - routed_active + (head if arch.tie_word_embeddings else 0)),
        attn_flops_per_token_key=_attn_flops_per_key(arch),
        kv_bytes_per_token_rank=kv_rank_bytes_per_token,
        layers=arch.num_layers,
    )


def _draft_forward(topo: Topology, main: _Forward) -> _Forward:
    """One MTP layer (a full MoE decoder layer + eh_proj) and the shared lm_head."""
    arch, precision = topo.arch, topo.precision
    head = arch.vocab_size * arch.hidden_size
    routed = arch.num_routed_experts * arch.expert_params() if arch.is_moe else 0
    layer = arch.nextn_layer_params() - routed
    return _Forward(
        fixed_bytes=layer * _weight_bytes(precision) + head * _embedding_bytes(precision),
        expert_bytes=main.expert_bytes,
        expert_flops_per_row=main.expert_flops_per_row,
        moe_layers=1 if arch.is_moe else 0,
        experts=main.experts,
        experts_per_token=main.experts_per_token,
        dense_flops_per_token=2.0 * (layer + head),
        attn_flops_per_token_key=main.attn_flops_per_token_key / arch.num_layers,
        kv_bytes_per_token_rank=main.kv_bytes_per_token_rank / arch.num_layers,
        layers=1,
    )


def drafted_tokens(topo: Topology, rule: TimingRule | None = None) -> int:
    """Draft positions a step can accept (0 without speculative decoding)."""
    spec = topo.speculative
    if spec is None:
        return 0
    assert spec.num_steps is not None and spec.num_draft_tokens is not None
    return (rule or timing_rule(topo)).drafted_positions(spec.num_steps, spec.num_draft_tokens)


def acceptance_length(
    topo: Topology, constants: PerfConstants = FITTED, rule: TimingRule | None = None
) -> float:
    """Mean tokens per verify step: the spec's `acceptance_length`, else per-position rates."""
    spec = topo.speculative
    if spec is None:
        return 1.0
    drafted = drafted_tokens(topo, rule)
    if spec.acceptance_length is not None:
        return min(spec.acceptance_length, drafted + 1.0)
    rates = constants.mtp_position_acceptance
    total, reach = 1.0, 1.0
    for position in range(drafted):
        reach *= rates[min(position, len(rates) - 1)]
        total += reach
    return total


def _group_gpus(topo: Topology) -> tuple[int, int]:
    """(engine copies inside the replica, GPUs of one pipeline stage of one copy)."""
    if topo.spec.parallelism.dp_attention or topo.dp == 1:
        return 1, topo.tp * topo.dp
    return topo.dp, topo.tp


def _peak_flops(topo: Topology) -> float:
    gpu = topo.gpu
    if topo.precision is Precision.FP8 and gpu.fp8_flops is not None:
        return gpu.fp8_flops
    return gpu.bf16_flops


def _comm(topo: Topology, group: int, k: PerfConstants) -> _Comm:
    """All-reduce and all-to-all cost per layer for one stage group of `group` GPUs."""
    if group <= 1:
        return _Comm(0.0, 0.0, 0.0, 0.0)
    inter = topo.nodes > topo.pp  # a stage spans nodes
    hidden_bytes = topo.arch.hidden_size * ACTIVATION_BYTES
    link = topo.gpu.interconnect_bandwidth
    # Ring all-reduce moves 2 (n-1)/n of the activations through each GPU's link.
    ar_latency = c.ALLREDUCE_LATENCY_INTER_S if inter else c.ALLREDUCE_LATENCY_INTRA_S
    ar_per_token = hidden_bytes * 2 * (group - 1) / group / link
    if topo.ep <= 1:
        return _Comm(2 * ar_latency, 2 * ar_per_token, 2 * ar_latency, 2 * ar_per_token)
    # Expert parallel: the attention all-reduce stays; the MoE all-reduce becomes a dispatch
    # and a combine, each sending every token to up to k expert ranks.
    a2a_latency = k.a2a_latency_inter_s if inter else k.a2a_latency_intra_s
    fanout = min(topo.arch.experts_per_token, topo.ep)
    a2a_per_token = (
        hidden_bytes
        * fanout
        * (topo.ep - 1)
        / topo.ep
        / (group * link * k.a2a_bandwidth_efficiency)
    )
    return _Comm(
        2 * ar_latency,
        2 * ar_per_token,
        ar_latency + 2 * a2a_latency,
        ar_per_token + 2 * a2a_per_token,
    )


def performance_model(
    topo: Topology, constants: PerfConstants = FITTED, rule: TimingRule | None = None
) -> PerformanceModel:
    """The calibrated performance model of one replica of `topo` (pure, cheap); `rule`
    overrides the engine's timing rule (the calibration replays other engines' runs)."""
    from controlplane.capacity.kv import kv_bytes_per_token_rank, kv_token_capacity
    from controlplane.capacity.layout import layout_of
    from controlplane.capacity.perf_notes import assumptions

    copies, group = _group_gpus(topo)
    main = _main_forward(topo, kv_bytes_per_token_rank(layout_of(topo)))
    draft = _draft_forward(topo, main) if topo.speculative is not None else None
    spec = topo.speculative
    rule = rule or timing_rule(topo)
    verify, passes, topk = 1, 0, 1
    if spec is not None:
        assert spec.num_steps is not None and spec.num_draft_tokens is not None
        verify = rule.verify_tokens(spec.num_draft_tokens)
        passes = rule.draft_passes(spec.num_steps)
        topk = spec.eagle_topk or 1
    rank_bw = topo.gpu.hbm_bandwidth * c.HBM_EFFICIENCY
    tokens = acceptance_length(topo, constants, rule)
    measured = topo.spec.performance
    return PerformanceModel(
        tokens_per_step=tokens,
        kv_token_capacity=kv_token_capacity(topo),
        assumptions=assumptions(topo, tokens, constants, rule),
        _main=main,
        _draft=draft,
        _verify_tokens=verify,
        _draft_passes=passes,
        _draft_tokens_per_pass=topk,
        _copies=copies,
        _kv_groups=topo.dp if topo.spec.parallelism.dp_attention else 1,
        _bandwidth=rank_bw * group,
        _rank_bandwidth=rank_bw,
        _flops=_peak_flops(topo) * c.FLOPS_EFFICIENCY * group,
        _comm=_comm(topo, group, constants),
        _step_seconds=constants.step_overhead_s + (topo.pp - 1) * c.PP_STAGE_LATENCY_S,
        _layer_floor=constants.layer_floor(topo.gpu.name),
        _per_sequence=constants.per_sequence_s,
        _draft_overhead=constants.draft_overhead_s,
        _moe_tile=constants.moe_tile_tokens,
        _prefill_flops_scale=c.FLOPS_EFFICIENCY / constants.prefill_flops_efficiency,
        _prefill_stall=constants.prefill_stall_s if rule.separate_prefill_pass else 0.0,
        separate_prefill_pass=rule.separate_prefill_pass,
        _decode_scale=measured.decode_scale if measured else 1.0,
        _prefill_scale=measured.prefill_scale if measured else 1.0,
    )
