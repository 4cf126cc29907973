"""The registered engine profiles, and the lookups everything outside engines/ uses.

To add an engine: write its adapter (a pure command builder beside `sglang.py`), add its
`EngineKind`, and register one `EngineProfile` here. To add a version of an engine: change
its profile (`versions`, and what the builder does for it).
"""

from __future__ import annotations

from controlplane.capacity import engine_rules, timing_rules
from controlplane.catalog import formats
from controlplane.engines import recipes, sglang, simulator, trtllm, vllm
from controlplane.engines.profile import EngineProfile, Shutdown
from controlplane.router import kv_hash
from controlplane.spec import engine_checks, pd_engines
from controlplane.spec.models import EngineKind, EngineSpec

SGLANG = EngineProfile(
    kind=EngineKind.SGLANG,
    spec_rules=engine_checks.SGLANG_SPEC,
    format_rule=formats.SGLANG_FORMATS,
    pd_rule=pd_engines.SGLANG_PD,
    label="SGLang",
    target_version=sglang.TARGET_VERSION,
    versions=(sglang.TARGET_VERSION,),
    build=sglang.build_command,
    server_module=sglang.FLAGS.module,
    venv=recipes.sglang_parser_venv,
    memory_rule=engine_rules.SGLANG_MEMORY,
    timing_rule=timing_rules.SGLANG_TIMING,
    metrics="sglang",
    official_image="lmsysorg/sglang:v{version}",
    kv_hash_scheme=kv_hash.SGLANG_SHA256,
    shutdown=Shutdown(
        drains_itself=True,
        note="sglang.py: tokenizer manager `sigterm_watchdog`, no bound of its own",
    ),
)
VLLM = EngineProfile(
    kind=EngineKind.VLLM,
    spec_rules=engine_checks.VLLM_SPEC,
    format_rule=formats.VLLM_FORMATS,
    pd_rule=pd_engines.VLLM_PD,
    label="vLLM",
    target_version=vllm.TARGET_VERSION,
    versions=(vllm.TARGET_VERSION,),
    build=vllm.build_command,
    server_module=vllm.FLAGS.module,
    venv=recipes.vllm_cpu_venv,
    memory_rule=engine_rules.VLLM_MEMORY,
    timing_rule=timing_rules.VLLM_TIMING,
    metrics="vllm",
    official_image="vllm/vllm-openai:v{version}",
    kv_hash_scheme=kv_hash.VLLM_SHA256_CBOR,  # with --prefix-caching-hash-algo sha256_cbor
    shutdown=Shutdown(
        drains_itself=True,
        bound_flag="--shutdown-timeout",
        note="vllm.py: engine/arg_utils.py `--shutdown-timeout` (0 = abort)",
    ),
)
TRTLLM = EngineProfile(
    kind=EngineKind.TRTLLM,
    spec_rules=engine_checks.TRTLLM_SPEC,
    format_rule=formats.TRTLLM_FORMATS,
    pd_rule=pd_engines.TRTLLM_PD,
    label="TensorRT-LLM",
    target_version=trtllm.TARGET_VERSION,
    versions=(trtllm.TARGET_VERSION,),
    build=trtllm.build_command,
    memory_rule=engine_rules.TRTLLM_MEMORY,
    timing_rule=timing_rules.TRTLLM_TIMING,
    metrics="trtllm",
    official_image="nvcr.io/nvidia/tensorrt-llm/release:{version}",
    metrics_long_poll=True,
    # Its /metrics is JSON iteration stats that a read drains (router/engine_metrics.py):
    # Prometheus scrapes /health instead, for `up` (the replica-down alert) and no series.
    prometheus_path="/health",
    planned_flavor_is_simulated=True,
    shutdown=Shutdown(drains_itself=False, note="trtllm-serve: SIGTERM ends the server"),
)
SIM = EngineProfile(
    kind=EngineKind.SIM,
    spec_rules=engine_checks.SIM_SPEC,
    format_rule=formats.SIM_FORMATS,
    label="the simulator",
    target_version="sim",
    versions=("sim",),
    build=simulator.sim_command,
    server_module=simulator.SIM_MODULE,
    planned_flavor_is_simulated=True,
    always_simulated=True,
    shutdown=Shutdown(drains_itself=False, note="sim/server.py: SIGTERM stops it"),
)
PROFILES: tuple[EngineProfile, ...] = (SGLANG, VLLM, TRTLLM, SIM)
_BY_NAME = {profile.name: profile for profile in PROFILES}
# The engine a spec gets when it names none (spec/models.py `EngineSpec.kind`).
DEFAULT: EngineProfile = _BY_NAME[EngineSpec().kind.value]


def profile_for(kind: EngineKind | str) -> EngineProfile:
    """The profile of an engine kind (or its name); KeyError for an unknown name."""
    return _BY_NAME[EngineKind(kind).value]


def find_profile(name: str) -> EngineProfile | None:
    """The profile named `name` (a plan's `engine` or `flavor` string), or None."""
    return _BY_NAME.get(name)


def metrics_flavor(name: str) -> str:
    """The router's metric parser for an engine group serving `name`'s API: its own when the
    engine has one, else the default engine's (the simulator serves a flavour's names)."""
    profile = find_profile(name)
    if profile is not None and profile.metrics is not None:
        return profile.metrics
    return DEFAULT.metrics or DEFAULT.name


def simulator_flavors() -> tuple[str, ...]:
    """The engines the simulator can mimic: those with metric names of their own."""
    return tuple(p.name for p in PROFILES if p.metrics is not None)


def simulated_hash_scheme(flavor: EngineKind | str | None) -> str:
    """The router/kv_hash.py scheme the simulator publishes when it mimics `flavor` (None:
    its default flavour): that engine's, else vLLM's (engines without one of their own)."""
    kind = EngineKind(flavor or simulator.DEFAULT_FLAVOR)
    kind = simulator.DEFAULT_FLAVOR if kind is EngineKind.SIM else kind
    return profile_for(kind).kv_hash_scheme or kv_hash.VLLM_SHA256_CBOR
