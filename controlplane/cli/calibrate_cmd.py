"""`glmctl calibrate`: hold the performance model against benchmark runs of a deployment and
print the `performance:` section that corrects it (capacity/calibrate.py)."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.markup import escape
from rich.table import Table

from controlplane.cli.options import (
    OutputFormat,
    OutputOption,
    complete_topology,
    console,
    emit,
)
from controlplane.errors import UserError


def calibrate(
    topology: Annotated[
        Path,
        typer.Argument(
            help="The topology the runs were measured on.", autocompletion=complete_topology
        ),
    ],
    results: Annotated[
        list[Path],
        typer.Argument(
            help="Result files of `vllm bench serve --save-result` or `sglang.bench_serving"
            " --output-file`, closed loops (--max-concurrency, --request-rate inf)."
        ),
    ],
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """Compare the performance model with benchmark runs on your GPUs; print the correction.

    Each run is replayed as its client ran it; `decode_scale` and `prefill_scale` make the
    model's median TPOT and mean TTFT match the runs. Paste the printed `performance:`
    section into the topology: capacity, `sweep`, plans and the simulator then use it.
    """
    from controlplane.capacity.calibrate import calibrate as fit
    from controlplane.capacity.calibrate import read_runs
    from controlplane.capacity.performance import performance_model
    from controlplane.spec import load_topology

    topo = load_topology(topology)
    if topo.spec.disaggregation is not None:
        raise UserError(
            f"{topology} is a prefill/decode topology: its TTFT includes the KV transfer"
            " between two pools, which the replay of one replica does not model.",
            fix="calibrate a colocated topology of the same model, GPUs and engine.",
        )
    read = read_runs(results)
    runs = list(read.runs)
    found = fit(performance_model(topo), runs, topo.spec.max_num_seqs)
    notes = [*read.skipped, *found.notes]
    if (replicas := topo.spec.replicas.min) > 1:
        notes.append(
            f"the topology runs {replicas} replicas or more; runs through its router"
            " spread the clients over them, while the replay gives all of a run's clients to"
            " one replica: benchmark one replica's engine directly."
        )
    section = _section(found.decode_scale, found.prefill_scale, runs)
    if output is not OutputFormat.TEXT:
        emit({**section, "runs": [_row(f) for f in found.runs], "notes": notes}, output)
        return
    _print(topo.spec.name or topology.stem, found)
    for note in notes:
        console.print(f"[yellow]note[/] {escape(note)}", soft_wrap=True)
    previous = topo.spec.performance
    if previous is not None:
        console.print(
            f"The topology carries decode_scale {previous.decode_scale:g} and prefill_scale"
            f" {previous.prefill_scale:g}; the fit above starts from the model without them.",
            highlight=False,
        )
    verb = "Replace its performance: section with" if previous is not None else "Add to"
    console.print(f"{verb} {topology}:", highlight=False)
    typer.echo(yaml.safe_dump(section, sort_keys=False).rstrip())


def _section(decode: float, prefill: float, runs: list[Any]) -> dict[str, Any]:
    clients = sorted({run.client for run in runs})
    today = datetime.date.today().isoformat()
    return {
        "performance": {
            "decode_scale": round(decode, 3),
            "prefill_scale": round(prefill, 3),
            "source": f"glmctl calibrate: {len(runs)} run(s) of {', '.join(clients)}, {today}",
        }
    }


def _row(fit: Any) -> dict[str, Any]:
    run, before, after = fit.run, fit.before, fit.after
    return {
        "run": run.label,
        "clients": run.concurrency,
        "requests": len(run.lengths),
        "exact_lengths": run.exact_lengths,
        "measured": {
            "median_tpot_ms": run.tpot_ms,
            "mean_ttft_ms": run.ttft_ms,
            "output_tokens_per_s": run.output_tps,
        },
        "model": _figures(before),
        "corrected": _figures(after),
    }


def _figures(result: Any) -> dict[str, float]:
    return {
        "median_tpot_ms": round(result.median_tpot_s * 1e3, 3),
        "mean_ttft_ms": round(result.mean_ttft_s * 1e3, 3),
        "output_tokens_per_s": round(result.output_tokens_per_s, 2),
    }


def _print(name: str, found: Any) -> None:
    table = Table(
        title=f"{name}: measured, model, corrected (decode x{found.decode_scale:.3f},"
        f" prefill x{found.prefill_scale:.3f})"
    )
    for column in ("run", "clients", "requests", "median TPOT ms", "mean TTFT ms", "output tok/s"):
        table.add_column(column, justify="left" if column == "run" else "right")
    for fit in found.runs:
        run, before, after = fit.run, fit.before, fit.after
        table.add_row(
            escape(run.label),
            str(run.concurrency),
            f"{len(run.lengths)}{'' if run.exact_lengths else ' (mean lengths)'}",
            _cell(run.tpot_ms, before.median_tpot_s * 1e3, after.median_tpot_s * 1e3),
            _cell(run.ttft_ms, before.mean_ttft_s * 1e3, after.mean_ttft_s * 1e3),
            _cell(run.output_tps, before.output_tokens_per_s, after.output_tokens_per_s),
        )
    console.print(table)


def _cell(measured: float, model: float, corrected: float) -> str:
    return (
        f"{measured:.1f} / {model:.1f} ({model / measured - 1:+.0%})"
        f" / {corrected:.1f} ({corrected / measured - 1:+.0%})"
    )


def register(app: typer.Typer) -> None:
    """Add this group's commands to `app`."""
    app.command("calibrate")(calibrate)
