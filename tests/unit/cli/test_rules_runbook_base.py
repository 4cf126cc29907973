"""`glmctl rules render --runbook-base`: the alerts link to runbooks under the given base."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.unit.cli.helpers import invoke


def _urls(path: Path) -> list[str]:
    data = yaml.safe_load(path.read_text())
    return [r["annotations"]["runbook_url"] for g in data["groups"] for r in g["rules"]
            if "alert" in r]  # fmt: skip


def test_rules_render_links_runbooks_under_the_given_base(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    base = "https://docs.example.internal/glmctl/"
    result = invoke(["rules", "render", "--out", str(tmp_path), "--runbook-base", base],
                    capsys, monkeypatch)  # fmt: skip
    assert result.code == 0, result.text
    urls = _urls(tmp_path / "alerts.yaml")
    assert urls and all(u.startswith(base + "reference/alerts/glmctl") for u in urls), urls
    default = invoke(["rules", "render", "--out", str(tmp_path / "d")], capsys, monkeypatch)
    assert default.code == 0
    assert all(
        u.startswith("https://glmctl.dev/docs/") for u in _urls(tmp_path / "d" / "alerts.yaml")
    )


def test_a_relative_runbook_base_is_a_user_error_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    result = invoke(["rules", "render", "--out", str(tmp_path), "--runbook-base", "docs/"],
                    capsys, monkeypatch)  # fmt: skip
    assert result.code == 2 and "To fix" in result.text and "Traceback" not in result.text
    assert not list(tmp_path.iterdir())
