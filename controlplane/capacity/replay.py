"""A benchmark client's closed loop replayed through the performance model, step by step.

Used to hold the model against benchmark runs: published ones (ops/calibration) and the
operator's own (`glmctl calibrate`, capacity/calibrate.py).

`vllm bench serve` and `sglang.bench_serving` with `--max-concurrency C --num-prompts N` keep
C requests in flight and send the next prompt as one finishes; the run ends when the last of
the N answers is done. Two things a steady state at C clients misses are properties of that
workload, not of the engine, so this replay reproduces them instead of fitting them away:
- the drain: the last C requests finish one by one, so the run averages fewer than C clients
  (SGLang's client prints it as "Concurrency": 90.9 for C = 100, N = 500 in the SGLang
  cookbook's GLM-4.6 runs);
- the lengths: `--dataset-name random` with the default `--random-range-ratio 0.0` (SGLang)
  draws each input and output length uniformly from [1, L], so the mean is L / 2 and short
  answers bring a prompt (and its prefill) twice as often as L suggests.

A prompt sent when another request finishes reaches a busy engine after its next step has
begun (the client's round trip; SGLang's overlap scheduler launches that step before it even
streams the finished request's last token), so it waits that step out before its prefill.
Against the published runs' mean TTFT at 16 to 100 clients this is closer in 10 of 13 runs
(the GLM-4.6 cookbook 1k / 1k at 100 clients: -38% without it, -28% with it).

The engine is modelled as SGLang schedules it by default: new prompts are prefilled in one
separate forward (`prefill_seconds` of their summed tokens, plus the engine's prefill stall)
before the next decode step, and every running request then decodes `tokens_per_step` tokens.
Pure and deterministic: lengths come from evenly spaced quantiles shuffled with a fixed seed.
"""

from __future__ import annotations

import random
import statistics
from dataclasses import dataclass, field

from controlplane.capacity.performance import PerformanceModel

SEED = 20260206  # any fixed value: the replay must not change between runs
# New tokens one prefill pass takes at most; prompts beyond wait for the next pass, after a
# decode step. SGLang's --chunked-prefill-size default for large GPUs (8192,
# python/sglang/srt/server_args.py, 0.5.x); vLLM's max_num_batched_tokens is the same 8192.
PREFILL_BUDGET_TOKENS = 8192


@dataclass(frozen=True)
class Workload:
    """What the benchmark client sends: N prompts, C at a time, lengths fixed or uniform."""

    concurrency: int
    num_prompts: int
    input_len: int  # the client's --random-input-len
    output_len: int  # ... --random-output-len
    uniform: bool = False  # lengths drawn from [1, L] (range ratio 0) instead of fixed at L
    # The engine's running-request cap (SGLang's --max-running-requests, vLLM's
    # --max-num-seqs) where it is below the concurrency: the rest wait in the engine's queue.
    max_running: int | None = None
    # Every request's (input, output) tokens in sending order, where the client recorded
    # them (`--save-detailed`, `--output-details`); they replace the drawn lengths.
    lengths: tuple[tuple[int, int], ...] = ()

    def requests(self) -> list[tuple[int, int]]:
        """(input tokens, output tokens) of every prompt, in sending order."""
        if self.lengths:
            return list(self.lengths)
        n = self.num_prompts
        if not self.uniform:
            return [(self.input_len, self.output_len)] * n
        rng = random.Random(SEED)
        inputs = [_quantile(self.input_len, k, n) for k in range(n)]
        outputs = [_quantile(self.output_len, k, n) for k in range(n)]
        rng.shuffle(inputs)
        rng.shuffle(outputs)
        return list(zip(inputs, outputs, strict=True))


def _quantile(top: int, k: int, n: int) -> int:
    """The k-th of n evenly spaced quantiles of the integers 1..top."""
    return max(1, min(top, 1 + int((top - 1) * (k + 0.5) / n + 0.5)))


@dataclass
class _Request:
    isl: int
    osl: int
    sent: float
    first: float = -1.0
    emitted: float = 0.0
    end: float = -1.0
    last: float = -1.0  # when its latest token came out


@dataclass(frozen=True)
class ReplayResult:
    """The figures the benchmark clients print, computed from the replayed run."""

    median_tpot_s: float
    mean_tpot_s: float
    # Median gap between a request's consecutive tokens over every token of the run (the
    # clients' "Median ITL"): a pure decode step unless prefill passes interrupt most steps.
    median_itl_s: float
    mean_ttft_s: float
    output_tokens_per_s: float
    mean_concurrency: float
    duration_s: float
    tpots: tuple[float, ...] = field(repr=False, default=())


def replay(model: PerformanceModel, workload: Workload, max_steps: int = 2_000_000) -> ReplayResult:
    """Run `workload` against one replica whose step times `model` gives."""
    loop = _Loop(model, workload)
    for _ in range(max_steps):
        if not (loop.pending or loop.running or loop.waiting):
            return _summary(loop.done, loop.now, loop.gaps)
        loop.prefill(loop.admit())
        loop.decode()
    raise RuntimeError(f"replay did not finish in {max_steps} steps: {workload}")


class _Loop:
    """The client's requests and the engine's clock while the replay runs."""

    def __init__(self, model: PerformanceModel, workload: Workload) -> None:
        self.model, self.concurrency = model, workload.concurrency
        self.max_running = workload.max_running
        self.pending = workload.requests()[::-1]  # pop() from the end sends them in order
        self.running: list[_Request] = []
        self.waiting: list[_Request] = []  # sent, not yet prefilled (the pass budget was full)
        self.done: list[_Request] = []
        self.gaps: list[float] = []  # every inter-token gap of the run
        self.now = 0.0

    def admit(self) -> list[_Request]:
        """Prompts for the next prefill pass: those waiting first, then newly sent ones."""
        fresh: list[_Request] = []
        while (
            self.waiting and self._room(fresh) and (not fresh or _fits(fresh, self.waiting[0].isl))
        ):
            fresh.append(self.waiting.pop(0))
        # A prompt sent as another finishes reaches a busy engine after its next step began.
        busy = bool(self.running)
        while self.pending and self._in_flight(fresh) < self.concurrency:
            isl, osl = self.pending.pop()
            arrived = _Request(isl, osl, self.now)
            if busy or self.waiting or not self._room(fresh) or (fresh and not _fits(fresh, isl)):
                self.waiting.append(arrived)
            else:
                fresh.append(arrived)
        return fresh

    def _room(self, fresh: list[_Request]) -> bool:
        """True while the engine runs fewer requests than its cap."""
        return self.max_running is None or len(self.running) + len(fresh) < self.max_running

    def _in_flight(self, fresh: list[_Request]) -> int:
        return len(self.running) + len(self.waiting) + len(fresh)

    def prefill(self, fresh: list[_Request]) -> None:
        """One separate prefill forward for the admitted prompts; each gets its first token."""
        if not fresh:
            return
        self.now += self.model.prefill_seconds(sum(r.isl for r in fresh))
        for request in fresh:
            request.first, request.last, request.emitted = self.now, self.now, 1.0
        self.running.extend(fresh)

    def decode(self) -> None:
        """One decode step of every running request; finished ones leave."""
        decoding = [r for r in self.running if r.emitted < r.osl]
        if decoding:
            context = sum(r.isl + int(r.emitted) for r in decoding)
            self.now += self.model.decode_step_seconds(len(decoding), context)
            for request in decoding:
                request.emitted += self.model.tokens_per_step
                self.gaps.append(self.now - request.last)
                request.last = self.now
        for request in self.running:
            if request.emitted >= request.osl:
                request.emitted, request.end = float(request.osl), self.now
                self.done.append(request)
        self.running = [r for r in self.running if r.end < 0]


def _fits(batch: list[_Request], tokens: int) -> bool:
    return sum(r.isl for r in batch) + tokens <= PREFILL_BUDGET_TOKENS


def _summary(done: list[_Request], duration: float, gaps: list[float]) -> ReplayResult:
    tpots = [(r.end - r.first) / (r.osl - 1) for r in done if r.osl > 1]
    latency = sum(r.end - r.sent for r in done)
    output = sum(r.osl for r in done)
    return ReplayResult(
        median_tpot_s=statistics.median(tpots) if tpots else 0.0,
        mean_tpot_s=statistics.fmean(tpots) if tpots else 0.0,
        median_itl_s=statistics.median(gaps) if gaps else 0.0,
        mean_ttft_s=statistics.fmean(r.first - r.sent for r in done),
        output_tokens_per_s=output / duration if duration > 0 else 0.0,
        mean_concurrency=latency / duration if duration > 0 else 0.0,
        duration_s=duration,
        tpots=tuple(tpots),
    )
