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

The replay runs one replica at the topology's `max_num_seqs` (the engine's running-request
cap: with more clients the rest wait in its queue). Runs made through a router spread the
clients over its replicas: benchmark one replica's engine, or a deployment of one replica.

The fit: `decode_scale` from the median TPOT and `prefill_scale` from the mean TTFT, each
the scale whose replays' log-errors sum to zero over the runs (both figures grow with their
scale, so a bisection finds it), alternated until neither moves by 0.1% (a slower decode also
delays the next prompt's prefill, a slower prefill stretches the decodes it interrupts).
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
from controlplane.spec.performance import SCALE_BOUNDS

BISECTIONS = 16  # the log of the range halved 16 times: 0.01% of a scale
ROUNDS = 8  # at most; they stop when neither scale moves by SETTLED
SETTLED = 1e-3
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


@dataclass(frozen=True)
class ReadRuns:
    """The replayable runs of some result files, and the lines left out (with why)."""

    runs: tuple[BenchRun, ...]
    skipped: tuple[str, ...] = ()


def read_runs(paths: Sequence[Path]) -> ReadRuns:
    """The runs saved in `paths` (vLLM result JSON or SGLang JSON-lines files). A run that
    cannot be replayed (open loop) is skipped with its reason; none left is an error."""
    runs: list[BenchRun] = []
    skipped: list[str] = []
    for path in paths:
        for label, data in _entries(path):
            try:
                runs.append(_run(label, data))
            except OpenLoop as exc:
                skipped.append(str(exc))
    if not runs:
        why = f" ({'; '.join(skipped)})" if skipped else ""
        raise UserError(f"no closed-loop benchmark run in {', '.join(map(str, paths))}{why}.",
                        fix=_CLIENT_FIX)  # fmt: skip
    return ReadRuns(tuple(runs), tuple(skipped))


class OpenLoop(Exception):
    """A run with a finite request rate or no concurrency limit: not replayable."""


def _entries(path: Path) -> list[tuple[str, Any]]:
    """(label, parsed JSON) of the one object in `path`, or of each of its lines."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise UserError(f"cannot read {path}: {reason}.", fix=_CLIENT_FIX) from exc
    try:
        return [(str(path), json.loads(text))]
    except ValueError:
        pass
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
    if not entries:
        raise UserError(f"{path} holds no benchmark run.", fix=_CLIENT_FIX)
    return entries


def _run(label: str, data: Any) -> BenchRun:
    if not isinstance(data, dict) or "median_tpot_ms" not in data:
        raise UserError(f"{label} is not a benchmark result: no `median_tpot_ms`.", fix=_CLIENT_FIX)
    client = "sglang.bench_serving" if "accept_length" in data else "vllm bench serve"
    concurrency = data.get("max_concurrency")
    rate = data.get("request_rate", math.inf)
    if concurrency is None or _finite(rate):
        raise OpenLoop(
            f"{label} is an open-loop run (max concurrency {concurrency}, request rate"
            f" {rate}): its arrival times are not saved, so it cannot be replayed; rerun it"
            " with --max-concurrency C --request-rate inf"
        )
    if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1:
        raise UserError(f"{label}: `max_concurrency` is {concurrency!r}, not a client count.",
                        fix=_CLIENT_FIX)  # fmt: skip
    figures = {key: _number(label, data, key) for key in
               ("median_tpot_ms", "mean_ttft_ms", "output_throughput")}  # fmt: skip
    lengths, exact = _lengths(label, data)
    if all(osl < 2 for _, osl in lengths):
        raise UserError(
            f"{label}: every request produced one token, so it has no TPOT to fit.",
            fix="rerun with longer outputs (--random-output-len 64 or more, --ignore-eos).",
        )
    accept = _optional(label, data, "accept_length") or _optional(
        label, data, "spec_decode_acceptance_length"
    )
    return BenchRun(
        label=label,
        client=client,
        concurrency=concurrency,
        lengths=lengths,
        exact_lengths=exact,
        tpot_ms=figures["median_tpot_ms"],
        ttft_ms=figures["mean_ttft_ms"],
        output_tps=figures["output_throughput"],
        itl_ms=_optional(label, data, "median_itl_ms"),
        acceptance_length=accept,
        failed=int(_optional(label, data, "failed") or 0),
    )


def _finite(rate: Any) -> bool:
    return isinstance(rate, (int, float)) and math.isfinite(rate)


def _number(label: str, data: dict[str, Any], key: str) -> float:
    value = data.get(key)
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not (math.isfinite(value) and value > 0)
    ):
        raise UserError(
            f"{label}: `{key}` is {value!r}, not a positive number (did every request fail?).",
            fix="rerun the benchmark until it completes requests. " + _CLIENT_FIX,
        )
    return float(value)


def _optional(label: str, data: dict[str, Any], key: str) -> float | None:
    """A figure the run may lack: None when absent, null or 0; an error when not a number."""
    if not data.get(key):
        return None
    return _number(label, data, key)


def _lengths(label: str, data: dict[str, Any]) -> tuple[tuple[tuple[int, int], ...], bool]:
    """Per-request lengths of the completed requests, else the run's means for each."""
    inputs, outputs = data.get("input_lens"), data.get("output_lens")
    errors = data.get("errors")
    if errors is None and isinstance(inputs, list):
        errors = [""] * len(inputs)
    lists = (inputs, outputs, errors)
    if all(isinstance(x, list) for x in lists) and len({len(x) for x in lists}) == 1:  # type: ignore[arg-type]
        pairs = []
        for isl, osl, error in zip(inputs, outputs, errors, strict=True):  # type: ignore[arg-type]
            if error or osl == 0:
                continue  # a failed request
            if not _count(isl) or not _count(osl):
                raise UserError(
                    f"{label}: a request's lengths are {isl!r} / {osl!r}, not token counts.",
                    fix="pass the file the client wrote, unchanged. " + _CLIENT_FIX,
                )
            pairs.append((isl, osl))
        if pairs:
            return tuple(pairs), True
    completed = _number(label, data, "completed")
    if completed != int(completed):
        raise UserError(f"{label}: `completed` is {completed!r}, not a request count.",
                        fix=_CLIENT_FIX)  # fmt: skip
    count = int(completed)
    isl = round(_number(label, data, "total_input_tokens") / count)
    osl = round(_number(label, data, "total_output_tokens") / count)
    return ((max(1, isl), max(1, osl)),) * count, False


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def scaled(model: PerformanceModel, decode: float, prefill: float) -> PerformanceModel:
    """`model` with its decode steps and prefill passes scaled (the `performance:` section)."""
    return dataclasses.replace(model, _decode_scale=decode, _prefill_scale=prefill)


def replay_run(model: PerformanceModel, run: BenchRun, max_running: int | None) -> ReplayResult:
    """`run` replayed on one replica that runs at most `max_running` requests at once."""
    isl, osl = run.lengths[0]
    cap = max_running if max_running and max_running < run.concurrency else None
    workload = Workload(
        run.concurrency, len(run.lengths), isl, osl, max_running=cap, lengths=run.lengths
    )
    try:
        return replay(model, workload)
    except RuntimeError as exc:  # the replay's step bound
        raise UserError(
            f"{run.label} is too long to replay ({len(run.lengths)} requests at"
            f" {run.concurrency} clients): {exc}.",
            fix="calibrate with shorter runs (fewer prompts, or more clients).",
        ) from exc


def calibrate(
    model: PerformanceModel, runs: Sequence[BenchRun], max_running: int | None = None
) -> Calibration:
    """Fit both scales to `runs` on `model` (taken as fitted: any correction it carries is
    dropped first), the engine running at most `max_running` requests (the topology's
    `max_num_seqs`), and compare every run before and after."""
    base = scaled(model, 1.0, 1.0)

    def tpot_error(decode: float, prefill: float) -> float:
        return _log_error(scaled(base, decode, prefill), runs, "tpot", max_running)

    def ttft_error(prefill: float, decode: float) -> float:
        return _log_error(scaled(base, decode, prefill), runs, "ttft", max_running)

    decode = prefill = 1.0
    settled = False
    for _ in range(ROUNDS):
        before = (decode, prefill)
        decode = _solve(functools.partial(tpot_error, prefill=prefill))
        prefill = _solve(functools.partial(ttft_error, decode=decode))
        moved = max(abs(math.log(decode / before[0])), abs(math.log(prefill / before[1])))
        if moved < SETTLED:
            settled = True
            break
    fitted = scaled(base, decode, prefill)
    fits = tuple(
        RunFit(r, replay_run(base, r, max_running), replay_run(fitted, r, max_running))
        for r in runs
    )
    notes = _notes(model, runs, decode, prefill)
    if not settled:
        notes += (
            f"the two scales did not settle in {ROUNDS} rounds: no pair matches every run's"
            " TPOT and TTFT (see the corrected column); the runs may not be this topology's.",
        )
    return Calibration(decode, prefill, fits, notes)


def _log_error(
    model: PerformanceModel, runs: Sequence[BenchRun], metric: str, max_running: int | None
) -> float:
    total = 0.0
    for run in runs:
        result = replay_run(model, run, max_running)
        if metric == "tpot":
            total += math.log(max(result.median_tpot_s * 1e3, 1e-9) / run.tpot_ms)
        else:
            total += math.log(max(result.mean_ttft_s * 1e3, 1e-9) / run.ttft_ms)
    return total


def _solve(error: Callable[[float], float]) -> float:
    """The scale in SCALE_BOUNDS where the (increasing) `error` crosses zero; a bound when it
    does not."""
    lo, hi = (math.log(x) for x in SCALE_BOUNDS)
    if error(math.exp(lo)) >= 0:
        return SCALE_BOUNDS[0]
    if error(math.exp(hi)) <= 0:
        return SCALE_BOUNDS[1]
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
        if scale in SCALE_BOUNDS:
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
