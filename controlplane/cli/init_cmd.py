"""`glmctl init`: ask (or take flags for) the model, GPUs and workload; write a topology.

Every value not given as a flag is asked for on stdin with a default, so
`glmctl init --model glm-4.5 --precision fp8 --gpu H100 --gpus 8` asks nothing about those.
Answers may also be piped in, one per line. With no terminal and nothing left to read on
stdin (a script, CI), nothing is asked: the workload questions (precision, context,
concurrent sequences, engine) take the defaults they show and the command says so on
stderr; the hardware (model, GPU type, GPU count) has no safe default, so a missing one is
named as a flag and the command exits 2. The file is checked (`validate`, `capacity`)
before it is written.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from controlplane.cli.options import console, err_console
from controlplane.errors import UserError

# Flags that name hardware: without a terminal they are never guessed.
HARDWARE = ("--model", "--gpu", "--gpus")


def stdin_closed() -> bool:
    """True when no terminal is attached and stdin holds nothing more to read (EOF).

    `peek` does not consume, so piped answers are still read by the prompts afterwards."""
    stream = sys.stdin
    if stream is None or stream.closed:
        return True
    if stream.isatty():
        return False
    buffer = getattr(stream, "buffer", None)
    try:
        return buffer is not None and not buffer.peek(1)
    except (OSError, ValueError):
        return True


def _ask_all(questions: list[tuple[str, Any, str, Any, type]]) -> dict[str, Any]:
    """Each (flag, value, question, default, type): the flag's value, else the answer.

    Without a terminal or piped answers: defaults for the workload, exit 2 for hardware."""
    missing = [q for q in questions if q[1] is None]
    if missing and stdin_closed():
        hardware = [flag for flag, *_ in missing if flag in HARDWARE]
        if hardware:
            raise UserError(
                f"no terminal to ask on, and {', '.join(hardware)} not given.",
                fix=f"pass {' '.join(f + ' VALUE' for f in hardware)} (e.g. `glmctl init"
                " --model glm-4.5 --precision fp8 --gpu H100 --gpus 8`).",
            )
        taken = " ".join(f"{flag} {default}" for flag, _, _, default, _ in missing)
        err_console.print(f"no terminal: took the defaults {taken}", highlight=False)
        return {flag: value if value is not None else default
                for flag, value, _, default, _ in questions}  # fmt: skip
    return {
        flag: value if value is not None else typer.prompt(question, default=default, type=kind)
        for flag, value, question, default, kind in questions
    }


def init(
    model: Annotated[
        str | None,
        typer.Option("--model", help="Catalog model or a local config.json (or its folder)."),
    ] = None,
    precision: Annotated[
        str | None, typer.Option("--precision", help="bf16, fp8, ... ('auto': the checkpoint's).")
    ] = None,
    gpu: Annotated[str | None, typer.Option("--gpu", help="GPU type (`glmctl gpus`).")] = None,
    gpus: Annotated[int | None, typer.Option("--gpus", help="GPUs available in all.")] = None,
    context: Annotated[int | None, typer.Option("--context", help="Tokens per sequence.")] = None,
    batch: Annotated[int | None, typer.Option("--batch", help="Concurrent sequences.")] = None,
    engine: Annotated[str | None, typer.Option("--engine", help="sglang, vllm or trtllm.")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Deployment name.")] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="File to write (default: NAME.yaml).")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a validated topology for the best layout that fits your GPUs and workload."""
    from controlplane.scaffold.topology import DEFAULT_CONTEXT, Answers, offered_models, scaffold

    offered = ", ".join(offered_models())
    got = _ask_all([
        ("--model", model, f"Model ({offered}) or path to a config.json", "glm-4.5", str),
        ("--precision", precision, "Precision (bf16, fp8, auto)", "auto", str),
        ("--gpu", gpu, "GPU type (`glmctl gpus`)", "H200", str),
        ("--gpus", gpus, "GPUs available", 8, int),
        ("--context", context, "Context length (tokens per sequence)", DEFAULT_CONTEXT, int),
        ("--batch", batch, "Concurrent sequences per replica", 8, int),
        ("--engine", engine, "Engine (sglang, vllm, trtllm)", "sglang", str),
    ])  # fmt: skip
    model_name = str(got["--model"])
    answers = Answers(
        model=model_name,
        precision=_precision(str(got["--precision"])),
        gpu=str(got["--gpu"]),
        gpus=int(got["--gpus"]),
        context=int(got["--context"]),
        batch=int(got["--batch"]),
        engine=str(got["--engine"]).lower(),
        name=name,
        model_config=_local_model(model_name),
    )
    made = scaffold(answers)
    path = out or Path(f"{made.name}.yaml")
    if path.exists() and not force:
        raise UserError(
            f"{path} exists.", fix="pass --force to overwrite it, or --out another file."
        )
    try:
        path.write_text(made.text)
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}.",
                        fix="pass --out a file in a folder you can write to.") from exc  # fmt: skip
    typer.echo(made.text)
    console.print(
        f"[green]wrote {escape(str(path))}[/]: {made.replicas} replica(s) of"
        f" {made.topology.gpus_per_replica} x {made.topology.gpu.name}. Next: `glmctl capacity"
        f" {escape(str(path))}`, `glmctl plan {escape(str(path))}`.",
        highlight=False, soft_wrap=True,
    )  # fmt: skip


def _precision(answer: str) -> str | None:
    return None if answer.strip().lower() in ("", "auto") else answer.strip().lower()


def _local_model(model: str) -> object:
    from controlplane.cli.capacity_cmd import is_config_path

    if not is_config_path(model):
        return None
    from controlplane.catalog.hf_config import load_model_config

    return load_model_config(Path(model).expanduser())


def register(app: typer.Typer) -> None:
    """Add this group's commands to `app`."""
    app.command("init")(init)
