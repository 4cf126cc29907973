"""Continuous batching against a recording step timing (no server, no sleeps to speak of)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace

from controlplane.engines.sim.scheduler import Mailbox, Scheduler, SchedulerConfig, Sequence
from controlplane.engines.sim.tokens import block_hashes


@dataclass
class RecordingTiming:
    """A step timing that records what the scheduler asked (a test double for the model)."""

    tokens_per_step: float = 1.0
    kv_token_capacity: int = 100_000
    prefills: list[tuple[int, int]] = field(default_factory=list)
    decodes: list[tuple[int, int]] = field(default_factory=list)

    def prefill_seconds(self, new_tokens: int, cached_tokens: int = 0) -> float:
        self.prefills.append((new_tokens, cached_tokens))
        return 0.01 + new_tokens * 1e-5

    def decode_step_seconds(self, batch_size: int, context_tokens: int) -> float:
        self.decodes.append((batch_size, context_tokens))
        return 0.01 + batch_size * 1e-4


def make(timing: RecordingTiming, **config: int) -> Scheduler:
    cfg = SchedulerConfig(
        max_num_seqs=config.get("max_num_seqs", 64),
        kv_token_capacity=config.get("kv_tokens", timing.kv_token_capacity),
        chunk_tokens=config.get("chunk_tokens", 8192),
        time_scale=1000.0,
        seed=7,
    )
    return Scheduler(timing, cfg)


def seq(prompt: int, output: int, tag: str = "p", index: int = 0) -> Sequence:
    words = [f"{tag}{i}" for i in range(prompt)]
    return Sequence(index, prompt, output, block_hashes(words), Mailbox(), "length")


async def finish_all(scheduler: Scheduler, seqs: list[Sequence]) -> list[list[tuple]]:
    task = asyncio.create_task(scheduler.run())
    events: list[list[tuple]] = []
    try:
        for s in seqs:
            got: list[tuple] = []
            while not got or got[-1][3] is None:
                got += await asyncio.wait_for(s.mailbox.get(), 10)
            events.append(got)
    finally:
        task.cancel()
    return events


async def test_a_batch_decodes_together_one_token_per_step() -> None:
    timing = RecordingTiming()
    scheduler = make(timing)
    seqs = [seq(100, 20, tag=f"s{i}") for i in range(8)]
    for s in seqs:
        scheduler.submit(s)
    events = await finish_all(scheduler, seqs)
    assert all(e[-1][2] == 20 and e[-1][3] == "length" for e in events)
    assert timing.prefills[0] == (800, 0)  # all prompts in one chunked-prefill step
    assert [b for b, _ in timing.decodes] == [8] * 19  # first token came from the prefill
    assert timing.decodes[0][1] == 8 * 101
    m = scheduler.metrics
    assert m.generation_tokens == 160 and m.prompt_tokens == 800
    assert m.ttft.count == 8 and m.requests_finished["length"] == 8


async def test_speculative_tokens_per_step_average_matches() -> None:
    timing = RecordingTiming(tokens_per_step=2.5)
    scheduler = make(timing)
    seqs = [seq(16, 2001, tag=f"s{i}") for i in range(4)]
    for s in seqs:
        scheduler.submit(s)
    await finish_all(scheduler, seqs)
    steps = len(timing.decodes)
    assert abs(2000 / steps - 2.5) < 0.1


async def test_requests_wait_while_the_kv_budget_is_full() -> None:
    timing = RecordingTiming()
    scheduler = make(timing, kv_tokens=16 * 20)  # 20 blocks: one 200+100-token sequence fits
    first, second = seq(200, 100, "a"), seq(200, 100, "b")
    scheduler.submit(first)
    scheduler.submit(second)
    task = asyncio.create_task(scheduler.run())
    try:
        await first.mailbox.get()
        assert len(scheduler.waiting) == 1 and scheduler.gauges().waiting == 1
        assert scheduler.gauges().kv_usage > 0.9
        while second.generated < 100:
            await asyncio.wait_for(second.mailbox.get(), 10)
    finally:
        task.cancel()
    assert scheduler.kv.used_blocks == 0


async def test_a_repeated_prefix_skips_prefill() -> None:
    timing = RecordingTiming()
    scheduler = make(timing)
    first = seq(160, 2, "same")
    scheduler.submit(first)
    await finish_all(scheduler, [first])
    again = seq(170, 2, "same")  # same first 160 tokens, then 10 more
    again.hashes = block_hashes([f"same{i}" for i in range(160)] + ["new"] * 10)
    scheduler.submit(again)
    await finish_all(scheduler, [again])
    assert timing.prefills[0] == (160, 0)
    assert timing.prefills[-1] == (10, 160)
    assert scheduler.metrics.prefix_hits == 160
    assert scheduler.metrics.prefix_queries == 330


async def test_long_prompts_are_prefilled_in_chunks() -> None:
    timing = RecordingTiming()
    scheduler = make(timing, chunk_tokens=1000)
    long = seq(2500, 3)
    scheduler.submit(long)
    await finish_all(scheduler, [long])
    assert timing.prefills == [(1000, 0), (1000, 1000), (500, 2000)]


async def test_max_num_seqs_caps_the_running_batch() -> None:
    timing = RecordingTiming()
    scheduler = make(timing, max_num_seqs=3)
    seqs = [seq(16, 5, tag=f"s{i}") for i in range(5)]
    for s in seqs:
        scheduler.submit(s)
    await finish_all(scheduler, seqs)
    assert max(b for b, _ in timing.decodes) == 3


async def test_aborted_sequences_free_their_blocks() -> None:
    timing = RecordingTiming()
    scheduler = make(timing)
    victim = seq(64, 10_000)
    scheduler.submit(victim)
    task = asyncio.create_task(scheduler.run())
    try:
        await victim.mailbox.get()
        scheduler.abort(victim)
        for _ in range(100):
            await asyncio.sleep(0.001)
            if scheduler.kv.used_blocks == 0:
                break
    finally:
        task.cancel()
    assert scheduler.kv.used_blocks == 0
    assert scheduler.metrics.requests_finished["abort"] == 1


async def test_a_transferred_prompt_joins_the_decode_batch_without_a_prefill_pass() -> None:
    """PD decode side: SGLang builds the request's batch entry without a forward; vLLM
    computes its last prompt token inside the decode step. Neither runs a prefill pass."""
    for forward in (False, True):
        timing = RecordingTiming()
        scheduler = make(timing)
        scheduler.config = replace(scheduler.config, transfer_forward=forward)
        running = seq(100, 6, tag="running")
        scheduler.submit(running)
        moved = seq(4000, 3, tag="moved", index=1)
        moved.transferred = True
        scheduler.submit(moved)
        events = await finish_all(scheduler, [running, moved])
        assert [e[-1][2] for e in events] == [6, 3]
        assert all(new != 1 for new, _ in timing.prefills), timing.prefills  # no 1-token pass
        # Decode steps that carry `moved`: its 2 tokens after the first, plus (vLLM) the
        # step that computed its last prompt token and so its first output token.
        joined = [(b, c) for b, c in timing.decodes if c >= 4000]
        assert len(joined) == 2 + forward, timing.decodes


class OrderedMailbox(Mailbox):
    """A mailbox that writes its owner's name into a shared list on every event."""

    __slots__ = ("name", "order")

    def __init__(self, name: str, order: list[str]) -> None:
        super().__init__()
        self.name, self.order = name, order

    def put(self, item: tuple[int, int, int, str | None]) -> None:
        self.order.append(self.name)
        super().put(item)


async def test_a_separate_prefill_pass_emits_first_tokens_before_the_decode_step() -> None:
    """SGLang streams a prompt's first token when its prefill forward ends, before the decode
    step that follows; vLLM's chunk rides in the decode step and its first token comes with
    the step's tokens. `running` decodes while `late`'s prompt is prefilled in chunks of 100:
    count `running`'s tokens out before `late`'s first."""
    for separate, before in ((True, 4), (False, 5)):
        timing = RecordingTiming()
        scheduler = make(timing, chunk_tokens=100)
        scheduler.config = replace(scheduler.config, separate_prefill_pass=separate)
        order: list[str] = []
        running = seq(50, 20, tag="running")
        running.mailbox = OrderedMailbox("running", order)
        late = seq(450, 3, tag="late", index=1)
        late.mailbox = OrderedMailbox("late", order)
        scheduler.submit(running)
        scheduler.submit(late)
        await finish_all(scheduler, [running, late])
        assert order.index("late") == before, order
