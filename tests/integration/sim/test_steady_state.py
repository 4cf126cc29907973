"""The simulator, driven by a closed-loop client, shows the model's steady state.

The calibration benchmark compares published runs with both the steady-state estimate
(`controlplane.capacity.steady_state`) and `glmctl sim serve`; this checks, on a short
workload, that the two agree, so the benchmark's simulator column means what it says.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ops.benchmarks.perf_replay import plan_replay, replay
from ops.calibration.perf_cases import CASES
from ops.calibration.perf_estimate import estimate

pytestmark = [pytest.mark.integration]


@pytest.mark.parametrize(
    "name", ["trtllm-h100-fp8-tp8ep8-1k1k-c16", "sglang-h200-bf16-tp8-mtp3-c1"]
)
def test_simulated_tpot_and_throughput_match_the_estimate(name: str, tmp_path: Path) -> None:
    # The published lengths: with outputs this long the prefills mixed into decode steps are
    # a small part of TPOT. (With short, equal outputs a closed loop stays in lock-step and
    # its prefills land in TTFT instead; the estimate assumes completions spread out.)
    case = next(c for c in CASES if c.name == name)
    plan = plan_replay(case, "builtin", None)
    measured = replay(case, plan, tmp_path)
    expected = estimate(case)
    assert measured.tpot_ms == pytest.approx(expected.tpot_ms, rel=0.10), (measured, expected)
    assert measured.output_tps == pytest.approx(expected.output_tps, rel=0.15), (measured, expected)
