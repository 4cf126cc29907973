"""settings.py: the environment read once; a malformed variable is a UserError naming it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from controlplane.errors import UserError
from controlplane.settings import get_settings


@pytest.fixture(autouse=True)
def fresh_settings() -> Iterator[None]:
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_variables_are_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GLMCTL_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("GLMCTL_REDIS_URL", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("VLLM_CACHE_ROOT", str(tmp_path / "vllm"))
    settings = get_settings()
    assert settings.state_dir == tmp_path and settings.redis_url == "redis://127.0.0.1:6379/0"
    assert settings.vllm_cache_root == tmp_path / "vllm"


@pytest.mark.parametrize(
    ("variable", "value"), [("GLMCTL_DEBUG", "maybe"), ("GLMCTL_REDIS_URL", "127.0.0.1:6379")]
)
def test_a_malformed_variable_names_itself(
    variable: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(UserError, match=variable) as caught:
        get_settings()
    assert caught.value.fix


def test_a_malformed_redis_url_never_shows_its_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLMCTL_REDIS_URL", "http://:hunter2@127.0.0.1:6379/0")
    with pytest.raises(UserError, match="GLMCTL_REDIS_URL") as caught:
        get_settings()
    shown = str(caught.value)
    assert "hunter2" not in shown and "redis://" in shown
    assert "Input should be" not in shown and "Value error" not in shown  # spec/messages wording
