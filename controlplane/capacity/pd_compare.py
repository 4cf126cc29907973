"""Propose xPyD for a workload and compare it with colocated serving, per GPU.

`compare_layouts(topology, workload)` is pure. It takes the feasible layouts of the
topology's model and GPU (the layout search, preflight errors dropped), sizes each as a
prefill, decode and colocated replica for the workload (capacity/pd_sizing.py), and picks:

- PD: the (prefill layout, decode layout) pair the engines accept (capacity/pd_checks.py),
  without a known report against it when such a pair exists, needing the fewest GPUs at
  the workload's rate, x = ceil(rate / prefill replica rate)
  prefill replicas and y = ceil(rate / decode replica rate) decode replicas (Dynamo's
  planner: prefill from prompt tokens/s at the TTFT bound, decode from output tokens/s at
  the ITL bound);
- colocated: the layout needing the fewest GPUs for the same rate.

Goodput per GPU = output tokens/s served within both bounds / GPUs. The layout with more
wins; equal GPU counts are broken by the GPU time a request costs at full pools (no
rounding to whole replicas), then go to colocated serving (one pool, no transfer). The
reason line says which figures decided.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from controlplane.capacity.layout import layout_of
from controlplane.capacity.pd_capacity import transfer_between
from controlplane.capacity.pd_checks import pd_findings
from controlplane.capacity.pd_sizing import (
    PoolRate,
    Workload,
    colocated_rate,
    decode_rate,
    prefill_rate,
)
from controlplane.capacity.perf_constants import FITTED, PerfConstants
from controlplane.capacity.performance import performance_model
from controlplane.capacity.preflight import Severity
from controlplane.capacity.search import POWERS_OF_TWO, search
from controlplane.errors import SpecError
from controlplane.spec.disaggregation import (
    DisaggregationSpec,
    PoolGpus,
    PoolSpec,
    bootstrap_port,
    transfer_backend,
)
from controlplane.spec.models import ParallelismSpec
from controlplane.spec.pd_pools import PdPools, pd_pools, pool_spec
from controlplane.spec.resolve import resolve
from controlplane.spec.topology import Topology

__all__ = ["Colocated", "Comparison", "Disaggregated", "candidate_layouts", "compare_layouts"]

LAYOUTS_PER_GPU_COUNT = 2  # the search's best few per GPU count keep the pairs few


@dataclass(frozen=True)
class Disaggregated:
    """xPyD: `prefill_replicas` x prefill layout + `decode_replicas` x decode layout."""

    prefill: Topology
    decode: Topology
    prefill_replicas: int
    decode_replicas: int
    prefill_rate: PoolRate
    decode_rate: PoolRate
    transfer_s: float
    warnings: tuple[str, ...] = ()  # PD preflight warnings of the pair (finding codes)

    @property
    def gpus(self) -> int:
        return (
            self.prefill_replicas * self.prefill.gpus_per_replica
            + self.decode_replicas * self.decode.gpus_per_replica
        )

    @property
    def gpu_seconds_per_request(self) -> float:
        """GPU time a request costs at full pools (no rounding to whole replicas)."""
        return (
            self.prefill.gpus_per_replica / self.prefill_rate.requests_per_s
            + self.decode.gpus_per_replica / self.decode_rate.requests_per_s
        )

    def describe(self) -> str:
        return (
            f"{self.prefill_replicas}P{self.decode_replicas}D: {self.prefill_replicas} x"
            f" prefill {_shape(self.prefill)} + {self.decode_replicas} x decode"
            f" {_shape(self.decode)}"
        )


@dataclass(frozen=True)
class Colocated:
    topology: Topology
    replicas: int
    rate: PoolRate

    @property
    def gpus(self) -> int:
        return self.replicas * self.topology.gpus_per_replica

    @property
    def gpu_seconds_per_request(self) -> float:
        """GPU time a request costs at full replicas (no rounding to whole replicas)."""
        return self.topology.gpus_per_replica / self.rate.requests_per_s

    def describe(self) -> str:
        return f"{self.replicas} x colocated {_shape(self.topology)}"


@dataclass(frozen=True)
class Comparison:
    """The best PD and colocated layouts for a workload, the winner and why."""

    workload: Workload
    disaggregated: Disaggregated | None
    colocated: Colocated | None
    winner: str  # "disaggregated", "colocated" or "none"
    reason: str

    def goodput_per_gpu(self, gpus: int | None) -> float:
        """Output tokens/s per GPU at the workload's rate (0 when nothing serves it)."""
        work = self.workload
        return work.rate * work.output_tokens / gpus if gpus else 0.0

    def rows(self) -> list[dict[str, Any]]:
        """One row per layout kind, for tables and JSON."""
        rows = []
        for kind, found in (("disaggregated", self.disaggregated), ("colocated", self.colocated)):
            gpus = found.gpus if found else None
            rows.append(
                {
                    "kind": kind,
                    "layout": found.describe() if found else "none meets the bounds",
                    "gpus": gpus,
                    "goodput_per_gpu": round(self.goodput_per_gpu(gpus), 1),
                    "gpu_seconds_per_request": (
                        round(found.gpu_seconds_per_request, 4) if found else None
                    ),
                    "detail": _detail(found),
                    "winner": kind == self.winner,
                }
            )
        return rows


def _shape(topo: Topology) -> str:
    attn = f" DP-attn {topo.dp}" if topo.spec.parallelism.dp_attention else ""
    return f"{topo.gpus_per_replica} x {topo.gpu.name} (TP {topo.tp} EP {topo.ep}{attn})"


def _detail(found: Disaggregated | Colocated | None) -> str:
    if isinstance(found, Disaggregated):
        return (
            f"prefill {found.prefill_rate.requests_per_s:.2f} req/s per replica"
            f" ({found.prefill_rate.detail}); decode {found.decode_rate.requests_per_s:.2f}"
            f" req/s per replica ({found.decode_rate.detail}); KV transfer"
            f" {found.transfer_s * 1000:.1f} ms"
            + (f"; warnings: {', '.join(found.warnings)}" if found.warnings else "")
        )
    if isinstance(found, Colocated):
        return f"{found.rate.requests_per_s:.2f} req/s per replica ({found.rate.detail})"
    return ""


def as_pd(topology: Topology) -> Topology:
    """`topology` with a default `disaggregation:` section when it has none."""
    if topology.spec.disaggregation is not None:
        return topology
    spec = topology.spec.model_copy(deep=True)
    spec.disaggregation = DisaggregationSpec()
    return replace(topology, spec=spec)


def candidate_layouts(topology: Topology, max_gpus: int = 64) -> list[Topology]:
    """The feasible layouts of the topology's model, GPU and context as topologies."""
    counts = [n for n in POWERS_OF_TWO if n <= max_gpus]
    per_count: dict[int, int] = {}
    found = []
    for cand in search(layout_of(topology), counts):
        lay = cand.layout
        if not cand.accepted or per_count.get(lay.gpus, 0) >= LAYOUTS_PER_GPU_COUNT:
            continue
        pool = PoolSpec(
            gpus=PoolGpus(count=lay.gpus, nodes=lay.nodes),
            parallelism=ParallelismSpec(
                tensor=lay.tp, pipeline=lay.pp, expert=lay.ep, data=lay.dp,
                dp_attention=lay.dp_attention,
            ),
        )  # fmt: skip
        spec = pool_spec(topology.spec, pool)
        spec.name = f"{topology.spec.name or 'layout'}-{lay.gpus}g{per_count.get(lay.gpus, 0)}"
        try:
            found.append(resolve(spec, topology.model, origin=topology.origin))
        except SpecError:
            continue  # the search's split is one resolve would not choose: skip it
        per_count[lay.gpus] = per_count.get(lay.gpus, 0) + 1
    return found


def compare_layouts(
    topology: Topology, work: Workload, max_gpus: int = 64, constants: PerfConstants = FITTED
) -> Comparison:
    """The best PD (xPyD) and colocated layouts for `work`, the winner and the reason
    (`constants`: the performance model's, FITTED unless a study varies one)."""
    base = as_pd(topology)
    layouts = candidate_layouts(base, max_gpus)
    declared = pd_pools(topology) if topology.spec.disaggregation is not None else None
    prefills = layouts + ([declared.prefill] if declared else [])
    decodes = layouts + ([declared.decode] if declared else [])
    pd = _best_pd(base, prefills, decodes, work, constants)
    colocated = _best_colocated(layouts, work, constants)
    winner, reason = _verdict(work, pd, colocated)
    return Comparison(work, pd, colocated, winner, reason)


def _pair_warnings(base: Topology, prefill: Topology, decode: Topology) -> tuple[str, ...] | None:
    """The pair's PD preflight warnings (codes), or None when the engines refuse it."""
    pools = PdPools(base, prefill, decode, *_transfer_defaults(base))
    found = pd_findings(pools)
    if any(f.severity is Severity.ERROR for f in found):
        return None
    return tuple(f.code for f in found)


def _transfer_defaults(base: Topology) -> tuple[str, int]:
    spec = base.spec.disaggregation
    assert spec is not None
    engine = base.engine.value
    return transfer_backend(spec, engine), bootstrap_port(spec, engine)


def _best_pd(
    base: Topology,
    prefills: list[Topology],
    decodes: list[Topology],
    work: Workload,
    constants: PerfConstants,
) -> Disaggregated | None:
    decode_rates = [(d, decode_rate(d, work, constants)) for d in decodes]
    best: Disaggregated | None = None
    network = base.spec.disaggregation.network if base.spec.disaggregation else None
    assert network is not None
    for prefill in prefills:
        for decode, d_rate in decode_rates:
            warnings = _pair_warnings(base, prefill, decode) if d_rate.feasible else None
            if warnings is None:
                continue
            backend = _transfer_defaults(base)[0]
            transfer = transfer_between(prefill, decode, network, backend, work.prompt_tail)
            first_step = _first_step(decode, work, constants)
            p_rate = prefill_rate(
                prefill, work, transfer.seconds_per_request, first_step, constants
            )
            if not p_rate.feasible:
                continue
            found = Disaggregated(
                prefill, decode,
                math.ceil(work.rate / p_rate.requests_per_s),
                math.ceil(work.rate / d_rate.requests_per_s),
                p_rate, d_rate, transfer.seconds_per_request, warnings,
            )  # fmt: skip
            if best is None or _pd_key(found) < _pd_key(best):
                best = found
    return best


def _pd_key(found: Disaggregated) -> tuple[int, int, float]:
    """Fewest known reports against the pair first: a warned pair only when no cleaner
    pair serves the workload."""
    return len(found.warnings), *_key(found)


def _key(found: Disaggregated | Colocated) -> tuple[int, float]:
    """Fewest GPUs at the rate; then the least GPU time per request at full pools."""
    return found.gpus, found.gpu_seconds_per_request


def _first_step(decode: Topology, work: Workload, constants: PerfConstants) -> float:
    """The decode replica's first step for a transferred request (part of TTFT)."""
    return performance_model(decode, constants).decode_step_seconds(1, work.prompt_tail)


def _best_colocated(
    layouts: list[Topology], work: Workload, constants: PerfConstants
) -> Colocated | None:
    best: Colocated | None = None
    for topo in layouts:
        rate = colocated_rate(topo, work, constants)
        if not rate.feasible:
            continue
        found = Colocated(topo, math.ceil(work.rate / rate.requests_per_s), rate)
        if best is None or _key(found) < _key(best):
            best = found
    return best


def _verdict(
    work: Workload, pd: Disaggregated | None, colocated: Colocated | None
) -> tuple[str, str]:
    shape = f"{work.prompt_tokens} in / {work.output_tokens} out at {work.rate:g} req/s"
    bounds = f"TTFT p99 <= {work.ttft_s:g} s, ITL p99 <= {work.itl_s * 1000:g} ms"
    if pd is None and colocated is None:
        return "none", f"no layout serves {shape} within {bounds}."
    if pd is None:
        return "colocated", f"colocated serving wins for {shape}: no PD pair meets {bounds}."
    if colocated is None:
        return "disaggregated", (
            f"PD wins for {shape}: no colocated layout meets {bounds} ({_prompt_cost(pd)}:"
            " they break the ITL bound or cannot keep up with the prompts)."
        )
    at_scale = (
        f"at scale {pd.gpu_seconds_per_request:.3f} GPU-s per request for PD against"
        f" {colocated.gpu_seconds_per_request:.3f} colocated"
    )
    pd_wins = (pd.gpus, pd.gpu_seconds_per_request) < (
        colocated.gpus,
        colocated.gpu_seconds_per_request,
    )
    if pd_wins:
        return "disaggregated", (
            f"PD wins for {shape}: {pd.gpus} GPUs against {colocated.gpus} colocated under"
            f" {bounds}; {at_scale}. Colocated, {_prompt_cost(pd)}, which holds the batch to"
            f" {colocated.rate.detail.split(' with')[0]}."
        )
    load = work.rate / (pd.prefill_replicas * pd.prefill_rate.requests_per_s)
    why = (
        f"the prefill pool would run at {load:.0%} of what it serves within the bounds:"
        f" short prompts prefill cheaply {_prompt_place(pd)}"
        if load < 0.5
        else "the prompts fit into the decode steps without breaking the bounds"
    )
    return "colocated", (
        f"colocated serving wins for {shape}: {colocated.gpus} GPUs against {pd.gpus} for PD"
        f" under {bounds}; {why}; {at_scale}."
    )


def _prompt_cost(pd: Disaggregated) -> str:
    """How prompts cost the decodes of a colocated replica of the pair's engine."""
    if performance_model(pd.decode).separate_prefill_pass:
        return "prompts run as separate prefill passes that every running decode waits for"
    return "prompt chunks share the decode steps"


def _prompt_place(pd: Disaggregated) -> str:
    if performance_model(pd.decode).separate_prefill_pass:
        return "in passes between decode steps"
    return "inside decode steps"
