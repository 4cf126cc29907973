"""The performance model against published runs: estimates, errors and the fit's loss.

Pure: each case's topology is built from the case. A case that gives its client's run
(`num_prompts`) is replayed as that closed loop (`capacity.replay.replay`: the drain and the length
distribution are the workload's, not the engine's); the others are estimated at the closed-loop
steady state of `steady_state`. The fit (`ops/benchmarks/perf_fit.py`) minimises the worst,
then the summed, log-error over `perf_constants.FITTED_FIELDS` on the fit set (`perf_cases`);
how far that in-sample fit carries is measured leave-one-source-out (`loso`) and on the
held-out runs (`held_out`).

TensorRT-LLM runs are replayed on SGLang topologies with TensorRT-LLM's timing rule
(`timing_rules.TRTLLM_TIMING`): its in-flight batching runs the context phase inside the
generation step instead of stalling every running decode for a separate prefill forward.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from controlplane.capacity.perf_constants import FITTED, PerfConstants
from controlplane.capacity.performance import performance_model
from controlplane.capacity.replay import Workload, replay
from controlplane.capacity.steady_state import steady_state
from controlplane.capacity.timing_rules import TRTLLM_TIMING, TimingRule
from controlplane.spec import Topology
from ops.calibration.perf_cases import CASES, CalibrationCase, topology_of

_TOPOLOGIES: dict[str, Topology] = {}  # case name -> its topology (resolving costs ~1 ms)
TOLERANCE = 0.10  # the bar: TPOT and output tokens/s within 10%
METRICS = ("tpot", "output_tps")


@dataclass(frozen=True)
class CaseEstimate:
    case: CalibrationCase
    tpot_ms: float
    ttft_ms: float
    output_tps: float
    itl_ms: float | None = None  # the replay's median inter-token latency
    concurrency: float | None = None  # the replay's mean concurrency (the drain included)

    def published(self, metric: str) -> float | None:
        case = self.case
        return {"tpot": case.tpot_ms, "ttft": case.ttft_ms, "output_tps": case.output_tps,
                "itl": case.median_itl_ms}[metric]  # fmt: skip

    def error(self, metric: str) -> float | None:
        """Relative error of the estimate (+ = model higher), None when nothing is published."""
        published = self.published(metric)
        if not published:
            return None
        value = {"tpot": self.tpot_ms, "ttft": self.ttft_ms, "output_tps": self.output_tps,
                 "itl": self.itl_ms}[metric]  # fmt: skip
        return None if value is None else value / published - 1.0

    def checked(self) -> dict[str, float]:
        """Errors of the metrics held to the 10% bar (published and reachable)."""
        errors = {m: self.error(m) for m in METRICS if m not in self.case.unreachable}
        return {m: e for m, e in errors.items() if e is not None}


def decode_cases(cases: Iterable[CalibrationCase] = CASES) -> list[CalibrationCase]:
    """Cases with a steady-state decode figure (saturated runs are replayed, not estimated)."""
    return [case for case in cases if case.has_decode_figure]


def replay_rule(case: CalibrationCase) -> TimingRule | None:
    """The timing rule a case is replayed with (None: its replay engine's own)."""
    return TRTLLM_TIMING if case.engine.startswith("TensorRT-LLM") else None


def estimate(case: CalibrationCase, constants: PerfConstants = FITTED) -> CaseEstimate:
    """The model's TPOT, TTFT and output tokens/s for a decode case (replayed or steady)."""
    if case.concurrency is None:
        raise ValueError(f"{case.name} is a saturated run: replay it, do not estimate it")
    topo = _TOPOLOGIES.get(case.name)
    if topo is None:
        topo = _TOPOLOGIES[case.name] = topology_of(case)
    model = performance_model(topo, constants, replay_rule(case))
    if case.num_prompts:
        workload = Workload(
            case.concurrency,
            case.num_prompts,
            case.isl,
            case.osl,
            case.uniform_lengths,
            case.max_running,
        )
        run = replay(model, workload)
        tpot = run.median_tpot_s if case.median_tpot else run.mean_tpot_s
        return CaseEstimate(
            case, tpot * 1e3, run.mean_ttft_s * 1e3, run.output_tokens_per_s,
            run.median_itl_s * 1e3, run.mean_concurrency,
        )  # fmt: skip
    state = steady_state(model, case.concurrency, case.isl, case.osl)
    return CaseEstimate(case, state.tpot_s * 1e3, state.ttft_s * 1e3, state.output_tokens_per_s)


def fit_loss(constants: PerfConstants, cases: Iterable[CalibrationCase] = CASES) -> float:
    """Sum of squared log-errors over every checked metric of every decode case."""
    total = 0.0
    for case in decode_cases(cases):
        for error in estimate(case, constants).checked().values():
            total += math.log1p(error) ** 2
    return total
