"""The simulator's exact TTFT and inter-token logs (`/sim/ttft`, `/sim/itl`) and their counts."""

from __future__ import annotations

from tests.unit.engines.sim.test_scheduler import RecordingTiming, finish_all, make, seq


async def test_every_ttft_and_gap_is_logged_with_the_histograms() -> None:
    scheduler = make(RecordingTiming())
    seqs = [seq(40, 5, tag="a"), seq(40, 3, tag="b", index=1)]
    for s in seqs:
        scheduler.submit(s)
    await finish_all(scheduler, seqs)
    m = scheduler.metrics
    assert len(m.ttft_log) == m.ttft.count == 2
    # One gap per decode step of each sequence after its first token: (5 - 1) + (3 - 1).
    assert len(m.itl_log) == m.itl.count == 6
    assert all(g > 0 for g in m.itl_log)
    # Model time: each gap is exactly one scheduled step (0.01 s + 1e-4 per sequence, as
    # RecordingTiming says), whatever this host's wake-up lag. Within 1 us, not 1 ns: model
    # time is the loop clock times time_scale, so its rounding grows with the host's uptime
    # (0.0101 came out 3e-9 short after 13 hours); a wake-up lag would be tens of us.
    assert min(m.itl_log) >= 0.0101 - 1e-6 and max(m.itl_log) <= 0.0102 + 0.0101 + 1e-6
    stats = scheduler.stats_json()
    assert (stats["ttft_count"], stats["itl_count"]) == (2, 6)
    assert stats["generation_tokens"] == 8
