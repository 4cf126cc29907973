"""`glmctl sim serve` refuses flags that cannot run, before it binds a port."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.cli.helpers import invoke

TOPOLOGY = Path(__file__).resolve().parents[3] / "topologies" / "glm45-fp8.yaml"


@pytest.mark.parametrize(
    "flags",
    [
        ["--time-scale", "0"],
        ["--time-scale", "-1"],
        ["--kv-tokens", "0"],
        ["--port", "0"],
        ["--flavor", "sglng"],  # the engines the simulator mimics come from their profiles
    ],
)
def test_bad_flags_exit_2_without_traceback(
    flags: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    result = invoke(["sim", "serve", str(TOPOLOGY), *flags], capsys, monkeypatch)
    assert result.code == 2, result.text
    assert flags[0] in result.text and "Traceback" not in result.text
