"""Continuous batching, paced by the performance model (one asyncio task per server).

Each step, as vLLM's and SGLang's schedulers do:
1. admit waiting requests first-come-first-served while `max_num_seqs` and the KV pool
   allow (each reserves blocks for its prompt and its planned output, so nothing is ever
   preempted; prompt blocks already cached are prefix hits and skip prefill);
2. prefill admitted prompts in chunks of at most `chunk_tokens` tokens per step;
3. run one decode step for every sequence whose prompt was done before the step, emitting
   `tokens_per_step` tokens on average (speculative acceptance drawn from the seed).
The step lasts prefill_seconds + decode_step_seconds from the model, divided by
`time_scale`. Steps follow an absolute schedule, so a late wake-up is caught up on the
next step and `lag` (actual minus scheduled end of a step) measures falling behind.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol

from controlplane.engines.sim.kv import KvPool
from controlplane.engines.sim.metrics import EngineGauges, EngineMetrics


class StepTiming(Protocol):
    """What the scheduler needs from `controlplane.capacity.performance.PerformanceModel`."""

    @property
    def tokens_per_step(self) -> float: ...

    @property
    def kv_token_capacity(self) -> int: ...

    def prefill_seconds(self, new_tokens: int, cached_tokens: int = 0) -> float: ...

    def decode_step_seconds(self, batch_size: int, context_tokens: int) -> float: ...


@dataclass(frozen=True)
class SchedulerConfig:
    max_num_seqs: int
    kv_token_capacity: int
    block_tokens: int = 16
    chunk_tokens: int = 8192
    time_scale: float = 1.0
    seed: int = 0
    draft_tokens: int = 0  # tokens drafted per step (speculative metrics only)
    # A request whose prompt KV came from a prefill replica (PD decode side): True when the
    # engine still computes its last prompt token, inside the decode step (vLLM: the
    # connector loads prompt - 1 tokens, v1/core/sched/scheduler.py); False when it joins
    # the running batch without a forward (SGLang: disaggregation/decode.py "skip the
    # prefill forward but only populate metadata").
    transfer_forward: bool = False
    # Prompts run as a forward of their own before the decode step (SGLang 0.5.23's default:
    # managers/scheduler.py `get_next_batch_to_run` returns the new prefill batch while the
    # running batch waits, and scheduler_components/batch_result_processor.py
    # `process_batch_result_prefill` streams each prompt's first token when that forward
    # ends); False: the prompt chunk rides in the decode step and its first token comes with
    # the step's (vLLM V1). The step lasts as long either way.
    separate_prefill_pass: bool = False


class Mailbox:
    """Events from the scheduler to one request's HTTP task (a list plus one waiter)."""

    __slots__ = ("items", "waiter")

    def __init__(self) -> None:
        self.items: list[tuple[int, int, int, str | None]] = []
        self.waiter: asyncio.Future[None] | None = None

    def put(self, item: tuple[int, int, int, str | None]) -> None:
        self.items.append(item)
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self) -> list[tuple[int, int, int, str | None]]:
        """Every event so far: (choice index, first token, end token, finish reason)."""
        if not self.items:
            self.waiter = asyncio.get_running_loop().create_future()
            await self.waiter
            self.waiter = None
        items, self.items = self.items, []
        return items


@dataclass(eq=False, slots=True)
class Sequence:
    """One choice of one request as the scheduler sees it."""

    index: int
    prompt_tokens: int
    output_tokens: int
    hashes: list[int]
    mailbox: Mailbox
    finish_reason: str
    arrival: float = 0.0
    blocks: int = 0
    cached: int = 0
    prefilled: int = 0
    generated: int = 0
    last_emit: float = 0.0
    last_model_emit: float = 0.0  # scheduled end of the step that emitted last (model s)
    aborted: bool = False
    stream: bool = False  # the request streams (SGLang's `is_streaming` label)
    # A PD decode replica got this prompt's KV from its prefill replica (engines/sim/pd.py):
    # only the last prompt token is computed here, as for a full prefix hit.
    transferred: bool = False
    # A PD prefill replica keeps the KV until the decode side has it (release_held).
    hold_kv: bool = False


@dataclass
class StepStats:
    steps: int = 0
    lag_total: float = 0.0
    lag_max: float = 0.0
    late_steps: int = 0
    busy_wall: float = 0.0
    scheduled_wall: float = 0.0  # sum of the steps' scheduled wall durations
    recent_lags: deque[float] = field(default_factory=lambda: deque(maxlen=200))


class Scheduler:
    def __init__(self, timing: StepTiming, config: SchedulerConfig) -> None:
        self.timing = timing
        self.config = config
        self.kv = KvPool(max(1, config.kv_token_capacity // config.block_tokens))
        self.metrics = EngineMetrics()
        self.stats = StepStats()
        self.waiting: deque[Sequence] = deque()
        self.prefilling: list[Sequence] = []
        self.decoding: list[Sequence] = []
        self._wake = asyncio.Event()
        self._rng = random.Random(config.seed)
        self._per_step = timing.tokens_per_step
        self._t0 = 0.0
        self._t0_perf = time.perf_counter()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._gen_window: deque[tuple[float, int]] = deque(maxlen=64)
        self._chunks: list[tuple[Sequence, int]] = []
        self._batch: list[Sequence] = []
        # (scheduled end, scheduled length) of the step being finished, in model seconds:
        # the exact sample logs use it, so host lag never shows in them.
        self._model_step = (0.0, 0.0)
        self._prefill_part = 0.0  # seconds of this step's separate prefill pass (0: none)
        self._first_tokens = 0  # first tokens that pass emitted

    # -- API for the HTTP layer -------------------------------------------------------
    def blocks_for(self, tokens: int) -> int:
        return -(-tokens // self.config.block_tokens)

    def fits_ever(self, tokens: int) -> bool:
        return self.blocks_for(tokens) <= self.kv.total_blocks

    def submit(self, seq: Sequence) -> None:
        seq.arrival = self.now()
        self.waiting.append(seq)
        self._wake.set()

    def abort(self, seq: Sequence) -> None:
        """Stop a sequence (client went away); its blocks are freed at the next step."""
        seq.aborted = True
        self._wake.set()

    def now(self) -> float:
        """Simulated seconds since start."""
        loop = self._loop or asyncio.get_running_loop()
        return (loop.time() - self._t0) * self.config.time_scale

    def gauges(self) -> EngineGauges:
        running = len(self.prefilling) + len(self.decoding)
        used = sum(s.prompt_tokens + s.generated for s in (*self.prefilling, *self.decoding))
        window = self._gen_window
        rate = 0.0
        if len(window) > 1 and window[-1][0] > window[0][0]:
            rate = sum(n for _, n in list(window)[1:]) / (window[-1][0] - window[0][0])
        return EngineGauges(
            running=running,
            waiting=len(self.waiting),
            kv_usage=self.kv.usage,
            used_tokens=used,
            kv_token_capacity=self.kv.total_blocks * self.config.block_tokens,
            spec_accept_length=self._per_step if self.config.draft_tokens else 0.0,
            gen_throughput=rate,
        )

    def stats_json(self) -> dict[str, Any]:
        s = self.stats
        return {
            "steps": s.steps,
            "lag_mean_s": s.lag_total / s.steps if s.steps else 0.0,
            "lag_max_s": s.lag_max,
            "lag_total_s": s.lag_total,
            "lag_recent_max_s": max(s.recent_lags, default=0.0),
            "late_steps": s.late_steps,
            "busy_wall_s": s.busy_wall,
            "scheduled_wall_s": s.scheduled_wall,
            "clock_wall_s": time.perf_counter() - self._t0_perf,
            "running": len(self.prefilling) + len(self.decoding),
            "waiting": len(self.waiting),
            "kv_usage": self.kv.usage,
            "ttft_count": len(self.metrics.ttft_log),
            "itl_count": len(self.metrics.itl_log),
            "prompt_tokens": self.metrics.prompt_tokens,
            "generation_tokens": self.metrics.generation_tokens,
        }

    # -- the loop ---------------------------------------------------------------------
    async def run(self) -> None:
        loop = self._loop = asyncio.get_running_loop()
        self._t0 = loop.time()
        self._t0_perf = time.perf_counter()
        next_start = loop.time()
        while True:
            if not (self.waiting or self.prefilling or self.decoding):
                self._wake.clear()
                await self._wake.wait()
                next_start = loop.time()
            seconds = self._plan_and_time()
            if not self._chunks and not self._batch:  # all waiting, KV held: sleep
                self._wake.clear()
                await self._wake.wait()
                next_start = loop.time()
                continue
            scale = self.config.time_scale
            if self._prefill_part:  # the prompts' first tokens leave when their pass ends
                mid = next_start + self._prefill_part / scale
                await asyncio.sleep(max(0.0, mid - loop.time()))
                self._model_step = ((mid - self._t0) * scale, (mid - next_start) * scale)
                self._first_tokens = self._finish_prefill(self.now())
            end = next_start + seconds / scale
            delay = end - loop.time()
            await asyncio.sleep(delay if delay > 0 else 0)
            woke = time.perf_counter()
            self._record_lag(loop.time() - end, end - next_start)
            self._model_step = ((end - self._t0) * scale, (end - next_start) * scale)
            self._finish_step()
            self.stats.busy_wall += time.perf_counter() - woke
            next_start = end

    def _record_lag(self, lag: float, step_wall: float) -> None:
        s = self.stats
        s.steps += 1
        s.scheduled_wall += step_wall
        s.lag_total += lag
        s.lag_max = max(s.lag_max, lag)
        s.recent_lags.append(lag)
        if lag > max(0.005, 0.5 * step_wall):
            s.late_steps += 1

    def _plan_and_time(self) -> float:
        """Admit, choose this step's prefill chunks and decode batch; return its seconds."""
        self._drop_aborted()
        self._admit()
        new = cached = 0
        self._chunks = []
        joining: list[Sequence] = []  # transferred: their KV came from a prefill replica
        budget = self.config.chunk_tokens
        for seq in self.prefilling:
            if seq.transferred:
                self._chunks.append((seq, seq.prompt_tokens - seq.prefilled))
                joining.append(seq)
                continue
            if budget <= 0:
                continue
            take = min(seq.prompt_tokens - seq.prefilled, budget)
            self._chunks.append((seq, take))
            new += take
            cached += seq.prefilled
            budget -= take
        self._batch = list(self.decoding)
        prefill = self.timing.prefill_seconds(new, cached) if new else 0.0
        seconds = prefill
        forward = self._batch + (joining if self.config.transfer_forward else [])
        if forward:
            context = sum(s.prompt_tokens + s.generated for s in forward)
            seconds += self.timing.decode_step_seconds(len(forward), context)
        split = self.config.separate_prefill_pass and prefill > 0 and seconds > prefill
        self._prefill_part = prefill if split else 0.0
        return seconds

    def _admit(self) -> None:
        block = self.config.block_tokens
        while self.waiting and len(self.prefilling) + len(self.decoding) < self.config.max_num_seqs:
            seq = self.waiting[0]
            blocks = self.blocks_for(seq.prompt_tokens + seq.output_tokens)
            hits = self.kv.allocate(seq.hashes, blocks)
            if hits is None:
                return  # FCFS: the head waits for room, as in vLLM
            self.waiting.popleft()
            seq.blocks = blocks
            # At least one token is always computed, as the engines recompute the last one.
            seq.cached = min(hits * block, seq.prompt_tokens - 1)
            if seq.transferred:
                seq.cached = seq.prompt_tokens - 1
            seq.prefilled = seq.cached
            m = self.metrics
            m.prefix_queries += seq.prompt_tokens
            m.prefix_hits += seq.cached
            m.queue_time.observe(self.now() - seq.arrival)
            self.prefilling.append(seq)

    def _drop_aborted(self) -> None:
        if any(s.aborted for s in self.waiting):
            self.waiting = deque(s for s in self.waiting if not s.aborted)
        for group in (self.prefilling, self.decoding):
            for seq in [s for s in group if s.aborted]:
                group.remove(seq)
                self._release(seq, "abort")

    def _finish_step(self) -> None:
        now = self.now()
        produced = self._decode(now)
        if self._prefill_part:  # its prompts finished mid-step (run)
            produced += self._first_tokens
        else:
            produced += self._finish_prefill(now)
        self.metrics.generation_tokens += produced
        self._gen_window.append((now, produced))

    def _finish_prefill(self, now: float) -> int:
        """The step's prompt chunks are done: each finished prompt emits its first token;
        returns how many did."""
        produced = 0
        for seq, take in self._chunks:
            seq.prefilled += take
            if seq.prefilled >= seq.prompt_tokens and not seq.aborted:
                self.prefilling.remove(seq)
                self.metrics.prompt_tokens += seq.prompt_tokens
                end, length = self._model_step
                self.metrics.log_ttft(now - seq.arrival, max(end - seq.arrival, length), seq.stream)
                produced += 1
                self._emit(seq, 1, now)
                if seq.generated < seq.output_tokens:
                    self.decoding.append(seq)
        self._chunks = []
        return produced

    def _decode(self, now: float) -> int:
        batch = self._batch
        if not batch:
            return 0
        per_step = self._per_step
        whole = int(per_step)
        frac = per_step - whole
        rand = self._rng.random
        produced = 0
        log_itl = self.metrics.log_itl
        for seq in batch:
            if seq.aborted:
                continue
            k = whole + 1 if frac and rand() < frac else whole
            k = min(max(k, 1), seq.output_tokens - seq.generated)
            log_itl(now - seq.last_emit, self._model_step[0] - seq.last_model_emit)
            produced += k
            self._emit(seq, k, now)
        if self.config.draft_tokens:
            m = self.metrics
            m.spec_drafts += len(batch)
            m.spec_draft_tokens += len(batch) * self.config.draft_tokens
            m.spec_accepted_tokens += produced - len(batch)
        self.decoding = [s for s in self.decoding if s.generated < s.output_tokens]
        return produced

    def _emit(self, seq: Sequence, count: int, now: float) -> None:
        start = seq.generated
        seq.generated = start + count
        seq.last_emit = now
        seq.last_model_emit = self._model_step[0]
        done = seq.generated >= seq.output_tokens
        seq.mailbox.put((seq.index, start, seq.generated, seq.finish_reason if done else None))
        if done:
            self._release(seq, seq.finish_reason)
            self.metrics.log_finished(
                seq.stream, seq.prompt_tokens, seq.generated, now - seq.arrival
            )

    def release_held(self, seq: Sequence) -> None:
        """Free the KV a finished `hold_kv` sequence kept (idempotent)."""
        seq.hold_kv = False
        if seq.blocks:
            self.kv.release(seq.hashes, seq.blocks)
            seq.blocks = 0
            self._wake.set()

    def _release(self, seq: Sequence, reason: str) -> None:
        if seq.blocks and not seq.hold_kv:
            self.kv.release(seq.hashes, seq.blocks)
            seq.blocks = 0
        finished = self.metrics.requests_finished
        key = reason if reason in finished else "stop"
        finished[key] += 1
