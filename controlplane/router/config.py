"""Settings of one router deployment (all worker processes share them)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from controlplane.local.secrets import url_password, without_password
from controlplane.router.external import ExternalEndpoint, externals_json
from controlplane.router.limits import RequestLimits
from controlplane.router.policies import Tuning
from controlplane.router.state import StateConfig

if TYPE_CHECKING:
    from controlplane.spec.models import RouterSpec


@dataclass(frozen=True, slots=True)
class RouterConfig:
    redis_url: str
    policy: str = "prefix_affinity"
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    max_queue_per_endpoint: int = 256
    session_header: str = "x-session-id"
    policy_header: str = "x-glmctl-policy"
    scrape_interval: float = 1.0  # health and /metrics probe period per endpoint
    connect_timeout: float = 2.0
    read_timeout: float = 600.0  # longest silence inside one upstream stream
    max_attempts: int = 3  # endpoints tried before the first byte
    metrics_publish_s: float = 2.0
    state: StateConfig = field(default_factory=StateConfig)
    tuning: Tuning = field(default_factory=Tuning)
    auth: str = "auto"  # auto | api_keys | none (router/auth.py)
    limits: RequestLimits = field(default_factory=RequestLimits)
    external: tuple[ExternalEndpoint, ...] = ()  # key references only (router/external.py)
    overflow_at: int = 0  # in-flight per engine at which it is saturated; 0: no overflow
    secrets_dir: str = ""  # where `{secret: name/key}` files are, outside Kubernetes
    models: tuple[str, ...] = ()  # the deployment's served model names (503, not 404, empty)
    precise: str = ""  # precise_prefix settings, JSON (router/kv_tokens.py PreciseSettings)

    @classmethod
    def from_spec(cls, redis_url: str, spec: RouterSpec, namespace: str = "glmctl") -> RouterConfig:
        """The router settings of a topology's `router:` section."""
        return cls(
            redis_url=redis_url,
            policy=spec.policy.value,
            port=spec.port,
            workers=spec.replicas,
            max_queue_per_endpoint=spec.max_queue_per_endpoint,
            session_header=spec.session_header.lower(),
            state=replace(StateConfig(), namespace=namespace),
            auth=spec.auth.value,
            limits=RequestLimits.from_dict(spec.limits.model_dump()),
        )

    def child_env(self) -> dict[str, str]:
        """Environment a router process needs beside `cli_args()`: the Redis password,
        which never goes on a command line (`ps` shows those to every user)."""
        password = url_password(self.redis_url)
        return {"GLMCTL_REDIS_PASSWORD": password} if password else {}

    def cli_args(self) -> list[str]:
        """Arguments of `python -m controlplane.router` that reproduce this config (with
        `child_env()`; the Redis URL goes without its password)."""
        return [
            "--redis-url",
            without_password(self.redis_url),
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
            "--policy",
            self.policy,
            "--max-queue",
            str(self.max_queue_per_endpoint),
            "--session-header",
            self.session_header,
            "--namespace",
            self.state.namespace,
            "--scrape-interval",
            str(self.scrape_interval),
            "--auth",
            self.auth,
            "--limits",
            self.limits.to_json(),
            *self._external_args(),
            *(["--models", ",".join(self.models)] if self.models else []),
            *(["--precise", self.precise] if self.precise else []),
        ]

    def _external_args(self) -> list[str]:
        if not self.external:
            return []
        args = ["--external", externals_json(self.external), "--overflow-at", str(self.overflow_at)]
        return [*args, "--secrets-dir", self.secrets_dir] if self.secrets_dir else args
