"""The performance model against the operator's own benchmark runs, and the two corrections a
topology's `performance:` section carries (`glmctl calibrate`).

Published runs calibrate the model (ops/calibration); on GPUs, engines and loads it was not
fitted on it can be 20% or more off (docs/guides/performance-model.md). An operator who has
run the engines' own benchmark client against a deployment can hold the model to those runs
and correct it: every estimate glmctl makes (capacity, plans, `sweep`, the simulator's step
times) then uses the measured speed.

What is read, as the clients save it:
- `vllm bench serve --save-result [--save-detailed]`: one JSON object per file
  (vllm/benchmarks/serve.py, vLLM 0.32.0: `max_concurrency`, `request_rate`, `completed`,
  `failed`, `median_tpot_ms`, `median_itl_ms`, `mean_ttft_ms`, `output_throughput`,
  `total_input_tokens`, `total_output_tokens`, `spec_decode_acceptance_length`; with
  --save-detailed the per-request `input_lens`, `output_lens` and `errors`).
- `python -m sglang.bench_serving --output-file F [--output-details]`: one JSON object per
  line, a line appended per run (sglang/benchmark/serving.py, SGLang 0.5.23: the same keys,
  `accept_length`; with --output-details `input_lens`, `output_lens` and `errors`).

Each run is replayed as its client ran it (`replay.py`): `max_concurrency` clients, the next
prompt sent as one finishes, the recorded lengths in order (or every request at the run's
mean lengths when none were saved). Open-loop runs (a finite --request-rate) are refused:
their arrival times are not saved, so they cannot be replayed.

The fit: `decode_scale` from the median TPOT and `prefill_scale` from the mean TTFT, each
the scale whose replays' log-errors sum to zero over the runs (both figures grow with their
scale, so a bisection finds it), alternated three times since a slower decode also delays
the next prompt's prefill.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from controlplane.capacity.performance import PerformanceModel
from controlplane.capacity.replay import ReplayResult, Workload, replay
from controlplane.errors import UserError

SCALE_RANGE = (0.05, 20.0)  # the spec's bounds for either scale (PerformanceSpec)
BISECTIONS = 24
ROUNDS = 3
_CLIENT_FIX = (
    "save the run with the engine's own client: `vllm bench serve --max-concurrency C"
    " --request-rate inf --save-result --save-detailed` or `python -m sglang.bench_serving"
    " --max-concurrency C --output-file F --output-details`."
)


@dataclass(frozen=True)
class BenchRun:
    """One closed-loop run of an engine's benchmark client, as it saved it."""

    label: str  # file, and line for JSON lines
    client: str
    concurrency: int
    lengths: tuple[tuple[int, int], ...]  # (input, output) tokens per request, in order
    exact_lengths: bool  # per request (detailed) rather than the run's means
    tpot_ms: float  # median
    ttft_ms: float  # mean
    output_tps: float
    itl_ms: float | None = None  # median
    acceptance_length: float | None = None  # speculative decoding, as the run measured it
    failed: int = 0


@dataclass(frozen=True)
class RunFit:
    """One run against the model before and after the correction."""

    run: BenchRun
    before: ReplayResult
    after: ReplayResult


@dataclass(frozen=True)
class Calibration:
    decode_scale: float
    prefill_scale: float
    runs: tuple[RunFit, ...]
    notes: tuple[str, ...]


def read_runs(path: Path) -> list[BenchRun]:
    """The runs saved in `path` (a vLLM result JSON or an SGLang JSON-lines file)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}.", fix=_CLIENT_FIX) from exc
    try:
        data = json.loads(text)
        entries = [(str(path), data)]
    except ValueError:
        entries = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                entries.append((f"{path}:{number}", json.loads(line)))
            except ValueError as exc:
                raise UserError(
                    f"{path}:{number} is not JSON ({exc}).",
                    fix="pass the file the client wrote, unchanged. " + _CLIENT_FIX,
                ) from exc
    runs = [_run(label, entry) for label, entry in entries]
    if not runs:
        raise UserError(f"{path} holds no benchmark run.", fix=_CLIENT_FIX)
    return runs


def _run(label: str, data: Any) -> BenchRun:
    if not isinstance(data, dict) or "median_tpot_ms" not in data:
        raise UserError(f"{label} is not a benchmark result: no `median_tpot_ms`.", fix=_CLIENT_FIX)
    client = "sglang.bench_serving" if "accept_length" in data else "vllm bench serve"
    concurrency = data.get("max_concurrency")
    rate = data.get("request_rate", math.inf)
    if not isinstance(concurrency, int) or concurrency < 1 or _finite(rate):
        raise UserError(
            f"{label}: an open-loop run (max_concurrency {concurrency}, request rate {rate}):"
            " its arrival times are not saved, so it cannot be replayed.",
            fix="rerun the client with --max-concurrency C --request-rate inf (a closed loop"
            " of C clients).",
        )
    figures = {key: _number(label, data, key) for key in
               ("median_tpot_ms", "mean_ttft_ms", "output_throughput")}  # fmt: skip
    lengths, exact = _lengths(label, data)
    accept = data.get("accept_length") or data.get("spec_decode_acceptance_length")
    return BenchRun(
        label=label,
        client=client,
        concurrency=concurrency,
        lengths=lengths,
        exact_lengths=exact,
        tpot_ms=figures["median_tpot_ms"],
        ttft_ms=figures["mean_ttft_ms"],
        output_tps=figures["output_throughput"],
        itl_ms=data.get("median_itl_ms") or None,
        acceptance_length=float(accept) if accept else None,
        failed=int(data.get("failed") or 0),
    )


def _finite(rate: Any) -> bool:
    return isinstance(rate, (int, float)) and math.isfinite(rate)


def _number(label: str, data: dict[str, Any], key: str) -> float:
    value = data.get(key)
    if not isinstance(value, (int, float)) or not value > 0:
        raise UserError(
            f"{label}: `{key}` is {value!r}, not a positive number (did every request fail?).",
            fix="rerun the benchmark until it completes requests. " + _CLIENT_FIX,
        )
    return float(value)


def _lengths(label: str, data: dict[str, Any]) -> tuple[tuple[tuple[int, int], ...], bool]:
    """Per-request lengths of the completed requests, else the run's means for each."""
    inputs, outputs = data.get("input_lens"), data.get("output_lens")
    if isinstance(inputs, list) and isinstance(outputs, list) and len(inputs) == len(outputs):
        errors = data.get("errors") or [""] * len(inputs)
        pairs = tuple(
            (int(i), int(o))
            for i, o, error in zip(inputs, outputs, errors, strict=False)
            if not error and o and o > 0
        )
        if pairs:
            return pairs, True
    completed = int(_number(label, data, "completed"))
    isl = round(_number(label, data, "total_input_tokens") / completed)
    osl = round(_number(label, data, "total_output_tokens") / completed)
    return ((max(1, isl), max(1, osl)),) * completed, False


def scaled(model: PerformanceModel, decode: float, prefill: float) -> PerformanceModel:
    """`model` with its decode steps and prefill passes scaled (the `performance:` section)."""
    return dataclasses.replace(model, _decode_scale=decode, _prefill_scale=prefill)


def replay_run(model: PerformanceModel, run: BenchRun) -> ReplayResult:
    isl, osl = run.lengths[0]
    workload = Workload(run.concurrency, len(run.lengths), isl, osl, lengths=run.lengths)
    return replay(model, workload)


def calibrate(model: PerformanceModel, runs: Sequence[BenchRun]) -> Calibration:
    """Fit both scales to `runs` on `model` (taken as fitted: any correction it carries is
    dropped first) and compare every run before and after."""
    base = scaled(model, 1.0, 1.0)

    def tpot_error(decode: float, prefill: float) -> float:
        return _log_error(scaled(base, decode, prefill), runs, "tpot")

    def ttft_error(prefill: float, decode: float) -> float:
        return _log_error(scaled(base, decode, prefill), runs, "ttft")

    decode = prefill = 1.0
    for _ in range(ROUNDS):
        decode = _solve(functools.partial(tpot_error, prefill=prefill))
        prefill = _solve(functools.partial(ttft_error, decode=decode))
    fitted = scaled(base, decode, prefill)
    fits = tuple(RunFit(r, replay_run(base, r), replay_run(fitted, r)) for r in runs)
    return Calibration(decode, prefill, fits, _notes(model, runs, decode, prefill))


def _log_error(model: PerformanceModel, runs: Sequence[BenchRun], metric: str) -> float:
    total = 0.0
    for run in runs:
        result = replay_run(model, run)
        if metric == "tpot":
            total += math.log(result.median_tpot_s * 1e3 / run.tpot_ms)
        else:
            total += math.log(result.mean_ttft_s * 1e3 / run.ttft_ms)
    return total


def _solve(error: Callable[[float], float]) -> float:
    """The scale in SCALE_RANGE where the (increasing) `error` crosses zero; a bound when it
    does not."""
    lo, hi = (math.log(x) for x in SCALE_RANGE)
    if error(math.exp(lo)) >= 0:
        return SCALE_RANGE[0]
    if error(math.exp(hi)) <= 0:
        return SCALE_RANGE[1]
    for _ in range(BISECTIONS):
        mid = (lo + hi) / 2
        if error(math.exp(mid)) < 0:
            lo = mid
        else:
            hi = mid
    return math.exp((lo + hi) / 2)


def _notes(
    model: PerformanceModel, runs: Sequence[BenchRun], decode: float, prefill: float
) -> tuple[str, ...]:
    notes = []
    for scale, name in ((decode, "decode_scale"), (prefill, "prefill_scale")):
        if scale in SCALE_RANGE:
            notes.append(
                f"{name} reached its bound ({scale:g}): the runs are not this topology's"
                " (model, GPUs, parallelism or engine), or the client measured something else."
            )
    if any(not run.exact_lengths for run in runs):
        notes.append(
            "some runs saved no per-request lengths: they are replayed at their mean lengths"
            " (--save-detailed for vLLM, --output-details for SGLang replays them exactly)."
        )
    if failed := sum(run.failed for run in runs):
        notes.append(f"{failed} failed requests were left out of the replay.")
    measured = [run.acceptance_length for run in runs if run.acceptance_length]
    if measured:
        accept = statistics.fmean(measured)
        if abs(accept / model.tokens_per_step - 1) > 0.1:
            notes.append(
                f"the runs accepted {accept:.2f} tokens per step, the model assumes"
                f" {model.tokens_per_step:.2f}: set `speculative.acceptance_length: {accept:.2f}`"
                " in the topology and calibrate again."
            )
    return tuple(notes)
