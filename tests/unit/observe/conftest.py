from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.unit.cli.helpers import CliResult, invoke


@pytest.fixture
def glmctl(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., CliResult]:
    """`glmctl("show", "file.yaml")` -> CliResult(code, out, err), in-process."""
    return lambda *argv: invoke([str(a) for a in argv], capsys, monkeypatch)
