"""The only place that reads the environment (pydantic-settings, prefix GLMCTL_)."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from controlplane.errors import UserError

REDIS_SCHEMES = ("redis://", "rediss://", "unix://")  # what redis-py's from_url accepts


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GLMCTL_", extra="ignore")

    ray_address: str | None = Field(
        None,
        validation_alias="RAY_ADDRESS",
        description="Existing Ray cluster; unset: glmctl starts an embedded local one.",
    )
    redis_url: str | None = Field(
        None, description="Redis for router state; unset: glmctl starts a local redis-server."
    )
    redis_password: SecretStr | None = Field(
        None, description="Password of that Redis (for example from a Kubernetes Secret)."
    )
    state_dir: Path = Field(Path.home() / ".glmctl", description="Embedded cluster state.")
    debug: bool = Field(False, description="Show tracebacks for user errors.")
    engine_cache_dir: Path = Field(
        Path.home() / ".cache" / "glmctl", description="Cached engine venvs and tiny models."
    )
    vllm_cache_root: Path | None = Field(
        None,
        validation_alias="VLLM_CACHE_ROOT",
        description="vLLM's compile and kernel cache; unset: a folder beside the engine venvs.",
    )
    prometheus_port: int = Field(
        9090, ge=1, le=65535, description="Embedded Prometheus port (a free one if taken)."
    )
    prometheus_interval_s: float = Field(
        5.0, gt=0, le=300, description="Embedded Prometheus scrape and rule evaluation interval."
    )
    engine_port: int | None = Field(
        None, ge=1, le=65535, description="Fixed engine HTTP port on this node (Kubernetes pods)."
    )
    dist_port: int | None = Field(
        None, ge=1, le=65535, description="Fixed rendezvous port on this node (Kubernetes pods)."
    )
    grafana_url: str | None = Field(None, description="Grafana for `glmctl dashboards push`.")
    grafana_token: str | None = Field(
        None, description="Grafana service-account token for `glmctl dashboards push`."
    )

    def redis_url_with_password(self, url: str | None = None) -> str | None:
        """`url` (default: GLMCTL_REDIS_URL) with GLMCTL_REDIS_PASSWORD in it, if set."""
        from controlplane.local.secrets import url_with_password

        url = url or self.redis_url
        if url is None or self.redis_password is None:
            return url
        return url_with_password(url, self.redis_password.get_secret_value())

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(REDIS_SCHEMES):
            from controlplane.local.secrets import redact_url

            raise ValueError(f"`{redact_url(url)}` does not start with {', '.join(REDIS_SCHEMES)}")
        return url


def _variable(field_or_alias: str) -> str:
    field = Settings.model_fields.get(field_or_alias)
    alias = field.validation_alias if field is not None else field_or_alias
    return str(alias).upper() if isinstance(alias, str) else f"GLMCTL_{field_or_alias.upper()}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings from the environment; a malformed variable is a UserError naming it."""
    try:
        return Settings()
    except ValidationError as exc:
        # The one pydantic-error formatter (spec/messages.py), imported on this error path
        # only: spec never imports settings, and nothing else here needs it.
        from controlplane.local.secrets import redact_url
        from controlplane.spec.messages import pydantic_problem

        def said(err: Any) -> str:
            shown = err.get("input")  # a URL may carry a password: never show it
            err = {**err, "input": redact_url(shown) if isinstance(shown, str) else shown}
            return (
                f"{_variable(str(err['loc'][0]))}: {pydantic_problem(err, root=Settings).message}"
            )

        problems = " ".join(said(err) for err in exc.errors())
        raise UserError(
            f"bad environment variable(s): {problems}",
            fix="correct or unset the variable(s) named above.",
        ) from exc


def environment_value(name: str) -> str | None:
    """The variable `name` of this process's environment, or None when unset or empty.

    For names the user chooses (an external endpoint's `api_key: {env: NAME}`, the
    simulator's `--api-key-env`), which no fixed settings field can declare.
    """
    return os.environ.get(name) or None
