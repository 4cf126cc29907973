"""Leave-one-source-out: the refit never sees the source it is scored on.

The full refits (one grid search per source) run in `python -m ops.benchmarks.perf_calibration`;
here a two-point grid keeps the test short while checking the mechanism.
"""

from __future__ import annotations

from ops.calibration import loso
from ops.calibration.fit import GRID, best_point
from ops.calibration.perf_cases import CASES

TINY = {name: values[:1] for name, values in GRID.items()} | {"layer_s": (100e-6, 130e-6)}


def test_every_source_with_a_checked_figure_is_a_fold() -> None:
    names = loso.sources()
    assert len(names) >= 4
    assert all(any(case.source == s for case in CASES) for s in names)


def test_a_fold_refits_without_its_source_and_scores_only_that_source() -> None:
    source = loso.sources()[0]
    fold = loso.leave_one_out(source, CASES, TINY)
    _, expected = best_point([c for c in CASES if c.source != source], TINY)
    assert fold.point == expected
    own = {c.name for c in CASES if c.source == source}
    assert fold.held_out and set(fold.held_out) == set(fold.in_sample)
    assert all(key.split("/")[0] in own for key in fold.held_out)


def test_log_rms_is_a_relative_error() -> None:
    assert loso.log_rms([0.1, -0.1]) < 0.11
    assert loso.log_rms([]) == 0.0
