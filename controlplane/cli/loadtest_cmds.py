"""Load-test commands: `glmctl loadtest TARGET` and `glmctl sweep`.

`loadtest` exits 0 when every SLO passes, 1 when one fails, 2 on a usage error. Locust
and matplotlib (the `loadtest` extra) are imported inside the commands only.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from controlplane.cli.options import console, err_console
from controlplane.errors import UserError

Slo = Annotated[
    str | None,
    typer.Option("--slo", help="e.g. ttft_p99=2s,itl_p99=50ms (default: the topology's slo:)."),
]
Workload = Annotated[
    str,
    typer.Option("--workload", help="chat, summarise, tools, thinking, no-thinking or mix."),
]
Out = Annotated[Path | None, typer.Option("--out", help="Output folder (default: a new one).")]


def _seconds(text: str, flag: str) -> float:
    from controlplane.spec.fields import parse_duration

    try:
        value = float(parse_duration(text))
    except Exception:
        value = -1.0
    if value <= 0:
        raise UserError(f"{flag} `{text}` is not a duration.", fix=f"pass {flag} 30s, 2m or 500ms.")
    return value


def _default_out(prefix: str) -> Path:
    return Path(f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}")


def loadtest(
    target: Annotated[str, typer.Argument(help="Deployment name, http://URL or topology YAML.")],
    workload: Workload = "chat",
    users: Annotated[int, typer.Option("--users", "-u", min=1, help="Concurrent users.")] = 8,
    rate: Annotated[
        float, typer.Option("--rate", min=0, help="Open loop: requests/s (0: closed loop).")
    ] = 0.0,
    burstiness: Annotated[
        float, typer.Option("--burstiness", min=0.01, help="1: Poisson; below 1 burstier.")
    ] = 1.0,
    duration: Annotated[str, typer.Option("--duration", help="Run time, e.g. 60s.")] = "60s",
    max_requests: Annotated[
        int, typer.Option("--max-requests", min=0, help="Stop after this many (0: no limit).")
    ] = 0,
    slo: Slo = None,
    out: Out = None,
    prompt_tokens: Annotated[
        str | None, typer.Option("--prompt-tokens", help="e.g. normal:512,128 or 1024.")
    ] = None,
    output_tokens: Annotated[
        str | None, typer.Option("--output-tokens", help="e.g. uniform:64-256.")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of prompts and arrivals.")] = 0,
    time_scale: Annotated[
        float | None, typer.Option("--time-scale", help="A URL target's simulated time scale.")
    ] = None,
    metrics_url: Annotated[
        list[str] | None, typer.Option("--metrics-url", help="Engine URL to scrape (URL target).")
    ] = None,
    address: Annotated[str | None, typer.Option("--address", help="Ray cluster address.")] = None,
) -> None:
    """Load-test TARGET with Locust; print the SLO verdict; exit 0 pass, 1 fail, 2 usage."""
    from controlplane.loadtest import targets
    from controlplane.loadtest.runner import LoadTestConfig
    from controlplane.loadtest.verdict import parse_slo
    from controlplane.loadtest.workloads import WorkloadConfig, parse_length

    seconds = _seconds(duration, "--duration")
    WorkloadConfig(name=workload, model="check")  # an unknown workload fails before any apply
    for text, flag in ((prompt_tokens, "--prompt-tokens"), (output_tokens, "--output-tokens")):
        if text:
            parse_length(text, flag)
    parse_slo(slo)  # malformed --slo fails before any apply
    with console.status(f"resolving {target}"):
        resolved = targets.resolve(target, address, _apply_progress)
    try:
        cfg = LoadTestConfig(
            url=resolved.url, model=resolved.model, out_dir=out or _default_out("loadtest"),
            slo=parse_slo(slo, resolved.slo), workload=workload, users=users, rate=rate,
            burstiness=burstiness, duration_s=seconds, max_requests=max_requests,
            context_length=resolved.context_length, prompt_tokens=prompt_tokens,
            output_tokens=output_tokens, seed=seed,
            time_scale=time_scale or resolved.time_scale,
            engine_urls=tuple(metrics_url or resolved.engine_urls),
        )  # fmt: skip
        passed = _run_and_report(cfg)
    finally:
        if resolved.applied:
            with console.status(f"deleting {resolved.name}"):
                resolved.cleanup()
            console.print(f"{resolved.name}: deleted (applied for this load test)")
    # sys.exit, not typer.Exit: the console entry runs typer outside standalone mode, where
    # click returns Exit's code instead of exiting with it.
    sys.exit(0 if passed else 1)


_last_progress: list[tuple[str, int, int]] = []


def _apply_progress(phase: str, done: int, total: int) -> None:
    if _last_progress[-1:] != [(phase, done, total)]:  # the backend reports every poll
        _last_progress.append((phase, done, total))
        err_console.print(f"  apply: {phase} {done}/{total}", highlight=False)


def _run_and_report(cfg: Any) -> bool:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from controlplane.loadtest.report import analyse, write_outputs
    from controlplane.loadtest.runner import run_load_test

    loop = f"{cfg.rate:g} req/s open loop" if cfg.rate else f"{cfg.users} users closed loop"
    console.print(
        f"load test: {cfg.workload} on {cfg.url} ({cfg.model}), {loop},"
        f" {cfg.duration_s:g} s, time scale {cfg.time_scale:g}", highlight=False
    )  # fmt: skip
    columns = (TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err_console, transient=True) as bar:
        task = bar.add_task("starting Locust", total=cfg.duration_s)

        def progress(done: int, elapsed: float) -> None:
            bar.update(task, completed=min(elapsed, cfg.duration_s),
                       description=f"{done} requests finished")  # fmt: skip

        data = run_load_test(cfg, progress)
    if not data.samples:
        raise UserError(
            f"no request was sent (Locust exited with {data.locust_exit}).",
            fix=f"see {cfg.out_dir / 'locust.log'}.",
        )
    report = analyse(cfg, data)
    files = write_outputs(cfg, data, report)
    _print_report(report)
    console.print(f"outputs in {cfg.out_dir}: " + ", ".join(f.name for f in files))
    return report.verdict.passed


def _print_report(report: Any) -> None:
    from controlplane.loadtest.verdict import format_value

    s = report.summary
    console.print(
        f"{s['completed']}/{s['requests']} requests ok over {s['duration_s']:.1f} s:"
        f" {s['request_throughput']:.2f} req/s, {s['output_token_throughput']:.0f} output"
        f" tokens/s ({s['reasoning_tokens']} reasoning + {s['content_tokens']} content),"
        f" TTFT p50 {format_value(s['ttft_s']['p50'], 's')}, TPOT p50"
        f" {format_value(s['tpot_s']['p50'], 's')}", highlight=False
    )  # fmt: skip
    if s["failures_by_cause"]:
        console.print(f"failures by cause: {s['failures_by_cause']}", highlight=False)
    table = Table("objective", "target", "measured", "verdict", title="SLO verdict")
    for row in report.verdict.rows:
        mark = "[green]pass[/]" if row.passed else "[red]FAIL[/]"
        table.add_row(row.objective, format_value(row.target, row.unit),
                      format_value(row.measured, row.unit), mark)  # fmt: skip
    v = report.verdict
    table.add_row("goodput", "", f"{v.goodput_share:.1%} of requests,"
                  f" {v.goodput_token_throughput:.0f} tokens/s", "")  # fmt: skip
    console.print(table)
    if report.checks:
        checks = Table("cross-check", "client", "reference", "source", "difference", "")
        for c in report.checks:
            mark = "ok" if c.passed else "[yellow]off[/]"
            reference = f"{c.reference:.4g}"
            if c.bucket is not None:
                reference += f" in ({c.bucket[0]:g}, {c.bucket[1]:g}]"
            checks.add_row(c.name, f"{c.client:.4g}", reference, c.source,
                           f"{c.difference:.1%}", mark)  # fmt: skip
        console.print(checks)
    word = "[green]PASS[/]" if report.verdict.passed else "[red]FAIL[/]"
    console.print(f"verdict: {word}")


def register(app: typer.Typer) -> None:
    """Add this group's commands to `app`."""
    app.command("loadtest")(loadtest)
    app.command("sweep")(sweep)


def _int_list(text: str, flag: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        values = ()
    if not values or min(values) < 1:
        raise UserError(f"{flag} `{text}` is not a list of counts.", fix=f"pass {flag} 4,8.")
    return values


def _mtp_options(text: str) -> tuple[bool, ...]:
    words = {"on": True, "off": False}
    parts = [p.strip().lower() for p in text.split(",") if p.strip()]
    if not parts or any(p not in words for p in parts):
        raise UserError(f"--mtp `{text}` is not on, off or on,off.", fix="pass --mtp on,off.")
    return tuple(dict.fromkeys(words[p] for p in parts))


def _sweep_base(model: str, precision: str, gpu: str, context: int, batch: int) -> Any:
    from pydantic import ValidationError

    from controlplane.spec import resolve
    from controlplane.spec.messages import validation_messages
    from controlplane.spec.models import TopologySpec

    doc = {"model": model, "precision": precision.lower(), "context_length": context,
           "gpus": {"type": gpu, "count": 8}, "max_num_seqs": batch}  # fmt: skip
    try:
        return doc, resolve(TopologySpec.model_validate(doc), origin="command line")
    except ValidationError as exc:
        problems = " ".join(validation_messages(exc))
        raise UserError(
            f"bad sweep options: {problems}",
            fix="check --model, --precision and --gpu (`glmctl models`, `glmctl gpus`).",
        ) from None


def sweep(
    model: Annotated[str, typer.Option("--model", help="Catalog model, e.g. glm-4.5.")],
    precision: Annotated[str, typer.Option("--precision", help="bf16 or fp8.")],
    gpu: Annotated[str, typer.Option("--gpu", help="GPU type, e.g. H200.")],
    gpus: Annotated[str, typer.Option("--gpus", help="GPU counts per replica to try.")] = "4,8",
    limit: Annotated[
        int, typer.Option("--limit", min=0, help="Splits to run (x MTP x batch); 0 with --pd.")
    ] = 4,
    mtp: Annotated[str, typer.Option("--mtp", help="on, off or on,off.")] = "on,off",
    batch: Annotated[str, typer.Option("--batch", help="max_num_seqs values, e.g. 8,32.")] = "8",
    context: Annotated[int, typer.Option("--context", min=256, help="Context length.")] = 32768,
    slo: Slo = None,
    workload: Workload = "chat",
    time_scale: Annotated[
        float, typer.Option("--time-scale", min=1, help="Simulated seconds per wall second.")
    ] = 10.0,
    step: Annotated[str, typer.Option("--step", help="Model time per rate step.")] = "30s",
    top: Annotated[int, typer.Option("--top", min=0, help="Write the N best as topologies.")] = 0,
    out: Out = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of prompts and arrivals.")] = 0,
    pd: Annotated[
        str | None,
        typer.Option("--pd", help="IN/OUT@RATE: also rank PD against colocated layouts."),
    ] = None,
) -> None:
    """Run feasible layouts on the simulated engine under a rate ramp; rank by goodput/GPU.

    With `--pd IN/OUT@RATE` (as `glmctl capacity --workload`) it first ranks the best
    prefill/decode (xPyD) and colocated layouts for that workload, with the reason, from the
    performance model; `--limit 0` stops there."""
    from controlplane.capacity.layout import layout_of
    from controlplane.capacity.search import search
    from controlplane.loadtest.sweep import candidates
    from controlplane.loadtest.verdict import parse_slo
    from controlplane.loadtest.workloads import WorkloadConfig

    counts, batches, mtp_options = (
        _int_list(gpus, "--gpus"),
        _int_list(batch, "--batch"),
        _mtp_options(mtp),
    )
    step_s, objectives = _seconds(step, "--step"), parse_slo(slo)
    doc, base_topo = _sweep_base(model, precision, gpu, context, max(batches))
    if pd is not None:
        from controlplane.cli.pd_capacity_cmd import compare_for_sweep

        compare_for_sweep(base_topo, pd, max(counts), console)
        if limit == 0:
            return
    elif limit == 0:
        raise UserError("--limit 0 runs no layout.", fix="pass --pd IN/OUT@RATE, or --limit 1+.")
    found = search(layout_of(base_topo), counts)
    spec_base = {k: v for k, v in doc.items() if k != "gpus"}
    spec_base["simulation"] = {"time_scale": time_scale}
    layouts = candidates(spec_base, found, limit, mtp_options, batches)
    if not layouts:
        raise UserError(
            f"no layout of {gpus} x {gpu} holds {model} {precision} at {context} tokens.",
            fix="try more --gpus, a shorter --context or --precision fp8.",
        )
    cfg = WorkloadConfig(name=workload, model="sweep", context_length=context)
    _run_sweep(
        layouts, cfg, objectives, time_scale, step_s, seed, top, out or _default_out("sweep")
    )


def _run_sweep(
    layouts: list[Any], cfg: Any, slo: Any, time_scale: float, step_s: float, seed: int,
    top: int, out: Path,
) -> None:  # fmt: skip
    from controlplane.loadtest.sweep import explain, rank
    from controlplane.loadtest.sweep_driver import run_layout
    from controlplane.loadtest.sweep_report import write_sweep

    started = time.monotonic()
    console.print(f"sweep: {len(layouts)} layouts, {cfg.name} workload, SLO TTFT p99"
                  f" {slo.ttft_p99:g} s, ITL p99 {slo.itl_p99 * 1000:g} ms, time scale"
                  f" {time_scale:g}x, {step_s:g} s per rate step", highlight=False)  # fmt: skip

    def progress(layout: Any, step: Any) -> None:
        verdict = "; ".join(step.problems(slo)) or "meets the SLO"
        err_console.print(f"  {layout.label}: {step.rate:.2f} req/s, {step.completed}/{step.sent}"
                          f" ok, {step.output_tokens_per_s:.0f} tokens/s: {verdict}",
                          highlight=False)  # fmt: skip

    results = [run_layout(lay, cfg, slo, time_scale, step_s, seed, progress) for lay in layouts]
    ranked = rank(results)
    table = Table(
        "#",
        "layout",
        "GPUs",
        "req/s at SLO",
        "goodput tok/s/GPU",
        "tok/s/user",
        "MTP tok/step",
        "step ms",
        "headroom GiB",
        title="layouts ranked at the SLO",
    )
    for i, r in enumerate(ranked, start=1):
        row = r.row()
        table.add_row(
            str(i),
            row["layout"],
            str(row["gpus"]),
            f"{row['sustained_rps']:.2f}",
            f"{row['goodput_tokens_per_s_per_gpu']:.0f}",
            f"{row['tokens_per_s_per_user']:.0f}",
            f"{row['mtp_tokens_per_step']:.2f}",
            f"{row['decode_step_ms']:.1f}",
            f"{row['headroom_gib_per_gpu']:.1f}",
        )
    console.print(table)
    for r in ranked:
        console.print(f"  {r.layout.label}: {r.limit}", highlight=False)
    for line in explain(ranked):
        console.print(f"- {line}", highlight=False)
    meta = {"workload": cfg.name, "slo": slo.model_dump(), "time_scale": time_scale,
            "step_s": step_s, "wall_s": time.monotonic() - started}  # fmt: skip
    files = write_sweep(ranked, out, top, meta)
    console.print(f"{len(layouts)} layouts in {time.monotonic() - started:.0f} s; outputs in"
                  f" {out}: " + ", ".join(f.name for f in files), highlight=False)  # fmt: skip
