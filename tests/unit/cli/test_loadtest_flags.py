"""`glmctl loadtest` / `glmctl sweep`: usage errors exit 2 with a fix, before any work."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.unit.cli.helpers import CliResult

URL = "http://127.0.0.1:9"  # nothing listens on the discard port


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["loadtest", URL, "--slo", "ttft=2s"], "is not an objective"),
        (["loadtest", URL, "--slo", "ttft_p99=soon"], "ttft_p99"),
        (["loadtest", URL, "--workload", "agents"], "unknown workload"),
        (["loadtest", URL, "--duration", "soon"], "is not a duration"),
        (["loadtest", URL, "--prompt-tokens", "normal:5"], "needs two numbers"),
        (["loadtest", URL], "does not answer GET /v1/models"),
        (["loadtest", "missing.yaml"], "missing.yaml"),
        (["sweep", "--model", "glm-4.5", "--precision", "fp8", "--gpu", "H200", "--mtp", "maybe"],
         "--mtp"),
        (["sweep", "--model", "glm-4.5", "--precision", "fp8", "--gpu", "H200", "--gpus", "x"],
         "--gpus"),
        (["sweep", "--model", "glm-9", "--precision", "fp8", "--gpu", "H200"], "glm-9"),
        (["sweep", "--model", "glm-4.5", "--precision", "fp8", "--gpu", "H200", "--gpus", "1"],
         "no layout"),
    ],
)  # fmt: skip
def test_usage_errors_exit_2_with_a_fix(
    glmctl: Callable[..., CliResult], args: list[str], message: str
) -> None:
    result = glmctl(*args)
    assert result.code == 2, result.text
    assert message in result.err and "To fix" in result.err, result.err
    assert "Traceback" not in result.text
