"""Markdown tables of the performance model's errors, for docs/guides/performance-model.md.

    python -m ops.calibration.report

prints the in-sample table (per fit-set source) and the held-out table (per run); the unit
tests fail when the docs page no longer shows what the model computes today. The
leave-one-source-out table needs one grid search per source (minutes): it is printed by
`python -m ops.benchmarks.perf_calibration` and copied into the page by hand.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

from ops.calibration.held_out import HELD_OUT, NOT_USED, SETS
from ops.calibration.loso import log_rms
from ops.calibration.perf_cases import CASES, CalibrationCase
from ops.calibration.perf_estimate import METRICS, TOLERANCE, decode_cases, estimate


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:+.1f}%"


def _num(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def in_sample_markdown(cases: Iterable[CalibrationCase] = CASES) -> str:
    """Per fit-set source: checked figures, worst and RMS error of the committed constants."""
    by_source: dict[str, list[float]] = {}
    for case in decode_cases(cases):
        by_source.setdefault(case.source, []).extend(estimate(case).checked().values())
    lines = ["| source | checked figures | worst | RMS |", "|---|--:|--:|--:|"]
    for source, errors in by_source.items():
        worst = max(errors, key=abs) if errors else None
        rms = f"{log_rms(errors) * 100:.1f}%" if errors else "-"
        lines.append(f"| <{source}> | {len(errors)} | {_pct(worst)} | {rms} |")
    return "\n".join(lines)


def runs_markdown(cases: Iterable[CalibrationCase]) -> str:
    """One row per run: published vs model TPOT and output tokens/s, with errors."""
    lines = [
        "| run | GPUs | clients | TPOT ms (pub) | model | error | tok/s (pub) | model | error"
        " | note |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|---|",
    ]
    for case in cases:
        found = estimate(case)
        note = "; ".join(f"{m} not held to 10%" for m in case.unreachable)
        lines.append(
            f"| [{case.name}]({case.source}) | {case.gpus} x {case.gpu} | {case.concurrency}"
            f" | {_num(case.tpot_ms, 2)} | {_num(found.tpot_ms, 2)} | {_pct(found.error('tpot'))}"
            f" | {_num(case.output_tps, 1)} | {_num(found.output_tps, 1)}"
            f" | {_pct(found.error('output_tps'))} | {note} |"
        )
    return "\n".join(lines)


def held_out_markdown() -> str:
    return runs_markdown(HELD_OUT)


def held_out_by_source_markdown(cases: Iterable[CalibrationCase] = HELD_OUT) -> str:
    """Per held-out source: every published TPOT and output tokens/s figure (those not held
    to 10% included), how many are within 10%, the worst and the RMS error."""
    by_source: dict[str, tuple[str, list[float]]] = {}
    for case in decode_cases(cases):
        found = estimate(case)
        errors = [e for e in (found.error(m) for m in METRICS) if e is not None]
        gpus, kept = by_source.setdefault(case.source, (f"{case.gpus} x {case.gpu}", []))
        kept.extend(errors)
    lines = [
        "| held-out source | GPUs | figures | within 10% | worst | RMS |",
        "|---|---|--:|--:|--:|--:|",
    ]
    for source, (gpus, errors) in by_source.items():
        within = sum(abs(e) <= TOLERANCE for e in errors)
        worst = max(errors, key=abs) if errors else None
        lines.append(
            f"| <{source}> | {gpus} | {len(errors)} | {within} | {_pct(worst)}"
            f" | {log_rms(errors) * 100:.1f}% |"
        )
    return "\n".join(lines)


def not_used_markdown() -> str:
    """Published runs considered for the held-out set and left out, with why."""
    lines = ["| source | why not replayed |", "|---|---|"]
    lines += [f"| <{source}> | {why} |" for source, why in NOT_USED]
    return "\n".join(lines)


def decode_step_markdown() -> str:
    """Published median inter-token latency (the decode step) against the replay's, for the
    runs whose page gives it: where the model's error at load sits."""
    lines = [
        "| run | clients | mean concurrency | median ITL ms (pub) | model | error |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    for case in (*HELD_OUT, *SETS["prefill_stall_s"]):
        if case.median_itl_ms is None:
            continue
        found = estimate(case)
        lines.append(
            f"| [{case.name}]({case.source}) | {case.concurrency} | {_num(found.concurrency, 1)}"
            f" | {case.median_itl_ms:.2f} | {_num(found.itl_ms, 2)} | {_pct(found.error('itl'))} |"
        )
    return "\n".join(lines)


def stall_source_markdown() -> str:
    return runs_markdown(SETS["prefill_stall_s"])


def main(argv: list[str]) -> int:
    del argv
    for title, table in (
        ("In-sample (fit set)", in_sample_markdown()),
        ("Held out, per source", held_out_by_source_markdown()),
        ("Held out", held_out_markdown()),
        ("Considered, not held out", not_used_markdown()),
        ("Decode step (median ITL)", decode_step_markdown()),
        ("Source of the SGLang prefill stall (not held out)", stall_source_markdown()),
    ):
        print(f"## {title}\n\n{table}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
