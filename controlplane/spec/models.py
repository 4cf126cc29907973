"""Topology spec: the YAML a user writes, as pydantic v2 models.

Every model forbids unknown keys. Fields left out (None) are filled in by
`controlplane.spec.resolve` with the published recommended settings for the model, GPU
and engine; validation here is structural and pure (no files, no network).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import (
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_core import PydanticCustomError

from controlplane.catalog.models import Precision
from controlplane.spec.disaggregation import DisaggregationSpec, bind_sections
from controlplane.spec.external import ExternalEndpointSpec
from controlplane.spec.fields import (  # the spec's field types
    NAME_PATTERN,
    Duration,
    NonNegativeInt,
    PositiveInt,
    StrictModel,
    drop_if,
)
from controlplane.spec.kubernetes import KubernetesSpec
from controlplane.spec.performance import PerformanceSpec
from controlplane.spec.router import RouterSpec


class EngineKind(StrEnum):
    SGLANG = "sglang"
    VLLM = "vllm"
    SIM = "sim"
    TRTLLM = "trtllm"


class TrtllmQuant(StrEnum):
    """TensorRT-LLM's int8 / int4 method (catalog/trtllm_matrix.py)."""

    WEIGHT_ONLY = "weight_only"  # convert_checkpoint.py --use_weight_only (int8 or int4)
    SMOOTHQUANT = "smoothquant"  # convert_checkpoint.py --smoothquant (int8 W8A8)
    AWQ = "awq"  # quantization/quantize.py --qformat int4_awq (int4)


class KvCacheDtype(StrEnum):
    AUTO = "auto"  # FP8 when the weights are FP8 (the model card's condition 4), else BF16
    BF16 = "bf16"
    FP16 = "fp16"
    FP8 = "fp8"


class SpeculativeAlgorithm(StrEnum):
    NONE = "none"
    MTP = "mtp"  # the checkpoint's next-n layer as draft (vLLM `method: mtp`)
    EAGLE = "eagle"  # SGLang runs the same MTP layer through its EAGLE worker


class GpuSpec(StrictModel):
    """The GPUs of one replica (one model instance)."""

    type: str = Field(description="GPU type from `glmctl gpus`: H100, H200, B200, A100-80G, ...")
    count: PositiveInt = Field(
        description="GPUs one replica spans, all its ranks together.", examples=[4]
    )
    per_node: PositiveInt = Field(8, description="GPUs a node of the cluster holds.")
    nodes: PositiveInt | None = Field(
        None, description="Nodes one replica spans; default: as few as hold `count`."
    )


class ParallelismSpec(StrictModel):
    """How one replica splits the model. tensor x pipeline x data = gpus.count."""

    tensor: PositiveInt | None = Field(
        None, description="Tensor-parallel degree; default: all GPUs of the replica.", examples=[4]
    )
    pipeline: PositiveInt = Field(
        1, description="Pipeline stages the layers are split into.", examples=[2]
    )
    expert: PositiveInt | None = Field(
        None,
        description="Expert-parallel degree for MoE layers; default 1, or the MoE span when"
        " block-FP8 experts cannot be split by tensor parallelism.",
    )
    data: PositiveInt = Field(1, description="Data-parallel ranks inside one replica.")
    dp_attention: bool = Field(
        False,
        description="Data-parallel attention (SGLang): attention over `data` ranks,"
        " MoE over all GPUs of the replica.",
    )


class SpeculativeSpec(StrictModel):
    """Speculative decoding with the checkpoint's MTP layer as draft."""

    algorithm: SpeculativeAlgorithm | None = Field(
        None, description="none, mtp or eagle; default: eagle on SGLang, mtp on vLLM."
    )
    num_steps: PositiveInt | None = Field(None, description="Draft steps (model card: 3).")
    eagle_topk: PositiveInt | None = Field(None, description="Draft branching (model card: 1).")
    num_draft_tokens: PositiveInt | None = Field(
        None, description="Tokens verified per step (model card: 4)."
    )
    acceptance_length: float | None = Field(
        None,
        gt=1.0,
        description="Mean tokens emitted per verify step, for estimates and the"
        " simulator; default from the performance model.",
    )


class EngineSpec(StrictModel):
    """The serving engine and its extra arguments."""

    kind: EngineKind = Field(EngineKind.SGLANG, description="sglang, vllm, trtllm or sim.")
    version: str | None = Field(None, description="Engine version the command line targets.")
    mem_fraction: float | None = Field(
        None,
        gt=0.0,
        lt=1.0,
        description="SGLang --mem-fraction-static / vLLM --gpu-memory-utilization;"
        " default: the engine's own automatic rule, computed by the capacity model.",
    )
    chunked_prefill: PositiveInt | None = Field(None, description="Chunked-prefill size (tokens).")
    cpu_offload_gb: float = Field(0.0, ge=0.0, description="vLLM --cpu-offload-gb per GPU.")
    trtllm_quant: TrtllmQuant | None = Field(
        None,
        description="TensorRT-LLM's method for precision int8 / int4: weight_only (default),"
        " smoothquant (int8) or awq (int4), where its support matrix allows.",
    )
    args: dict[str, Any] = Field(
        default_factory=dict, description="Extra engine flags, e.g. {enable-torch-compile: true}."
    )
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment variables.")
    tool_parser: str | None = Field(
        None, description="Tool-call parser; default: the model's (glm45 for GLM-4.5)."
    )
    reasoning_parser: str | None = Field(
        None, description="Reasoning parser; default: the model's (glm45 for GLM-4.5)."
    )

    @model_validator(mode="before")
    @classmethod
    def _bare_kind(cls, value: Any) -> Any:
        # `engine: vllm` is shorthand for `engine: {kind: vllm}`.
        return {"kind": value} if isinstance(value, str) else value


class ReplicaSpec(StrictModel):
    """How many replicas run (each one a full copy of the model on `gpus.count` GPUs)."""

    min: NonNegativeInt = Field(1, description="Fewest replicas (0 allows scale to zero).")
    max: PositiveInt | None = Field(None, description="Most replicas; default: `min`.")
    initial: NonNegativeInt | None = Field(None, description="Replicas at apply; default: `min`.")
    drain_timeout: Duration | None = Field(
        None,
        description="Longest wait for in-flight requests when a replica leaves (scale-down,"
        " update, delete); default: the longest output at the modelled decode speed,"
        " capped at 300 s.",
    )

    @model_validator(mode="before")
    @classmethod
    def _bare_count(cls, value: Any) -> Any:
        # `replicas: 2` is shorthand for a fixed replica count.
        if isinstance(value, int) and not isinstance(value, bool):
            return {"min": value, "max": max(value, 1)}
        return value


SCALE_TO_MIN_S = 300.0  # AutoscalingSpec.scale_to_min_s default (reasons in its description)


class AutoscalingSpec(StrictModel):
    """Scale replicas on engine signals between replicas.min and replicas.max.

    glmctl's own policy (controlplane/autoscale/) reads what the engines and routers report
    (waiting requests, KV-cache usage, in-flight requests, TTFT against `slo.ttft_p99`).
    Defaults come from published autoscalers (shared/reference/operations-anchors.md, A).
    """

    target_ongoing_requests: float = Field(
        8.0, gt=0, description="Running + waiting requests per replica to aim for."
    )
    target_kv_usage: float = Field(
        0.8,
        gt=0,
        le=1.0,
        description="KV-cache usage above which a replica counts as full (llm-d WVA: 0.80).",
    )
    max_waiting: NonNegativeInt = Field(
        5,
        description="Waiting requests per replica that trigger a scale-up"
        " (llm-d queueLengthThreshold and production-stack KEDA: 5).",
    )
    upscale_delay_s: float = Field(
        5.0,
        ge=0,
        description="Stabilisation: seconds a scale-up signal must last before acting"
        " (NVIDIA Dynamo's load adjustment interval: 5 s).",
    )
    downscale_delay_s: float = Field(
        180.0,
        ge=0,
        description="Stabilisation: seconds a scale-down signal must last before acting"
        " (AIBrix observe window: 180 s).",
    )
    upscale_cooldown_s: float = Field(
        30.0,
        ge=0,
        description="Seconds after a scale-up before the next scale-up (the new replica"
        " must get a chance to take load first).",
    )
    downscale_cooldown_s: float = Field(
        300.0,
        ge=0,
        description="Seconds after any scaling before a scale-down (AIBrix: 300 s).",
    )
    tolerance: float = Field(
        0.1,
        ge=0,
        lt=1.0,
        description="Hysteresis band: scale down only when load after removing a replica"
        " stays below (1 - tolerance) of every target (AIBrix tolerance: 0.1).",
    )
    max_scale_up_rate: float = Field(
        2.0,
        ge=1.0,
        description="At most this factor more replicas per scale-up (AIBrix: 2).",
    )
    scale_to_min_s: float = Field(
        SCALE_TO_MIN_S,
        gt=0,
        description="Once the load has allowed a scale-down for this long without a break,"
        " go straight to the replicas it needs (the minimum when idle), cooldowns aside;"
        " at least `downscale_delay_s`. 300 s: the Kubernetes HPA's (and so KEDA's)"
        " default scale-down window, which also returns to the minimum in one step;"
        " Ray Serve waits 600 s, NVIDIA Dynamo's SLA planner re-sizes every 180 s.",
    )

    @model_serializer(mode="wrap")
    def _without_default_scale_to_min(self, handler: SerializerFunctionWrapHandler) -> Any:
        # Specs that keep the default serialise (plan, digest, render) as before it existed.
        return drop_if(handler(self), "scale_to_min_s", SCALE_TO_MIN_S)


class SloSpec(StrictModel):
    """Service-level objectives: what load tests judge and SLO alerts burn against.

    Defaults are for interactive chat: Ray Serve LLM's TTFT autoscaling target (2 s) and
    NVIDIA Dynamo's SLA planner default inter-token latency (50 ms).
    """

    ttft_p99: Duration = Field(2.0, description="Time to first token, 99th percentile (s).")
    itl_p99: Duration = Field(0.05, description="Inter-token latency, 99th percentile (s).")
    availability: float = Field(
        0.999, gt=0.0, lt=1.0, description="Share of requests that must succeed (0-1)."
    )


class SimulationSpec(StrictModel):
    """Settings of the simulated engine (used when no GPU is present, or engine: sim)."""

    flavor: EngineKind | None = Field(
        None, description="Which engine's API and metric names to mimic (default: engine.kind)."
    )
    time_scale: float = Field(1.0, gt=0, description="Simulated seconds per wall second.")
    seed: int = Field(0, description="Seed for token streams and acceptance draws.")
    tokenizer: str | None = Field(
        None,
        description="A Hugging Face tokenizer.json (or its folder) the simulator counts prompt"
        " and output tokens with, so they agree with benchmark clients; needs the `tokenizers`"
        " package (glmctl[tokenizer]). Default: one token per whitespace-separated word.",
        examples=["~/.cache/glmctl/models/glm-4.5-tiny/tokenizer.json"],
    )


class ClusterSpec(StrictModel):
    """The embedded local cluster glmctl starts when no address is given."""

    nodes: PositiveInt | None = Field(
        None, description="Simulated nodes; default: enough for replicas.max replicas."
    )


bind_sections(globals())  # a PD pool reuses the sections above
_K8S_DEFAULT = KubernetesSpec().model_dump()


class TopologySpec(StrictModel):
    """One deployment of one model: what to serve, on what, split how."""

    name: str | None = Field(
        None,
        pattern=NAME_PATTERN,
        description="Deployment name; default: the file name.",
        examples=["glm45-fp8"],
    )
    model: str | None = Field(
        None, description="Catalog model (`glmctl models`).", examples=["glm-4.5", "glm-4.5-air"]
    )
    model_config_path: str | None = Field(
        None,
        alias="model_config",
        description="Local Hugging Face config.json (or its folder) instead of `model`.",
        examples=["./models/GLM-4.5-Air/config.json"],
    )
    precision: Precision | None = Field(
        None,
        description="Weights: bf16, fp16, fp8; int8 / int4 (weight-only) for the smaller GLM"
        " models; default: the checkpoint's own format.",
        examples=["fp8"],
    )
    gpus: GpuSpec = Field(
        description="GPU type and count of one replica, e.g. {type: H200, count: 4} or 4xH200.",
        examples=[{"type": "H200", "count": 4}, "4xH200"],
    )
    parallelism: ParallelismSpec = Field(
        default_factory=ParallelismSpec,
        description="How one replica splits the model (tensor, pipeline, expert, data).",
        examples=[{"tensor": 8}],
    )
    context_length: PositiveInt | None = Field(
        None,
        description="Longest prompt + output in tokens (default: the model's maximum).",
        examples=[32768],
    )
    max_num_seqs: PositiveInt = Field(8, description="Concurrent sequences per replica.")
    kv_cache_dtype: KvCacheDtype = Field(
        KvCacheDtype.AUTO, description="KV-cache precision; auto: fp8 with FP8 weights, else bf16."
    )
    speculative: SpeculativeSpec = Field(
        default_factory=SpeculativeSpec,
        description="Speculative decoding with the MTP layer (default: the model card's 3/1/4).",
        examples=[{"algorithm": "eagle", "num_steps": 3}],
    )
    engine: EngineSpec = Field(
        default_factory=EngineSpec,
        description="Serving engine and its flags, e.g. {kind: vllm} or just `vllm`.",
        examples=[{"kind": "sglang"}, "vllm"],
    )
    served_model_name: str | None = Field(
        None, description="Name clients send as `model` (default: the catalog name)."
    )
    replicas: ReplicaSpec = Field(
        default_factory=ReplicaSpec,
        description="Replica count: a number, or {min, max} for autoscaling.",
        examples=[{"min": 1, "max": 4}, 2],
    )
    autoscaling: AutoscalingSpec | None = Field(
        None,
        description="Autoscaling targets; omit for a fixed replica count.",
        examples=[{"target_ongoing_requests": 8}],
    )
    router: RouterSpec = Field(
        default_factory=RouterSpec,
        description="The router in front of the replicas.",
        examples=[{"policy": "prefix_affinity"}],
    )
    slo: SloSpec = Field(
        default_factory=SloSpec,
        description="Service-level objectives for load-test verdicts and SLO alerts.",
        examples=[{"ttft_p99": "2s", "itl_p99": "50ms"}],
    )
    simulation: SimulationSpec = Field(
        default_factory=SimulationSpec,
        description="Simulated-engine settings (engine: sim, or no GPU).",
        examples=[{"time_scale": 10}],
    )
    performance: PerformanceSpec | None = Field(
        None,
        description="Corrections measured on this deployment's GPUs (`glmctl calibrate`);"
        " omit to use the model as fitted to published runs.",
        examples=[{"decode_scale": 1.14, "prefill_scale": 1.3}],
    )
    cluster: ClusterSpec = Field(
        default_factory=ClusterSpec,
        description="The embedded local cluster.",
        examples=[{"nodes": 2}],
    )
    external: list[ExternalEndpointSpec] = Field(
        default_factory=list,
        description="OpenAI-compatible endpoints outside the cluster (a hosted GLM API, an"
        " XInference server) the router sends requests to beside the local replicas.",
        examples=[
            [
                {
                    "name": "zhipu",
                    "base_url": "https://open.bigmodel.cn/api/paas/v4",
                    "model": "glm-4.5",
                    "api_key": {"env": "ZHIPU_API_KEY"},
                }
            ]
        ],
    )
    disaggregation: DisaggregationSpec | None = Field(
        None, description="Prefill and decode pools and their KV transfer."
    )
    kubernetes: KubernetesSpec = Field(
        default_factory=KubernetesSpec,
        description="KubeRay render options: images, model staging, API keys Secret, RDMA.",
        examples=[{"models": {"storage": "host_path"}, "rdma": {"resource": "rdma/ib"}}],
    )

    model_config = ConfigDict(extra="forbid", populate_by_name=True, validate_assignment=True)

    @model_serializer(mode="wrap")
    def _without_empty_external(self, handler: SerializerFunctionWrapHandler) -> Any:
        # Specs without external endpoints, a kubernetes section, PD or a performance
        # correction serialise (plan,
        # digest, render) as before those existed.
        data = drop_if(handler(self), "external", [])
        data = drop_if(drop_if(data, "kubernetes", _K8S_DEFAULT), "disaggregation", None)
        return drop_if(data, "performance", None)

    @field_validator("gpus", mode="before")
    @classmethod
    def _gpu_shorthand(cls, value: Any) -> Any:
        # `gpus: 4xH200` is shorthand for {count: 4, type: H200}.
        if isinstance(value, str) and "x" in value.lower():
            count, _, gpu_type = value.lower().partition("x")
            if count.strip().isdigit():
                return {"count": int(count), "type": gpu_type.strip()}
        return value

    @model_validator(mode="after")
    def _one_model_source(self) -> TopologySpec:
        if self.model is None and self.model_config_path is None:
            raise PydanticCustomError(
                "model_source_missing", "give `model` (a catalog name) or `model_config`"
            )
        if self.model is not None and self.model_config_path is not None:
            raise PydanticCustomError(
                "model_source_both", "give only one of `model` and `model_config`"
            )
        return self
