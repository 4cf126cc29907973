"""Which layout meets the SLO at the lowest cost per token (pure parts of `glmctl sweep`).

1. `candidates`: the capacity search's feasible layouts (TP / PP / EP / DP attention) at the
   chosen GPU counts, times MTP on / off and each max batch, as topology specs.
2. `ramp`: request rates for each layout, as fractions of the decode capacity the
   performance model predicts (so every layout is pushed past its knee).
3. (sweep_driver.py runs each rate step on the simulated engine at accelerated time.)
4. `judge_step` / `rank`: a step meets the SLO when the simulator's exact TTFT and ITL p99
   and the availability meet it; a layout's result is its highest such rate; layouts rank
   by goodput output tokens/s per GPU there.
5. `explain`: why the winner wins, from the numbers that decide it (decode step time,
   MTP acceptance, batch, KV room, memory headroom).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from controlplane.capacity.search import Candidate
from controlplane.catalog.gpus import GIB
from controlplane.spec import Topology
from controlplane.spec.models import SloSpec

RAMP_FRACTIONS = (0.25, 0.5, 0.75, 1.0, 1.25, 1.5)


@dataclass(frozen=True)
class SweepLayout:
    """One layout to run: the spec, and the memory facts from the capacity search."""

    label: str
    spec: dict[str, Any]
    gpus: int
    mtp: bool
    batch: int
    headroom_gib: float
    kv_sequences: int  # full-context sequences the KV cache holds


def label_of(spec: dict[str, Any]) -> str:
    p, g = spec["parallelism"], spec["gpus"]
    split = f"TP{p['tensor']}" + (f" PP{p['pipeline']}" if p["pipeline"] > 1 else "")
    split += f" EP{p['expert']}" if p["expert"] > 1 else ""
    split += f" DPattn{p['data']}" if p["dp_attention"] else ""
    mtp = "MTP" if spec.get("speculative", {}).get("algorithm") != "none" else "no-MTP"
    return f"{g['count']}x{g['type']} {split} {mtp} b{spec['max_num_seqs']}"


def candidates(
    base: dict[str, Any],
    found: list[Candidate],
    limit: int,
    mtp_options: tuple[bool, ...] = (True, False),
    batches: tuple[int, ...] = (8,),
) -> list[SweepLayout]:
    """Up to `limit` splits from `found` (spread over the GPU counts), each with every MTP
    option and batch, as specs on top of `base` (model, precision, context, ...)."""
    by_count: dict[int, list[Candidate]] = {}
    for cand in found:
        by_count.setdefault(cand.layout.gpus, []).append(cand)
    picked: list[Candidate] = []
    while len(picked) < limit and any(by_count.values()):
        for count in sorted(by_count):  # round robin: the best of each GPU count in turn
            if by_count[count] and len(picked) < limit:
                picked.append(by_count[count].pop(0))
    out = []
    for cand in picked:
        lay = cand.layout
        for mtp in mtp_options:
            for batch in batches:
                spec = {
                    **base,
                    "max_num_seqs": batch,
                    "context_length": lay.context,
                    "gpus": {
                        "type": lay.gpu.name,
                        "count": lay.gpus,
                        "per_node": lay.gpus_per_node,
                    },
                    "parallelism": {
                        "tensor": lay.tp,
                        "pipeline": lay.pp,
                        "expert": lay.ep,
                        "data": lay.dp,
                        "dp_attention": lay.dp_attention,
                    },
                }
                if not mtp:
                    spec["speculative"] = {"algorithm": "none"}
                spec["name"] = _name(label_of(spec))
                kv_seqs = (cand.memory.kv_tokens // lay.context) * lay.copies
                out.append(SweepLayout(label_of(spec), spec, lay.gpus, mtp, batch,
                                       cand.headroom_bytes / GIB, kv_seqs))  # fmt: skip
    return out


def _name(label: str) -> str:
    """A deployment name (DNS label) from a layout label."""
    return re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")[:63].rstrip("-")


@dataclass(frozen=True)
class ModelFacts:
    """What the performance model says of a layout at its batch."""

    tokens_per_step: float  # MTP acceptance (1 without)
    decode_step_s: float
    tokens_per_s_per_user: float
    capacity_rps: float  # requests/s the decode rate sustains at full batch


def model_facts(topo: Topology, prompt_tokens: float, output_tokens: float) -> ModelFacts:
    from controlplane.capacity.performance import performance_model

    perf = performance_model(topo)
    batch = topo.spec.max_num_seqs
    context = batch * (prompt_tokens + output_tokens / 2)
    step = perf.decode_step_seconds(batch, int(context))
    per_user = perf.tokens_per_step / step if step > 0 else 0.0
    prefill = perf.prefill_seconds(int(prompt_tokens))
    # Each request holds a batch slot for its decode time plus its prefill.
    slot_s = output_tokens / per_user + prefill if per_user else math.inf
    return ModelFacts(perf.tokens_per_step, step, per_user, batch / slot_s)


def ramp(facts: ModelFacts, fractions: tuple[float, ...] = RAMP_FRACTIONS) -> list[float]:
    """Request rates (model requests/s) to step through, lowest first."""
    return [round(facts.capacity_rps * f, 4) for f in fractions if facts.capacity_rps * f > 0]


@dataclass(frozen=True)
class StepResult:
    """One rate step, in model seconds (the simulator's clock)."""

    rate: float
    sent: int
    completed: int
    duration_s: float
    output_tokens: int
    ttft_p99: float
    itl_p99: float
    tpot_p50: float  # from the client, scaled: medians shrug off client jitter

    def problems(self, slo: SloSpec) -> list[str]:
        out = []
        if math.isnan(self.ttft_p99) or self.ttft_p99 > slo.ttft_p99:
            out.append(f"TTFT p99 {self.ttft_p99:.3g} s > {slo.ttft_p99:g} s")
        if math.isnan(self.itl_p99) or self.itl_p99 > slo.itl_p99:
            out.append(f"ITL p99 {self.itl_p99 * 1000:.0f} ms > {slo.itl_p99 * 1000:g} ms")
        if not self.sent or self.completed / self.sent < slo.availability:
            out.append(f"{self.completed}/{self.sent} requests completed")
        return out

    @property
    def output_tokens_per_s(self) -> float:
        return self.output_tokens / self.duration_s if self.duration_s > 0 else 0.0


@dataclass
class LayoutResult:
    layout: SweepLayout
    facts: ModelFacts
    steps: list[StepResult] = field(default_factory=list)
    slo: SloSpec = field(default_factory=SloSpec)

    @property
    def best(self) -> StepResult | None:
        """The highest-rate step that met the SLO."""
        passing = [s for s in self.steps if not s.problems(self.slo)]
        return max(passing, key=lambda s: s.rate) if passing else None

    @property
    def goodput_per_gpu(self) -> float:
        best = self.best
        return best.output_tokens_per_s / self.layout.gpus if best else 0.0

    @property
    def limit(self) -> str:
        """Why the next rate failed (or that the ramp never failed)."""
        failing = [s for s in self.steps if s.problems(self.slo)]
        if not failing:
            return "met the SLO at every rate tried"
        first = min(failing, key=lambda s: s.rate)
        return f"at {first.rate:.2f} req/s: " + "; ".join(first.problems(self.slo))

    def row(self) -> dict[str, Any]:
        best = self.best
        return {
            "layout": self.layout.label,
            "gpus": self.layout.gpus,
            "mtp": self.layout.mtp,
            "batch": self.layout.batch,
            "sustained_rps": best.rate if best else 0.0,
            "goodput_tokens_per_s": best.output_tokens_per_s if best else 0.0,
            "goodput_tokens_per_s_per_gpu": self.goodput_per_gpu,
            "tokens_per_s_per_user": 1 / best.tpot_p50 if best and best.tpot_p50 > 0 else 0.0,
            "ttft_p99_s": best.ttft_p99 if best else math.nan,
            "itl_p99_s": best.itl_p99 if best else math.nan,
            "mtp_tokens_per_step": self.facts.tokens_per_step,
            "decode_step_ms": self.facts.decode_step_s * 1000,
            "headroom_gib_per_gpu": self.layout.headroom_gib,
            "kv_full_context_sequences": self.layout.kv_sequences,
            "limit": self.limit,
            "steps": [s.__dict__ for s in self.steps],
        }


def rank(results: list[LayoutResult]) -> list[LayoutResult]:
    """Best first: goodput tokens/s per GPU, then fewer GPUs."""
    return sorted(results, key=lambda r: (-r.goodput_per_gpu, r.layout.gpus, r.layout.label))


def explain(ranked: list[LayoutResult]) -> list[str]:
    """Sentences saying why the winner wins, from the deciding numbers."""
    if not ranked or ranked[0].goodput_per_gpu <= 0:
        return ["No layout met the SLO at any rate tried: loosen the SLO or shorten outputs."]
    win = ranked[0]
    w, wf = win.layout, win.facts
    lines = [
        f"{w.label} wins with {win.goodput_per_gpu:.0f} goodput tokens/s per GPU at"
        f" {win.best.rate if win.best else 0:.2f} req/s; beyond that it fails {win.limit}."
    ]
    lines.append(
        f"Decode: a step at batch {w.batch} takes {wf.decode_step_s * 1000:.1f} ms and emits"
        f" {wf.tokens_per_step:.2f} tokens per sequence"
        + (" (MTP acceptance)" if w.mtp else " (no MTP)")
        + f", {wf.tokens_per_s_per_user:.0f} tokens/s per user."
    )
    lines.append(
        f"Memory: {w.headroom_gib:.1f} GiB headroom per GPU; the KV cache holds"
        f" {w.kv_sequences} full-context sequences, so batch {w.batch} never waits for KV."
    )
    if len(ranked) > 1:
        run, rf = ranked[1], ranked[1].facts
        gap = 1 - run.goodput_per_gpu / win.goodput_per_gpu
        lines.append(
            f"Runner-up {run.layout.label}: {run.goodput_per_gpu:.0f} tokens/s per GPU"
            f" ({gap:.0%} less); step {rf.decode_step_s * 1000:.1f} ms x"
            f" {rf.tokens_per_step:.2f} tokens on {run.layout.gpus} GPUs; it fails {run.limit}."
        )
    return lines
