"""`glmctl sweep --pd`: PD and colocated layouts ranked for a workload, with the reason.

The ranking is the performance model's (capacity/pd_compare.py), printed by the sweep before
(or, with `--limit 0`, instead of) the simulated runs; nothing here runs an engine.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from controlplane.capacity.pd_compare import compare_layouts
from controlplane.cli.loadtest_cmds import _sweep_base
from controlplane.cli.pd_capacity_cmd import parse_workload
from tests.unit.cli.helpers import CliResult

Glmctl = Callable[..., CliResult]
BASE = ("sweep", "--model", "glm-4.5", "--precision", "fp8", "--gpu", "H200", "--gpus", "8")


@pytest.mark.parametrize("workload", ["8192/512@16", "256/256@16"])
def test_sweep_ranks_pd_and_colocated_with_the_reason(glmctl: Glmctl, workload: str) -> None:
    result = glmctl(*BASE, "--pd", workload, "--limit", "0")
    assert result.code == 0, result.text
    # The printed verdict is the comparison's own for the sweep's base layout.
    _, base = _sweep_base("glm-4.5", "fp8", "H200", 32768, 8)
    expected = compare_layouts(base, parse_workload(workload, base), 8)
    reason = " ".join(result.out.split("reason:", 1)[1].split())
    assert reason.startswith(" ".join(expected.reason.split())[:80])
    assert reason.startswith("PD wins") == (expected.winner == "disaggregated")
    if workload.startswith("8192"):
        assert expected.winner == "disaggregated"  # long prompts favour PD
    assert "simulated" not in result.out and "layouts ranked at the SLO" not in result.out


def test_limit_zero_without_pd_is_a_user_error(glmctl: Glmctl) -> None:
    result = glmctl(*BASE, "--limit", "0")
    assert result.code == 2 and "--pd" in result.text and "Traceback" not in result.text


def test_a_bad_pd_workload_is_a_user_error(glmctl: Glmctl) -> None:
    result = glmctl(*BASE, "--pd", "8k/512", "--limit", "0")
    assert result.code == 2 and "To fix:" in result.text and "Traceback" not in result.text
