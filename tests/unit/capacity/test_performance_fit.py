"""The committed constants are where the grid search over the whole set ends up.

The full grid takes ~15 s (`python -m ops.benchmarks.perf_fit`); here FITTED is checked
against every grid neighbour (one field one step away), which a hand-edited constant fails.
"""

from __future__ import annotations

import math
from typing import Any

from controlplane.capacity.perf_constants import FITTED
from ops.calibration.fit import GRID, constants_at, score
from ops.calibration.perf_estimate import TOLERANCE


def _fitted_point() -> dict[str, Any]:
    return {
        "step_s": FITTED.step_overhead_s,
        "layer_s": FITTED.layer_floor_s,
        "b200_floor_scale": FITTED.layer_floor_gpu_scale["B200"],
        "per_sequence_s": FITTED.per_sequence_s,
        "a2a_latency_intra_s": FITTED.a2a_latency_intra_s,
        "moe_tile_tokens": FITTED.moe_tile_tokens,
        "prefill_flops_efficiency": FITTED.prefill_flops_efficiency,
    }


def test_fitted_constants_are_a_grid_point_no_neighbour_beats() -> None:
    point = _fitted_point()
    assert all(point[name] in values for name, values in GRID.items()), point
    assert constants_at(point) == FITTED
    fitted = score(FITTED)
    assert math.expm1(fitted[0]) <= TOLERANCE
    for name, values in GRID.items():
        at = values.index(point[name])
        for step in (-1, 1):
            if 0 <= at + step < len(values):
                neighbour = score(constants_at({**point, name: values[at + step]}))
                assert fitted <= neighbour, (name, values[at + step])
