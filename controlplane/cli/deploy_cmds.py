"""Deploy commands: plan, apply, status, scale, delete, demo.

`apply` follows plan -> show the plan and its diff against what runs -> confirm (`-y`
skips) -> deploy -> progress until every replica is healthy -> endpoint and a curl example.
Heavy imports (ray, redis) happen inside the commands.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from controlplane.catalog.gpus import GIB
from controlplane.cli.options import (
    OutputFormat,
    OutputOption,
    complete_topology,
    console,
    emit,
    err_console,
)
from controlplane.errors import UserError

if TYPE_CHECKING:
    from controlplane.backends.ray.records import DeploymentRecord
    from controlplane.planner import DeploymentPlan

File = Annotated[
    Path,
    typer.Argument(
        help="A topology YAML file.", show_default=False, autocompletion=complete_topology
    ),
]
Address = Annotated[
    str | None,
    typer.Option("--address", help="Ray cluster address (default: RAY_ADDRESS, else embedded)."),
]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Apply without asking.")]
AllowDowntime = Annotated[
    bool,
    typer.Option(
        "--allow-downtime",
        help="Update a one-replica deployment in place when the cluster has no room for a"
        " second replica (no replica serves while the new one starts).",
    ),
]


def complete_deployment(incomplete: str) -> list[str]:
    """Shell completion: deployments recorded in the embedded cluster's (or the configured)
    Redis; nothing when none runs or anything fails (completion never prints errors)."""
    try:
        from controlplane.backends.ray.cluster import embedded_state
        from controlplane.backends.ray.records import deployment_names
        from controlplane.settings import get_settings

        settings = get_settings()
        state = embedded_state(settings.state_dir)
        url = settings.redis_url or (state.redis_url if state else None)
        names = deployment_names(url) if url else []
    except Exception:
        return []
    return [n for n in names if n.startswith(incomplete)]


DeploymentName = Annotated[
    str, typer.Argument(help="Deployment name.", autocompletion=complete_deployment)
]
SERVE_MODULES = ("ray", "redis", "uvicorn", "orjson")  # what apply and scale run on


def _print_plan(plan: DeploymentPlan, diff: list[str], running: bool) -> None:
    from controlplane.planner import plan_summary

    console.print(escape(plan_summary(plan)), highlight=False)
    if not running:
        console.print("[bold]diff[/]: new deployment (nothing of this name runs)")
    elif not diff:
        console.print("[bold]diff[/]: no changes against what runs")
    else:
        console.print(f"[bold]diff[/] against what runs ({len(diff)} change(s)):")
        for line in diff[:40]:
            colour = {"+": "green", "-": "red"}.get(line[0], "yellow")
            console.print(f"  [{colour}]{escape(line)}[/]", highlight=False)
        if len(diff) > 40:
            console.print(f"  ... {len(diff) - 40} more (`glmctl plan FILE -o yaml`)")


def plan_cmd(file: File, output: OutputOption = OutputFormat.TEXT, address: Address = None) -> None:
    """Dry run: the plan and its diff against what runs; starts and changes nothing."""
    from controlplane.backends.ray.manage import preview
    from controlplane.spec import load_topology

    topology = load_topology(file)
    shown = preview(topology, address)
    if output is OutputFormat.TEXT:
        _print_plan(shown.plan, shown.diff, shown.running)
    else:
        emit(shown.plan.to_data(), output)


def _progress_apply(prepared: Any, topology: Any, force: bool) -> DeploymentRecord:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from controlplane.backends.ray.deploy import execute_apply

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err_console, transient=False) as bar:
        tasks: dict[str, Any] = {}

        def report(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = bar.add_task(phase, total=total)
            bar.update(tasks[phase], completed=done, total=total)

        return execute_apply(prepared, topology, report, force=force)


def _curl(record: DeploymentRecord) -> str:
    model = record.deployment_plan.group.served_model_name
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "Hello"}]})
    return (
        f"curl {record.router_url}/v1/chat/completions -H 'content-type: application/json'"
        f" -d '{body}'"
    )


Force = Annotated[
    bool, typer.Option("--force", help="Apply even if the cluster changed since the plan.")
]


def apply(
    file: File,
    yes: Yes = False,
    address: Address = None,
    force: Force = False,
    allow_downtime: AllowDowntime = False,
) -> None:
    """Plan, show the diff against what runs, confirm, deploy, wait until healthy."""
    _apply(file, yes, address, force, allow_downtime)


def _apply(
    file: Path, yes: bool, address: str | None, force: bool = False, allow_downtime: bool = False
) -> DeploymentRecord:
    from controlplane.backends.ray.deploy import prepare_apply
    from controlplane.doctor.extras import require
    from controlplane.spec import load_topology

    topology = load_topology(file)
    require(*SERVE_MODULES)
    started = time.monotonic()
    with console.status("connecting to the cluster and planning"):
        prepared = prepare_apply(topology, address)
    if prepared.target.healed:
        _say_healed()
    _print_plan(prepared.plan, prepared.diff, prepared.running is not None)
    if prepared.unchanged and prepared.running is not None:
        console.print(f"{topology.name} is up to date; endpoint {prepared.running.router_url}")
        return prepared.running
    _check_gap(prepared, topology.name, allow_downtime)
    from controlplane.backends.ray.manage import stop_if_idle

    if not yes and not typer.confirm("Apply this plan?", default=False):
        stop_if_idle(prepared.target)  # an embedded cluster started only for this plan
        raise typer.Abort()
    try:
        # Drift is only possible while a person reads the plan; -y applies what was planned.
        record = _progress_apply(prepared, topology, force=force or yes)
    except BaseException:
        stop_if_idle(prepared.target)
        raise
    console.print(
        f"[green]{record.name}[/] ready in {time.monotonic() - started:.1f} s:"
        f" {record.replicas} replica(s), endpoint [bold]{record.router_url}[/] (OpenAI API)"
    )
    console.print(escape(_curl(record)), highlight=False, soft_wrap=True)
    return record


def _check_gap(prepared: Any, name: str, allow_downtime: bool) -> None:
    """Refuse an update that leaves the model without a replica, unless allowed; then say
    how long the gap may last."""
    gap = prepared.gap
    if gap is None:
        return
    if not allow_downtime:
        raise UserError(gap.message(name), fix=gap.fix())
    console.print(f"[yellow]{escape(gap.message(name))}[/]", highlight=False, soft_wrap=True)


def _say_healed() -> None:
    console.print(
        "[yellow]the embedded Ray cluster had died (its processes were gone); glmctl restarted"
        " it with the same nodes. Deployments that ran on it are gone: apply them again.[/]",
        highlight=False, soft_wrap=True,
    )  # fmt: skip


def status(output: OutputOption = OutputFormat.TEXT, address: Address = None) -> None:
    """Deployments, replicas (ranks, nodes, GPUs), health and the cluster's nodes."""
    from controlplane.backends.ray.manage import status as get_status

    data = get_status(address)
    if output is not OutputFormat.TEXT:
        emit(data, output)
        return
    if data["cluster"] is None:
        console.print("no cluster runs and nothing is deployed (`glmctl apply FILE`).")
        return
    c = data["cluster"]
    if c.get("healed"):
        _say_healed()
    kind = "embedded" if c["embedded"] else "remote"
    console.print(f"cluster {c['address']} ({kind}), {len(c['nodes'])} node(s)")
    if c.get("prometheus_url"):
        console.print(f"prometheus {c['prometheus_url']}")
    console.print(_nodes_table(c["nodes"]))
    console.print(_deployments_table(data["deployments"]))
    for d in data["deployments"]:
        if d.get("restarts_stopped"):
            from controlplane.autoscale.restarts import StoppedRestarts

            stopped = StoppedRestarts(**d["restarts_stopped"])
            console.print(f"[red]{stopped.message(d['name'])}[/red]", highlight=False)
        for e in d.get("external", []):
            health = "up" if e["ok"] else f"DOWN: {e['error'] or 'no answer'}"
            console.print(f"{d['name']} {e['endpoint']} ({e['role']}) {e['url']}: {health}")
        if d.get("autoscale"):
            console.print(_autoscale_line(d["name"], d["autoscale"]), highlight=False)


def _autoscale_line(name: str, a: dict[str, Any]) -> str:
    """The autoscaler's last reading in one line (requests on overflow only when any)."""
    overflowed = a.get("overflow_inflight", 0)
    on_overflow = f", {overflowed} on overflow counted as demand" if overflowed else ""
    return (
        f"{name} autoscaling: wants {a['desired']}, {a['running']} serving{on_overflow},"
        f" the cluster holds {a['max']}; last: {a['direction']} ({a['reason']})"
    )


def _nodes_table(nodes: list[dict[str, Any]]) -> Table:
    table = Table("node", "GPU", "GPUs free", "CPUs free", "host RAM free (GiB)")
    for n in nodes:
        table.add_row(
            n["node_id"][:12],
            str(n["gpu_type"]),
            f"{n['gpus_free']}/{n['gpus_total']}",
            f"{n['cpus_free']:g}",
            f"{n['memory_bytes'] / GIB:.0f}",
        )
    return table


def _deployments_table(deployments: list[dict[str, Any]]) -> Table:
    table = Table("deployment", "status", "engine", "model", "replicas", "endpoint", "ranks")
    for d in deployments:
        ranks = "; ".join(
            (f"{r['pd']}: " if r.get("pd") else "")
            + ", ".join(
                f"r{k['rank']}@{k['node_id'][:8]} gpus {','.join(k['gpu_ids'])}" for k in r["ranks"]
            )
            for r in d["replica_details"]
        )
        runtime = d["engine"] if d["runtime"] == d["engine"] else f"{d['engine']} (sim)"
        table.add_row(
            d["name"],
            d["status"],
            runtime,
            d["model"],
            replicas_cell(d),
            d["endpoint"],
            ranks,
        )
    return table


def replicas_cell(deployment: dict[str, Any]) -> str:
    """serving/desired replicas; a PD deployment's per pool (`prefill 2/2, decode 1/1`)."""
    pools = deployment.get("pools")
    if pools:
        return ", ".join(f"{p['pool']} {p['serving']}/{p['desired']}" for p in pools)
    return f"{deployment['replicas']['serving']}/{deployment['replicas']['desired']}"


def scale(
    name: DeploymentName,
    replicas: Annotated[int, typer.Option("--replicas", min=0, help="Replica count.")],
    address: Address = None,
) -> None:
    """Set a deployment's replica count (never more than the cluster holds)."""
    from controlplane.backends.ray.manage import scale as do_scale
    from controlplane.doctor.extras import require

    require(*SERVE_MODULES)
    started = time.monotonic()
    with console.status(f"scaling {name} to {replicas}"):
        record = do_scale(name, replicas, address)
    console.print(
        f"{name}: {record.replicas} replica(s) healthy ({time.monotonic() - started:.1f} s)"
    )


def delete(
    name: DeploymentName,
    address: Address = None,
    keep_cluster: Annotated[
        bool,
        typer.Option(
            "--keep-cluster", help="Keep the embedded cluster running when nothing is left."
        ),
    ] = False,
) -> None:
    """Delete a deployment (idempotent); the embedded cluster stops with the last one."""
    from controlplane.backends.ray.manage import delete as do_delete

    with console.status(f"deleting {name}"):
        removed = do_delete(name, address, keep_cluster)
    console.print(f"{name}: {'deleted' if removed else 'nothing to delete'}")


def demo(file: File, address: Address = None) -> None:
    """apply -y, send one chat request through the router, print it, delete."""
    from controlplane.spec import load_topology

    topology = load_topology(file)
    name = topology.name
    try:
        record = _apply(file, yes=True, address=address)
        _one_request(record)
    finally:
        delete(name, address)


def _one_request(record: DeploymentRecord) -> None:
    # The standard library on purpose: `make run` installs only the `serve` extra.
    import urllib.error
    import urllib.request

    model = record.deployment_plan.group.served_model_name
    body = {
        "model": model,
        "messages": [{"role": "user", "content": "Say hello from GLM-4.5 in one line."}],
        "max_tokens": 48,
        "stream": True,
    }
    url = f"{record.router_url}/v1/chat/completions"
    console.print(f"[bold]request[/] POST {url} (stream)")
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"content-type": "application/json"}
    )
    started = time.monotonic()
    first: float | None = None
    parts: dict[str, list[str]] = {"reasoning_content": [], "content": []}
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            served_by = response.headers.get("x-glmctl-endpoint", "?")
            for raw in response:
                line = raw.decode().strip()
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                first = first or time.monotonic()
                delta = json.loads(line[6:])["choices"][0].get("delta", {})
                for field, chunks in parts.items():
                    chunks.append(delta.get(field) or "")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise UserError(
            f"the demo request to {url} failed: {exc}.",
            fix="apply the topology with `glmctl apply FILE`, then check `glmctl status` and"
            " the logs under the state dir (GLMCTL_STATE_DIR, default ~/.glmctl).",
        ) from exc
    ttft = (first - started) * 1000 if first else float("nan")
    count = sum(1 for piece in parts["content"] + parts["reasoning_content"] if piece)
    console.print(f"[bold]response[/] from {served_by} (first token {ttft:.0f} ms, {count} chunks)")
    # GLM-4.5 thinks first (reasoning_content), then answers (content).
    console.print(
        f"[dim]thinking:[/] {escape(''.join(parts['reasoning_content']))}", highlight=False
    )
    console.print(f"[bold]answer:[/] {escape(''.join(parts['content']))}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add this group's commands to `app`."""
    app.command("plan")(plan_cmd)
    app.command("apply")(apply)
    app.command("status")(status)
    app.command("scale")(scale)
    app.command("delete")(delete)
    app.command("demo")(demo)
