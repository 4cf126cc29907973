"""Pool sizing for a workload: what one replica serves within the TTFT and ITL bounds.

Pure functions over the calibrated performance model (`performance_model`, whose public
`prefill_seconds`, `decode_step_seconds` and `tokens_per_step` are all this module uses),
the way NVIDIA Dynamo's SLA planner sizes disaggregated pools
(shared/reference/pd-and-kv-events.md, "Sizing P and D"):

- a prefill replica serves prompts at the rate whose queueing still keeps the tail prompt's
  TTFT (queue wait + prefill + KV transfer + the decode's first step) under the bound;
- a decode replica runs the largest batch whose inter-token latency stays under the bound
  at context ISL + OSL/2, and serves that batch's output tokens/s;
- a colocated replica does both on one engine: prompt chunks interrupt or join the decode
  steps (`PerformanceModel.prompt_chunk_seconds`: a separate pass on SGLang, sharing the
  step's weight reads on vLLM), so the chunk must be small enough that such a step keeps the
  ITL bound, and the prompt tokens of the served rate must fit into the decode steps with
  the same queueing allowance a prefill pool gets.

Queueing at a prefill replica is taken as M/M/1 (Poisson arrivals; exponential service is
the conservative choice for the 99th-percentile wait: P(wait > t) = rho exp(-(1 - rho) t / S)).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from controlplane.capacity.perf_constants import FITTED, PerfConstants
from controlplane.capacity.performance import PerformanceModel, performance_model
from controlplane.catalog.gpus import GIB
from controlplane.spec.topology import Topology

__all__ = [
    "PoolRate",
    "Workload",
    "batch_tokens",
    "colocated_rate",
    "decode_rate",
    "prefill_rate",
]

TAIL = 0.01  # the SLOs are 99th percentiles
# The prompt tokens an engine batches into one prefill step when the spec sets none: SGLang
# 0.5.23 arg_groups/memory_hook.py chunked_prefill_size (2048 under 20 GiB, 4096 under
# 60 GiB, 8192 under 160 GiB, 16384 above); vLLM 0.32 engine/arg_utils.py agrees for the
# OpenAI server on H100/H200 (8192) and B200 (16384).
BATCH_TOKENS_BY_GIB = ((20, 2048), (60, 4096), (160, 8192))
LARGE_GPU_BATCH_TOKENS = 16384
# vLLM 0.32's default max_num_seqs for the OpenAI server on H100/H200/B200 (arg_utils.py).
MAX_DECODE_BATCH = 1024


@dataclass(frozen=True)
class Workload:
    """Prompt and output lengths (mean and tail), arrival rate and the SLO bounds."""

    prompt_tokens: int
    output_tokens: int
    rate: float  # requests per second
    ttft_s: float
    itl_s: float
    prompt_p99: int | None = None  # default: the mean (fixed-length prompts)

    @property
    def prompt_tail(self) -> int:
        return max(self.prompt_p99 or self.prompt_tokens, self.prompt_tokens)

    @property
    def decode_context(self) -> int:
        """Mean tokens a decoding sequence holds (Dynamo: ISL + OSL / 2)."""
        return self.prompt_tokens + self.output_tokens // 2


@dataclass(frozen=True)
class PoolRate:
    """Requests per second one replica serves within the bounds, or why it cannot."""

    requests_per_s: float
    detail: str  # how: the batch, the chunk, the utilisation

    @property
    def feasible(self) -> bool:
        return self.requests_per_s > 0


def batch_tokens(topo: Topology) -> int:
    """Prompt tokens one prefill step carries: the spec's chunked prefill or the engine's."""
    if topo.spec.engine.chunked_prefill:
        return topo.spec.engine.chunked_prefill
    gib = topo.gpu.memory_bytes / GIB
    return next((t for limit, t in BATCH_TOKENS_BY_GIB if gib < limit), LARGE_GPU_BATCH_TOKENS)


def max_utilisation(service_s: float, slack_s: float) -> float:
    """Highest utilisation whose 99th-percentile M/M/1 wait stays within `slack_s`."""
    if slack_s <= 0:
        return 0.0
    low, high = 0.0, 1.0
    for _ in range(50):
        rho = (low + high) / 2
        wait = 0.0 if rho <= TAIL else service_s / (1 - rho) * math.log(rho / TAIL)
        low, high = (rho, high) if wait <= slack_s else (low, rho)
    return low


def prefill_rate(
    topo: Topology,
    work: Workload,
    transfer_s: float,
    first_step_s: float,
    constants: PerfConstants = FITTED,
) -> PoolRate:
    """Requests/s one prefill replica serves with the tail prompt's TTFT within the bound."""
    model = performance_model(topo, constants)
    tail = model.prefill_seconds(work.prompt_tail)
    slack = work.ttft_s - transfer_s - first_step_s - tail
    if slack <= 0:
        return PoolRate(
            0.0,
            f"a {work.prompt_tail}-token prompt alone takes {tail:.2f} s to prefill"
            f" (+{transfer_s * 1000:.0f} ms transfer), over the {work.ttft_s:g} s TTFT bound",
        )
    per_batch = max(1, batch_tokens(topo) // work.prompt_tokens)
    service = model.prefill_seconds(per_batch * work.prompt_tokens) / per_batch
    rho = max_utilisation(service, slack)
    return PoolRate(
        rho / service,
        f"{per_batch} prompt(s) per step, {service * 1000:.0f} ms each, utilisation {rho:.2f}",
    )


def _itl(model: PerformanceModel, batch: int, context: int) -> float:
    return model.decode_step_seconds(batch, batch * context) / model.tokens_per_step


def _largest(feasible: Callable[[int], bool], ceiling: int) -> int:
    """The largest value in [1, ceiling] that `feasible` accepts (0: none); `feasible` holds
    up to some value and not beyond (more sequences or tokens never make a step faster)."""
    if ceiling < 1 or not feasible(1):
        return 0
    low, high = 1, ceiling
    while low < high:
        mid = (low + high + 1) // 2
        low, high = (mid, high) if feasible(mid) else (low, mid - 1)
    return low


def decode_ceiling(topo: Topology, work: Workload) -> int:
    """Most sequences a replica runs at once: what its KV holds at the workload's lengths,
    and no more than the engine is told to run (`max_num_seqs`: vLLM's --max-num-seqs,
    SGLang's --max-running-requests; the rest wait in the engine's queue)."""
    per_seq = work.prompt_tail + work.output_tokens
    held = performance_model(topo).kv_token_capacity // per_seq
    return min(MAX_DECODE_BATCH, held, topo.spec.max_num_seqs)


def decode_rate(topo: Topology, work: Workload, constants: PerfConstants = FITTED) -> PoolRate:
    """Requests/s one decode replica serves at the largest batch within the ITL bound."""
    model = performance_model(topo, constants)
    context = work.decode_context
    batch = _largest(lambda b: _itl(model, b, context) <= work.itl_s, decode_ceiling(topo, work))
    if batch == 0:
        return PoolRate(0.0, f"one sequence's ITL is {_itl(model, 1, context) * 1000:.0f} ms")
    step = model.decode_step_seconds(batch, batch * context)
    tokens_per_s = batch * model.tokens_per_step / step
    return PoolRate(
        tokens_per_s / work.output_tokens,
        f"batch {batch}, ITL {step / model.tokens_per_step * 1000:.0f} ms,"
        f" {tokens_per_s:.0f} output tokens/s",
    )


def chunk_seconds(model: PerformanceModel, chunk: int, cached: int) -> float:
    """What `chunk` prompt tokens add to a decode step they ride in: the model's
    `prompt_chunk_seconds` (a whole separate pass on SGLang, the chunk's marginal cost where
    it shares the decode step's forward, as on vLLM)."""
    return model.prompt_chunk_seconds(chunk, cached)


def _chunk(model: PerformanceModel, step_s: float, budget_s: float, limit: int, cached: int) -> int:
    """Largest prompt chunk whose tokens fit beside a decode step within `budget_s`."""
    room = budget_s - step_s
    return _largest(lambda c: chunk_seconds(model, c, cached) <= room, limit)


def colocated_rate(topo: Topology, work: Workload, constants: PerfConstants = FITTED) -> PoolRate:
    """Requests/s one colocated replica serves with chunked prefill inside the ITL bound."""
    model = performance_model(topo, constants)
    tps, context = model.tokens_per_step, work.decode_context
    cached = work.prompt_tokens // 2

    def served(batch: int) -> float:
        step = model.decode_step_seconds(batch, batch * context)
        chunk = _chunk(model, step, work.itl_s * tps, batch_tokens(topo), cached)
        if chunk == 0:
            return 0.0
        mixed = step + chunk_seconds(model, chunk, cached)
        share = batch * tps * work.prompt_tokens / (work.output_tokens * chunk)
        # The chunk slots are the replica's prefill server: it queues as a prefill pool does.
        service = work.prompt_tokens / chunk * mixed
        slack = work.ttft_s - math.ceil(work.prompt_tail / chunk) * mixed
        if share > max_utilisation(service, slack):
            return 0.0
        mean_step = share * mixed + (1 - share) * step
        return batch * tps / mean_step / work.output_tokens

    batch = _largest(lambda b: served(b) > 0, decode_ceiling(topo, work))
    if batch == 0:
        return PoolRate(0.0, "no batch keeps both the ITL bound and the prompts' prefill")
    how = (
        "prompt passes between decode steps"
        if model.separate_prefill_pass
        else "prompt chunks inside decode steps"
    )
    return PoolRate(served(batch), f"batch {batch} with {how}")
