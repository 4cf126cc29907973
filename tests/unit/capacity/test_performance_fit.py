"""The committed constants are what the grid search over the whole set finds."""

from __future__ import annotations

import math

from controlplane.capacity.calibration import TOLERANCE
from controlplane.capacity.perf_constants import FITTED
from ops.benchmarks.perf_fit import constants_at, points, score


def test_fitted_constants_are_the_best_grid_point_and_meet_the_bar() -> None:
    fitted = score(FITTED)
    assert math.expm1(fitted[0]) <= TOLERANCE
    best = min(score(constants_at(point)) for point in points())
    assert fitted == best
