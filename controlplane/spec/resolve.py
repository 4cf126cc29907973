"""Resolve a parsed spec against the catalog: fill defaults, check fields against each other.

`resolve(spec, model=None)` is pure. It returns a `Topology` whose spec has every default
filled in (what `glmctl show` prints) or raises SpecError listing every problem. A spec
that names `model_config` needs the config loaded first (`load_topology` does that: the
only I/O, kept out of validation).
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

from controlplane.catalog import (
    MODELS,
    GpuType,
    ModelEntry,
    Precision,
    checkpoint_for,
    family_precisions,
    find_gpu,
    find_model,
    gpu_names,
)
from controlplane.catalog.formats import (
    TRANSFORMERS,
    Refusal,
    engine_support,
    how_served,
    quant_launch,
)
from controlplane.catalog.hf_config import load_model_config
from controlplane.errors import SpecError, UserError
from controlplane.spec.engine_checks import SPEC_RULES, spec_rules
from controlplane.spec.layout import moe_split_fails_fp8, resolve_layout
from controlplane.spec.loader import LineIndex, Problem, format_problem, load_spec, suggest
from controlplane.spec.models import (
    AutoscalingSpec,
    KvCacheDtype,
    SpeculativeAlgorithm,
    TopologySpec,
)
from controlplane.spec.topology import Topology

__all__ = ["Topology", "load_topology", "moe_split_fails_fp8", "resolve"]

# Engine versions the command builders target, by engine (spec/engine_checks.py).
DEFAULT_ENGINE_VERSION = {rules.engine: rules.default_version for rules in SPEC_RULES}


def resolve(
    spec: TopologySpec,
    model: ModelEntry | None = None,
    origin: str = "<spec>",
    lines: LineIndex | None = None,
) -> Topology:
    """Fill defaults and check the spec against its model and GPU; raises SpecError."""
    problems: list[Problem] = []
    warnings: list[str] = []
    entry = model or _catalog_model(spec, problems)
    gpu = find_gpu(spec.gpus.type)
    if gpu is None:
        guess = suggest(spec.gpus.type.upper(), gpu_names())
        hint = f" Did you mean `{guess}`?" if guess else ""
        problems.append(
            Problem(
                ("gpus", "type"),
                f"unknown GPU type `{spec.gpus.type}`.{hint}",
                f"use one of {', '.join(gpu_names())} (`glmctl gpus`).",
            )
        )
    if entry is None or gpu is None:
        _raise(problems, origin, lines)
    assert entry is not None and gpu is not None
    precision = spec.precision or entry.weight_format
    checkpoint = checkpoint_for(entry, precision)
    if checkpoint is None:
        problems.append(_no_checkpoint(entry, precision))
        _raise(problems, origin, lines)
    assert checkpoint is not None
    checkpoint = _engine_checkpoint(spec, checkpoint, precision, problems, warnings)
    if checkpoint is None:
        _raise(problems, origin, lines)
    assert checkpoint is not None
    resolved = spec.model_copy(deep=True)
    resolved.precision = precision
    if spec.model is not None:
        resolved.model = checkpoint.name
    resolved.gpus.type = gpu.name
    resolve_layout(resolved, checkpoint, problems, warnings)
    _resolve_serving(resolved, checkpoint, gpu, problems, warnings)
    check = spec_rules(resolved.engine.kind).check
    if check is not None and not problems:
        check(resolved, checkpoint, gpu, problems)
    if problems:
        _raise(problems, origin, lines)
    return Topology(resolved, checkpoint, gpu, origin, tuple(warnings))


def _no_checkpoint(entry: ModelEntry, precision: Precision) -> Problem:
    """`precision: int4` on GLM-4.5, `fp8` on a Base model: say what exists instead."""
    offered = family_precisions(entry)
    fix = "set " + " or ".join(f"`precision: {p.value}`" for p in offered)
    if precision in (Precision.INT8, Precision.INT4):
        small = ", ".join(m.name for m in MODELS if precision in m.precisions)
        reason = (
            f"{precision.value} weight-only quantisation is offered for the smaller GLM"
            f" models only ({small})"
        )
    else:
        reason = f"no {entry.display_name} checkpoint stores {precision.value} weights"
        chat = next((m for m in MODELS if m.family == entry.family and m.chat), None)
        if not entry.chat and chat is not None and checkpoint_for(chat, precision):
            fix += f", or serve the chat model `model: {chat.name}` which has one"
    return Problem(
        ("precision",),
        f"{entry.display_name} cannot be served at {precision.value}: {reason}.",
        f"{fix} (`glmctl models` lists each model's precisions).",
    )


def _engine_checkpoint(
    spec: TopologySpec,
    checkpoint: ModelEntry,
    precision: Precision,
    problems: list[Problem],
    warnings: list[str],
) -> ModelEntry | None:
    """`checkpoint` as the engine loads it at `precision` (its arch carrying the scheme the
    capacity model must size), or None with a Problem when the engine cannot serve it."""
    engine = spec.engine.kind.value
    refused = engine_support(checkpoint, engine)
    if refused is not None:
        problems.append(Problem(("engine",), refused.reason + ".", refused.fix + "."))
        return None
    if how_served(checkpoint, engine) == TRANSFORMERS:
        warnings.append(
            f"{engine} has no native `{checkpoint.architecture}` ({checkpoint.display_name}):"
            " it runs through the engine's Transformers backend (some engine features may be"
            " unavailable)."
        )
    method = spec.engine.trtllm_quant
    if method is not None and not spec_rules(spec.engine.kind).takes_trtllm_quant:
        problems.append(
            Problem(
                ("engine", "trtllm_quant"),
                f"`trtllm_quant` chooses TensorRT-LLM's int8/int4 method; engine is {engine}.",
                "remove `engine.trtllm_quant`, or set `engine.kind: trtllm`.",
            )
        )
        return None
    answer = quant_launch(checkpoint, precision, engine, method.value if method else None)
    if isinstance(answer, Refusal):
        problems.append(Problem(("precision",), answer.reason + ".", answer.fix + "."))
        return None
    if answer.scheme is None or answer.scheme == checkpoint.arch.quant:
        return checkpoint
    return replace(checkpoint, arch=replace(checkpoint.arch, quant=answer.scheme))


def _catalog_model(spec: TopologySpec, problems: list[Problem]) -> ModelEntry | None:
    if spec.model is None:
        problems.append(
            Problem(
                ("model_config",),
                "the model config has not been loaded.",
                "load the spec with `load_topology` (reads model_config).",
            )
        )
        return None
    entry = find_model(spec.model)
    if entry is None:
        from controlplane.catalog import model_names

        guess = suggest(spec.model.lower(), model_names())
        hint = f" Did you mean `{guess}`?" if guess else ""
        problems.append(
            Problem(
                ("model",),
                f"unknown model `{spec.model}`.{hint}",
                f"use a catalog name ({', '.join(model_names())}) or"
                " `model_config: path/to/config.json`.",
            )
        )
    return entry


def _resolve_serving(
    s: TopologySpec, entry: ModelEntry, gpu: GpuType, problems: list[Problem], warnings: list[str]
) -> None:
    arch = entry.arch
    if s.context_length is None:
        s.context_length = arch.max_context
    elif s.context_length > arch.max_context:
        problems.append(
            Problem(
                ("context_length",),
                f"context_length {s.context_length} exceeds {entry.display_name}'s maximum of"
                f" {arch.max_context} tokens.",
                f"set `context_length` to at most {arch.max_context}.",
            )
        )
    if s.kv_cache_dtype is KvCacheDtype.AUTO:
        s.kv_cache_dtype = (
            KvCacheDtype.FP8
            if s.precision is Precision.FP8
            else (KvCacheDtype.FP16 if s.precision is Precision.FP16 else KvCacheDtype.BF16)
        )
    needs_fp8 = s.precision is Precision.FP8 or s.kv_cache_dtype is KvCacheDtype.FP8
    if needs_fp8 and not gpu.supports_fp8:
        warnings.append(
            f"{gpu.display_name} has no FP8 tensor cores: FP8 weights or KV run"
            " through slower weight-only kernels (the model card asks for"
            " FP8-native devices)."
        )
    _resolve_speculative(s, entry, problems)
    if s.served_model_name is None:
        s.served_model_name = entry.name
    engine = s.engine
    engine.tool_parser = engine.tool_parser or entry.tool_parser
    engine.reasoning_parser = engine.reasoning_parser or entry.reasoning_parser
    rules = spec_rules(engine.kind)
    if engine.version is None:
        engine.version = rules.default_version
    if s.simulation.flavor is None:
        s.simulation.flavor = rules.mimics or engine.kind
    _resolve_replicas(s, problems)
    _resolve_external(s, problems)


def _resolve_external(s: TopologySpec, problems: list[Problem]) -> None:
    """Unique endpoint names, overflow targets that exist, a saturation point the router's
    queue limit leaves room for (default: max_num_seqs)."""
    names = [e.name for e in s.external]
    for index, name in enumerate(names):
        if name in names[:index]:
            problems.append(
                Problem(
                    ("external", index, "name"),
                    f"two external endpoints are called `{name}`.",
                    "give each entry of `external` its own `name`.",
                )
            )
    overflow = s.router.overflow
    if overflow is None:
        return
    for index, target in enumerate(overflow.to):
        if target not in names:
            guess = suggest(target, names)
            hint = f" Did you mean `{guess}`?" if guess else ""
            known = ", ".join(f"`{n}`" for n in names) or "none"
            problems.append(
                Problem(
                    ("router", "overflow", "to", index),
                    f"router.overflow names `{target}`, which is not an external endpoint"
                    f" (defined: {known}).{hint}",
                    "add it under `external:` ({name, base_url, model, api_key}) or name one"
                    " that is defined.",
                )
            )
    if overflow.saturated_at is None:
        overflow.saturated_at = min(s.max_num_seqs, s.router.max_queue_per_endpoint)
    elif overflow.saturated_at > s.router.max_queue_per_endpoint:
        problems.append(
            Problem(
                ("router", "overflow", "saturated_at"),
                f"router.overflow.saturated_at {overflow.saturated_at} is above"
                f" router.max_queue_per_endpoint {s.router.max_queue_per_endpoint}: a local"
                " replica would answer 429 before it counts as saturated.",
                f"set `saturated_at` to at most {s.router.max_queue_per_endpoint}.",
            )
        )


def _resolve_speculative(s: TopologySpec, entry: ModelEntry, problems: list[Problem]) -> None:
    spec = s.speculative
    style = spec_rules(s.engine.kind).speculative
    if spec.algorithm is None:
        spec.algorithm = style.algorithm if entry.has_mtp else SpeculativeAlgorithm.NONE
    if spec.algorithm is SpeculativeAlgorithm.NONE:
        return
    if not entry.has_mtp:
        problems.append(
            Problem(
                ("speculative", "algorithm"),
                f"{entry.display_name} ships no MTP layer to draft with.",
                "set `speculative.algorithm: none`.",
            )
        )
        return
    spec.num_steps = spec.num_steps or style.num_steps
    spec.eagle_topk = spec.eagle_topk or style.eagle_topk
    spec.num_draft_tokens = spec.num_draft_tokens or style.default_draft(
        spec.num_steps, spec.eagle_topk
    )
    limit = style.draft_limit(spec.num_steps, spec.eagle_topk)
    if spec.num_draft_tokens > limit:
        problems.append(
            Problem(
                ("speculative", "num_draft_tokens"),
                f"num_draft_tokens {spec.num_draft_tokens} exceeds what {spec.num_steps} steps x"
                f" top-{spec.eagle_topk} can draft ({limit}).",
                f"set `num_draft_tokens` to at most {limit} (the model card uses 3 / 1 / 4).",
            )
        )


def _check_scale_to_min(auto: AutoscalingSpec | None, problems: list[Problem]) -> None:
    # The deadline that returns to the minimum may not cut the stabilisation window short.
    if auto is not None and auto.scale_to_min_s < auto.downscale_delay_s:
        problems.append(
            Problem(
                ("autoscaling", "scale_to_min_s"),
                f"scale_to_min_s {auto.scale_to_min_s:g} is shorter than downscale_delay_s"
                f" {auto.downscale_delay_s:g}: the load must stay low for the whole"
                " stabilisation window before any scale-down.",
                f"set `scale_to_min_s` to at least {auto.downscale_delay_s:g}, or lower"
                " `downscale_delay_s`.",
            )
        )


def _resolve_replicas(s: TopologySpec, problems: list[Problem]) -> None:
    r = s.replicas
    if r.max is None:
        r.max = max(r.min, 1)
    if r.min > r.max:
        problems.append(
            Problem(
                ("replicas",),
                f"replicas.min {r.min} exceeds replicas.max {r.max}.",
                "make `min` at most `max`.",
            )
        )
    if r.initial is None:
        r.initial = max(r.min, 1) if r.max else r.min
    elif not r.min <= r.initial <= r.max:
        problems.append(
            Problem(
                ("replicas", "initial"),
                f"replicas.initial {r.initial} is outside {r.min}..{r.max}.",
                "set `initial` between `min` and `max`.",
            )
        )
    if s.autoscaling is None and r.max > r.min:
        s.autoscaling = AutoscalingSpec()
    _check_scale_to_min(s.autoscaling, problems)
    if s.cluster.nodes is None and s.disaggregation is None:  # PD: both pools (planner/pd_plan.py)
        g = s.gpus
        assert g.nodes is not None
        if g.nodes == 1:
            per_node = max(1, g.per_node // g.count)
            s.cluster.nodes = math.ceil(r.max / per_node)
        else:
            s.cluster.nodes = g.nodes * r.max


def _raise(problems: list[Problem], origin: str, lines: LineIndex | None) -> None:
    index = lines or LineIndex(None)
    ordered = sorted(problems, key=lambda p: index.line(p.path, p.on_key) or 0)
    raise SpecError([format_problem(p, origin, index) for p in ordered])


def load_topology(path: Path) -> Topology:
    """Read, validate and resolve a topology file (the only step that touches files)."""
    import yaml

    spec = load_spec(path)
    lines = LineIndex(yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader))
    model = None
    if spec.model_config_path is not None:
        config_path = Path(spec.model_config_path).expanduser()
        if not config_path.is_absolute():
            config_path = path.parent / config_path
        try:
            model = load_model_config(config_path)
        except UserError as exc:
            where = lines.line(("model_config",))
            prefix = f"{path}:{where}" if where else str(path)
            raise SpecError([f"{prefix}: {exc}"]) from exc
    return resolve(spec, model, origin=str(path), lines=lines)
