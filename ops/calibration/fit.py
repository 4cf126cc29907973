"""Fit the performance model's free constants to the fit set (a grid search).

`python -m ops.benchmarks.perf_fit` (or `perf_calibration --fit`) evaluates every grid
point of `GRID` (the fields of `perf_constants.FITTED_FIELDS`; the rest stay as stated) on
every checked metric of every decode case in `perf_cases.CASES` and ranks them by the
largest absolute log-error first (the issue's bar is a maximum: every case within 10%), then
by the sum of squared log-errors. It prints the best point, the current `FITTED` point and
the ten best, so a change of `FITTED` can be justified by rerunning it. No point is fitted
to one case: every score is over the whole set (13 TPOT and 11 throughput figures from four
sources).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Iterable, Iterator
from typing import Any

from controlplane.capacity.perf_constants import FITTED, PerfConstants
from ops.calibration.perf_cases import CASES, CalibrationCase
from ops.calibration.perf_estimate import decode_cases, estimate

# One step overhead and one layer floor for every engine: the set has a single reachable
# vLLM point (GPUStack, 4 clients), too few to fit vLLM its own pair.
GRID: dict[str, tuple[Any, ...]] = {
    "step_s": (0.0, 0.25e-3, 0.5e-3, 1e-3, 1.5e-3),
    "layer_s": (100e-6, 105e-6, 110e-6, 115e-6, 120e-6, 125e-6, 130e-6),
    "b200_floor_scale": (0.8, 0.9, 1.0, 1.1),
    "per_sequence_s": (0.0, 5e-6, 10e-6),
    "a2a_latency_intra_s": (10e-6, 20e-6, 30e-6),
    "moe_tile_tokens": (1, 64),
    "prefill_flops_efficiency": (0.25, 0.35, 0.5),
}


def constants_at(point: dict[str, Any]) -> PerfConstants:
    return dataclasses.replace(
        FITTED,
        step_overhead_s=point["step_s"],
        layer_floor_s=point["layer_s"],
        layer_floor_gpu_scale={"B200": point["b200_floor_scale"]},
        per_sequence_s=point["per_sequence_s"],
        a2a_latency_intra_s=point["a2a_latency_intra_s"],
        moe_tile_tokens=point["moe_tile_tokens"],
        prefill_flops_efficiency=point["prefill_flops_efficiency"],
    )


def score(
    constants: PerfConstants, cases: Iterable[CalibrationCase] = CASES
) -> tuple[float, float]:
    """(largest |log error|, sum of squared log errors) over every checked metric of `cases`."""
    logs = [math.log1p(error) for case in decode_cases(cases)
            for error in estimate(case, constants).checked().values()]  # fmt: skip
    if not logs:
        return 0.0, 0.0
    return max(abs(x) for x in logs), sum(x * x for x in logs)


def best_point(
    cases: Iterable[CalibrationCase] = CASES, grid: dict[str, tuple[Any, ...]] | None = None
) -> tuple[tuple[float, float], dict[str, Any]]:
    """The grid point with the best `score` over `cases` (the fit, on any subset)."""
    chosen = list(cases)
    scored = ((score(constants_at(p), chosen), p) for p in points(grid or GRID))
    return min(scored, key=lambda sp: sp[0])


def points(grid: dict[str, tuple[Any, ...]] | None = None) -> Iterator[dict[str, Any]]:
    grid = grid or GRID
    names = list(grid)
    for values in itertools.product(*(grid[n] for n in names)):
        yield dict(zip(names, values, strict=True))
