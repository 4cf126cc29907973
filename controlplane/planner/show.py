"""A plan for people: a readable summary and a diff against what runs (both pure)."""

from __future__ import annotations

import shlex
from typing import Any

from controlplane.planner.models import DeploymentPlan, EngineGroupPlan


def _group_lines(g: EngineGroupPlan) -> list[str]:
    """One engine group: model, layout, replicas, autoscaling, bundles, rank commands."""
    r = g.replicas
    runtime = g.engine if g.runtime == g.engine else f"{g.engine} (simulated: GPUs declared)"
    lines = [
        f"  model      {g.model} served as `{g.served_model_name}`, engine {runtime}"
        f" {g.engine_version}",
        f"  replica    {g.nodes} node(s) x {g.gpus_per_node} {g.gpu_type}, placement"
        f" {g.strategy}, mem fraction {g.mem_fraction if g.mem_fraction else 'engine default'}",
        f"  replicas   initial {r.initial}, min {r.min}, max {r.max} (the cluster holds {r.fits})",
    ]
    if g.autoscaling:
        a = g.autoscaling
        lines.append(
            f"  autoscale  target {a.target_ongoing_requests:g} ongoing requests per replica,"
            f" up after {a.upscale_delay_s:g} s, down after {a.downscale_delay_s:g} s"
        )
    for i, bundle in enumerate(g.bundles):
        res = ", ".join(f"{k}={v:g}" for k, v in bundle.items())
        lines.append(f"  bundle {i}   {res}")
    for rank in g.ranks:
        cmd = shlex.join(rank.argv) if rank.argv else "(holds its GPUs; rank 0 runs the replica)"
        if len(cmd) > 160:
            cmd = cmd[:157] + "..."
        steps = _script_steps(rank.argv) if not rank.engine_argv else []
        lines.append(f"  rank {rank.rank}     {'(steps below)' if steps else cmd}")
        if rank.engine_argv:
            steps = _script_steps(rank.engine_argv)
            if not steps:
                lines.append(f"    on GPUs: {shlex.join(rank.engine_argv)}")
            else:
                lines.append("    on GPUs: convert + build on an engine cache miss, then serve:")
        lines += [f"    {name:8s}{shlex.join(argv)}" for name, argv in steps]
    return lines


def plan_summary(plan: DeploymentPlan) -> str:
    """Several lines: the replica layout, its bundles, each rank's command, the router; a
    PD plan's per pool."""
    lines = [f"deployment {plan.name}  ({plan.origin})"]
    for g in plan.groups:
        if g.pd:
            lines.append(f"  pool       {g.pd} (engine group {g.name})")
        lines += _group_lines(g)
    rp = plan.router
    lines.append(
        f"  router     {rp.processes} process(es), policy {rp.policy}, port {rp.port},"
        f" queue {rp.max_queue_per_endpoint} per endpoint"
    )
    for e in rp.external:
        role = (
            f"overflow at {rp.overflow_at} in flight per replica"
            if e.role == "overflow"
            else e.role
        )
        key = f"env {e.key_env}" if e.key_env else f"secret {e.key_secret}"
        key = f"key from {key}" if e.key_env or e.key_secret else "no key"
        lines.append(
            f"  external   {e.name}: {e.base_url} as `{e.upstream_model}`, {role},"
            f" up to {e.capacity} in flight, {key}"
        )
    lines += [f"  warning    {w}" for w in plan.warnings]
    return "\n".join(lines)


def _script_steps(argv: tuple[str, ...]) -> list[tuple[str, tuple[str, ...]]]:
    """A TensorRT-LLM rank's `sh -c SCRIPT` as its named steps (convert, build, serve)."""
    if len(argv) != 3 or argv[:2] != ("sh", "-c"):
        return []
    from controlplane.engines.trtllm import script_steps

    found = script_steps(argv[2])
    return list(zip(("convert", "build", "serve"), found, strict=False))


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(data, list) and data and all(isinstance(x, str) for x in data):
        return {prefix: " ".join(data)}  # command lines compare as one value
    if isinstance(data, list):
        out = {}
        for i, value in enumerate(data):
            out.update(_flatten(value, f"{prefix}[{i}]"))
        return out or {prefix: []}
    return {prefix: data}


def diff_plans(running: dict[str, Any] | None, new: dict[str, Any]) -> list[str]:
    """Lines `+ key: value`, `- key: value`, `~ key: old -> new` (empty: nothing changes)."""
    before = _flatten(running or {})
    after = _flatten(new)
    skip = ("origin", "warnings")
    lines = []
    for key in sorted(before.keys() | after.keys()):
        if key.startswith(skip) or key.endswith(".fits"):
            continue
        if key not in before:
            lines.append(f"+ {key}: {after[key]}")
        elif key not in after:
            lines.append(f"- {key}: {before[key]}")
        elif before[key] != after[key]:
            lines.append(f"~ {key}: {before[key]} -> {after[key]}")
    return lines
