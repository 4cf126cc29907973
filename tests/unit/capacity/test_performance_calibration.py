"""The performance model against published GLM serving runs: fit set, held-out runs, LOSO.

The fit set (`ops.calibration.perf_cases`) is what the free constants were fitted to: its
10% check below is an in-sample fit, not a validation. What the model claims beyond it is
checked on the held-out runs (`ops.calibration.held_out`: no constant was read from them) and
reported leave-one-source-out (`ops.calibration.loso`; the full refits run in the benchmark,
`python -m ops.benchmarks.perf_calibration`). Expected numbers are the published ones; the
model's come from the architecture, the GPU datasheet and the constants, never from the
figure they are compared with.
"""

from __future__ import annotations

import dataclasses

import pytest

from controlplane.capacity.perf_notes import decode_caveat
from ops.calibration.held_out import GAPS, HELD_OUT, NOT_USED, SETS
from ops.calibration.perf_cases import CASES, topology_of
from ops.calibration.perf_estimate import TOLERANCE, decode_cases, estimate
from ops.calibration.report import held_out_markdown


def test_the_fit_set_holds_ten_documented_public_measurements() -> None:
    assert len(CASES) >= 10
    assert len({case.name for case in CASES}) == len(CASES)
    sources = {case.source for case in CASES}
    assert len(sources) >= 4 and all(s.startswith("https://") for s in sources)
    for case in (*CASES, *HELD_OUT, *SETS["prefill_stall_s"]):
        assert case.engine and len(case.confidence) > 40, case.name
        assert case.gpu in {"H100", "H200", "B200"}
        assert case.tpot_ms or case.output_tps, case.name
        assert all(reason for reason in case.unreachable.values()), case.name
        topology_of(case)  # every case is a valid glmctl layout
    decode = decode_cases()
    assert len(decode) >= 10
    assert min(c.concurrency or 0 for c in decode) == 1
    assert max(c.concurrency or 0 for c in decode) >= 256


@pytest.mark.parametrize("case", decode_cases(), ids=lambda case: case.name)
def test_fit_set_in_sample_within_ten_percent(case) -> None:  # type: ignore[no-untyped-def]
    checked = estimate(case).checked()
    assert checked or case.unreachable, case.name
    for metric, error in checked.items():
        assert abs(error) <= TOLERANCE, (case.name, metric, f"{error:+.1%}")


def test_held_out_runs_share_no_source_with_the_fit() -> None:
    fit_sources = {case.source for case in CASES}
    for case in (*HELD_OUT, *SETS["prefill_stall_s"]):
        assert case.source not in fit_sources, case.name
    names = [case.name for case in (*CASES, *HELD_OUT, *SETS["prefill_stall_s"])]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("case", HELD_OUT, ids=lambda case: case.name)
def test_held_out_runs_within_ten_percent_or_a_stated_gap(case) -> None:  # type: ignore[no-untyped-def]
    found = estimate(case)
    for metric in ("tpot", "output_tps"):
        error = found.error(metric)
        if error is None:
            continue
        if metric not in case.unreachable:  # a stated reason: reported, not held to 10%
            assert abs(error) <= TOLERANCE, (case.name, metric, f"{error:+.1%}")


def test_stated_held_out_gaps_are_real() -> None:
    """A gap that the model has closed must leave the list (it would hide a passing figure)."""
    for case in HELD_OUT:
        key = (case.model, case.isl, case.osl, case.concurrency)
        for metric in GAPS.get(key, {}):
            error = estimate(case).error(metric)
            assert error is not None and abs(error) > TOLERANCE, (case.name, metric)


def test_held_out_cover_one_to_a_hundred_streams_with_few_gaps() -> None:
    concurrency = {case.concurrency for case in HELD_OUT}
    assert {1, 16, 64, 100} <= concurrency
    figures = [(c, m) for c in HELD_OUT for m in ("tpot", "output_tps") if estimate(c).error(m)]
    assert len(figures) >= 21
    b200 = [(c.name, m) for c in HELD_OUT if c.gpu == "B200" for m in c.unreachable]
    assert len(b200) <= 2, b200


def test_h100_under_load_is_held_out_and_its_miss_is_reported() -> None:
    """The H100 run under load misses 10%: it stays in the held-out table with its error and a
    note, it is not dropped (issue 22 asks for the error, not for a passing table)."""
    loaded = [c for c in HELD_OUT if c.gpu == "H100" and (c.concurrency or 0) >= 16]
    assert loaded
    table = held_out_markdown()
    for case in loaded:
        row = next(line for line in table.splitlines() if f"[{case.name}]" in line)
        for metric in case.unreachable:
            error = estimate(case).error(metric)
            assert error is not None and f"{error * 100:+.1f}%" in row, (case.name, metric)
            assert f"{metric} not held to 10%" in row


def test_the_sparse_attention_caveat_is_what_the_held_out_runs_show() -> None:
    """GLM-5 (DSA) estimates carry a caveat because every held-out GLM-5 run serves fewer
    tokens/s than the model says; a GQA model's carry none. If the model closes the gap, the
    caveat must go."""
    dsa = [c for c in HELD_OUT if topology_of(c).arch.sparse_attention]
    assert {c.gpu for c in dsa} == {"H200"} and {1, 100} <= {c.concurrency for c in dsa}
    for case in dsa:
        error = estimate(case).error("output_tps")
        assert error is not None and error > TOLERANCE, (case.name, error)
        assert decode_caveat(topology_of(case))
    assert not any(decode_caveat(topology_of(c)) for c in HELD_OUT if c not in dsa)


def test_the_engine_running_cap_queues_the_rest() -> None:
    """SGLang under EAGLE runs at most 48 requests: the GLM-5 100-client run's 20.6 s mean
    TTFT is that queue. Without the cap the replay's TTFT is a prefill, not a wait."""
    (case,) = [c for c in HELD_OUT if c.max_running]
    capped = estimate(case)
    free = estimate(dataclasses.replace(case, name=case.name + "-free", max_running=None))
    assert capped.ttft_ms > 20 * free.ttft_ms and capped.ttft_ms > 5000
    assert case.ttft_ms is not None and capped.ttft_ms < case.ttft_ms  # the step is too fast


def test_runs_considered_and_not_replayed_say_why() -> None:
    assert len(NOT_USED) >= 5
    assert all(source.startswith("https://") and len(why) > 40 for source, why in NOT_USED)


def test_unreachable_fit_figures_are_few_and_the_rest_covers_every_concurrency() -> None:
    decode = decode_cases()
    skipped = [(c.name, m) for c in decode for m in c.unreachable]
    checked = [(c.name, m) for c in decode for m in estimate(c).checked()]
    assert len(skipped) <= 5 < 20 <= len(checked)
    assert {c.concurrency for c in decode if estimate(c).checked()} >= {1, 4, 64, 128, 256}


def test_single_stream_mtp_speed_up_matches_the_report() -> None:
    """vLLM #25993's absolute figures are unreachable (see the case); its ratio is not."""
    by_name = {case.name: case for case in CASES}
    plain = estimate(by_name["vllm-h200-bf16-tp8-c1"]).output_tps
    mtp = estimate(by_name["vllm-h200-bf16-tp8-mtp1-c1"]).output_tps
    assert mtp / plain == pytest.approx(73 / 47, rel=TOLERANCE)


def test_the_fit_is_not_one_point() -> None:
    """Every engine profile is checked against more than one published figure."""
    for engine in {case.replay_engine for case in decode_cases()}:
        figures = sum(
            len(estimate(c).checked()) for c in decode_cases() if c.replay_engine is engine
        )
        assert figures >= 2, engine


def test_benchmark_lists_fit_held_out_and_stall_runs(capsys: pytest.CaptureFixture[str]) -> None:
    from ops.benchmarks.perf_calibration import main

    assert main(["--model-only", "--loso", "none"]) == 0
    out = capsys.readouterr().out
    assert all(case.name in out for case in (*CASES, *HELD_OUT, *SETS["prefill_stall_s"]))
    assert "in-sample" in out and "HELD OUT" in out
    assert "not held to 10%" in out  # unreachable figures are listed with their reason
