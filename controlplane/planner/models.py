"""`DeploymentPlan`: what `glmctl apply` will run, as a value that prints, diffs and serialises.

One engine group = one Ray Serve deployment whose replicas are model instances. Each replica
holds one placement group with one bundle per node it spans; bundle i hosts node rank i.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
)

from controlplane.engines.registry import SIM

PLAN_API_VERSION = "glmctl/v1"


# `EngineGroupPlan.runtime` of a group the simulator stands in for (the simulator
# profile's name, engines/registry.py).
SIM_RUNTIME = SIM.name


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RankPlan(_Frozen):
    """The process of one node rank (bundle index = node rank)."""

    rank: int
    argv: tuple[str, ...] = Field(
        (), description="Command this rank launches (placeholders filled at start); empty: none."
    )
    env: dict[str, str] = Field(default_factory=dict)
    serves_http: bool = False
    engine_argv: tuple[str, ...] = Field(
        (), description="The real engine's command (what a GPU cluster runs) for reference."
    )


class HealthCheck(_Frozen):
    path: str = "/health"
    period_s: float = 5.0
    timeout_s: float = 5.0
    startup_timeout_s: float = Field(
        ..., description="How long a replica may take to become healthy before apply fails."
    )


class ReplicaBounds(_Frozen):
    initial: int
    min: int
    max: int
    fits: int = Field(..., description="Replicas the inventory can hold (bounds never exceed).")


class AutoscalingPlan(_Frozen):
    """glmctl's policy settings (controlplane/autoscale/policy.py `PolicyConfig`)."""

    min_replicas: int
    max_replicas: int
    initial_replicas: int
    target_ongoing_requests: float
    target_kv_usage: float = 0.8
    max_waiting: int = 5
    ttft_slo_s: float = 2.0
    upscale_delay_s: float
    downscale_delay_s: float
    upscale_cooldown_s: float = 30.0
    downscale_cooldown_s: float = 300.0
    tolerance: float = 0.1
    max_scale_up_rate: float = 2.0
    scale_to_min_s: float = 300.0
    itl_slo_s: float = 0.05

    @model_serializer(mode="wrap")
    def _without_new_defaults(self, handler: SerializerFunctionWrapHandler) -> Any:
        # Plans that leave these at their defaults serialise (digest, render) as before.
        data = handler(self)
        if isinstance(data, dict):
            for name in ("scale_to_min_s", "itl_slo_s"):
                if data.get(name) == type(self).model_fields[name].default:
                    data.pop(name, None)
        return data


class EngineGroupPlan(_Frozen):
    """One Ray Serve deployment of engine replicas."""

    name: str
    engine: str  # sglang | vllm | sim: what the spec asks for
    runtime: str  # what actually runs: the engine itself, or `sim` (GPUs declared, not real)
    flavor: str  # API and metric names served (the engine's, also when simulated)
    engine_version: str
    model: str
    served_model_name: str
    gpu_type: str
    nodes: int
    gpus_per_node: int
    bundles: tuple[dict[str, float], ...]
    strategy: str  # STRICT_PACK (one node) or STRICT_SPREAD (one bundle per node)
    bundle_label_selector: tuple[dict[str, str], ...] = ()
    replica_actor: dict[str, float] = Field(
        default_factory=dict, description="The Serve replica's own resources (in bundle 0)."
    )
    worker_actor: dict[str, float] = Field(
        default_factory=dict, description="Per-rank worker actor resources besides its GPUs."
    )
    ranks: tuple[RankPlan, ...]
    mem_fraction: float | None = None
    replicas: ReplicaBounds
    autoscaling: AutoscalingPlan | None = None
    health: HealthCheck
    max_ongoing_requests: int
    graceful_shutdown_s: float = Field(
        30.0,
        description="Drain timeout: how long a leaving replica's in-flight requests may run"
        " (Serve's graceful shutdown and the engine's own drain are set from it).",
    )
    pd: str = Field(
        "",
        description="Prefill/decode disaggregation: the pool this group is (prefill or"
        " decode); empty for a colocated group.",
    )

    @model_serializer(mode="wrap")
    def _without_pd_when_colocated(self, handler: SerializerFunctionWrapHandler) -> Any:
        # Colocated plans serialise (digest, render) as before PD existed.
        data = handler(self)
        if isinstance(data, dict) and not data.get("pd"):
            data.pop("pd", None)
        return data

    @property
    def simulated(self) -> bool:
        """True when the simulator runs in place of the engine (`runtime` is `sim`)."""
        return self.runtime == SIM_RUNTIME


class ExternalPlan(_Frozen):
    """An external OpenAI-compatible endpoint the router sends to (controlplane/router/
    external.py `ExternalEndpoint`): its key as a reference only, never the value."""

    name: str
    base_url: str
    model: str = Field(description="What clients ask for: the topology's served_model_name.")
    upstream_model: str = Field(description="What the endpoint calls the model.")
    role: str = Field(description="pool: shares traffic; overflow: only when local is full.")
    capacity: int
    health_path: str
    key_env: str = ""
    key_secret: str = ""


class RouterPlan(_Frozen):
    policy: str
    processes: int
    port: int
    host: str | None = Field(
        None, description="Listen address; None: 127.0.0.1 embedded, else the node's address."
    )
    max_queue_per_endpoint: int
    session_header: str
    auth: str = "auto"  # auto | api_keys | none (controlplane/router/auth.py)
    limits: dict[str, Any] = Field(default_factory=dict, description="router.limits of the spec.")
    external: tuple[ExternalPlan, ...] = ()
    overflow_at: int = Field(
        0, description="In-flight requests per engine replica at which overflow starts; 0: none."
    )
    precise: str = Field(
        "", description="policy precise_prefix: the router's settings, JSON (kv_tokens.py)."
    )

    @model_serializer(mode="wrap")
    def _without_unused_external(self, handler: SerializerFunctionWrapHandler) -> Any:
        # Plans without external endpoints serialise (digest, render) as before them.
        data = handler(self)
        if isinstance(data, dict) and not data.get("external") and not data.get("overflow_at"):
            data.pop("external", None)
            data.pop("overflow_at", None)
        if isinstance(data, dict) and not data.get("precise"):
            data.pop("precise", None)  # other policies: plans as before precise_prefix
        return data


class DeploymentPlan(_Frozen):
    """Everything `apply` needs; built by `planner.plan()` (pure)."""

    api_version: str = PLAN_API_VERSION
    name: str
    origin: str
    spec: dict[str, Any] = Field(description="The resolved topology spec, every default filled.")
    groups: tuple[EngineGroupPlan, ...]
    router: RouterPlan
    capacity: dict[str, Any] = Field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    def to_data(self) -> dict[str, Any]:
        """Plain data (JSON/YAML-safe) in a stable key order."""
        return self.model_dump(mode="json")

    def digest(self) -> str:
        """A short hash of what would run (origin and warnings excluded): the Serve version.
        The spec's `performance:` corrections change estimates, not what an engine runs
        (where they change the plan, a replica's drain timeout, that field changes the
        digest); the simulator, though, times its steps by them."""
        data = self.to_data()
        data.pop("origin", None)
        data.pop("warnings", None)
        if not any(group.simulated for group in self.groups):
            data["spec"].pop("performance", None)
        for group in data["groups"]:  # free capacity at plan time, not part of what runs
            group["replicas"].pop("fits", None)
        text = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:10]

    @property
    def group(self) -> EngineGroupPlan:
        """The first engine group: a colocated plan's only one, a PD plan's prefill pool."""
        return self.groups[0]

    @property
    def initial_replicas(self) -> int:
        """Replicas an apply starts: every group's (a PD plan's pools together)."""
        return sum(g.replicas.initial for g in self.groups)
