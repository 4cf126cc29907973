"""Leave-one-source-out error of the performance model's fit.

The committed constants are the grid point that fits every checked figure of the fit set
(`perf_cases`), so their error on that set is in-sample. Here each source (a sweep, a page, an
issue) is left out in turn: the grid search runs on the other sources only, and the left-out
source's figures are estimated with the constants that search picks. That error is what the
fit can claim for a source like it that it has not seen.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ops.calibration.fit import GRID, best_point, constants_at
from ops.calibration.perf_cases import CASES, CalibrationCase
from ops.calibration.perf_estimate import decode_cases, estimate


@dataclass(frozen=True)
class Fold:
    """One source left out: the refitted point and the source's errors, in and out of sample."""

    source: str
    point: dict[str, Any]
    in_sample: dict[str, float]  # "case/metric" -> error with the constants fitted to all
    held_out: dict[str, float]  # ... with the constants fitted without this source

    @staticmethod
    def worst(errors: dict[str, float]) -> float | None:
        return max((abs(e) for e in errors.values()), default=None)


def sources(cases: Iterable[CalibrationCase] = CASES) -> list[str]:
    """The fit set's sources with at least one checked figure, in first-seen order."""
    seen: dict[str, None] = {}
    for case in decode_cases(cases):
        if estimate(case).checked():
            seen.setdefault(case.source, None)
    return list(seen)


def _errors(cases: list[CalibrationCase], point: dict[str, Any] | None) -> dict[str, float]:
    constants = constants_at(point) if point is not None else None
    errors: dict[str, float] = {}
    for case in decode_cases(cases):
        found = estimate(case, constants) if constants else estimate(case)
        for metric, error in found.checked().items():
            errors[f"{case.name}/{metric}"] = error
    return errors


def leave_one_out(
    source: str, cases: Iterable[CalibrationCase] = CASES, grid: dict[str, Any] | None = None
) -> Fold:
    """Refit without `source` and estimate `source`'s figures with the refitted constants."""
    everything = list(cases)
    kept = [c for c in everything if c.source != source]
    left = [c for c in everything if c.source == source]
    _, point = best_point(kept, grid or GRID)
    return Fold(source, point, _errors(left, None), _errors(left, point))


def all_folds(
    cases: Iterable[CalibrationCase] = CASES, grid: dict[str, Any] | None = None
) -> list[Fold]:
    """Every source of the fit set left out in turn (~15 s per fold on the full grid)."""
    everything = list(cases)
    return [leave_one_out(s, everything, grid) for s in sources(everything)]


def log_rms(errors: Iterable[float]) -> float:
    """Root-mean-square log error, as a relative error (0.05 = 5%)."""
    logs = [math.log1p(e) ** 2 for e in errors]
    return math.expm1(math.sqrt(sum(logs) / len(logs))) if logs else 0.0
