"""`glmctl init`: ask (or take flags for) the model, GPUs and workload; write a topology.

Every value not given as a flag is asked for on stdin with a default, so
`glmctl init --model glm-4.5 --precision fp8 --gpu H100 --gpus 8` asks nothing about those.
The file is checked (`validate`, `capacity`) before it is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from controlplane.cli.options import console
from controlplane.errors import UserError


def _ask(value: object, question: str, default: object, kind: type = str) -> object:
    return value if value is not None else typer.prompt(question, default=default, type=kind)


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
    model_name = str(_ask(model, f"Model ({offered}) or path to a config.json", "glm-4.5"))
    answers = Answers(
        model=model_name,
        precision=_precision(str(_ask(precision, "Precision (bf16, fp8, auto)", "auto"))),
        gpu=str(_ask(gpu, "GPU type (`glmctl gpus`)", "H200")),
        gpus=int(str(_ask(gpus, "GPUs available", 8, int))),
        context=int(
            str(_ask(context, "Context length (tokens per sequence)", DEFAULT_CONTEXT, int))
        ),
        batch=int(str(_ask(batch, "Concurrent sequences per replica", 8, int))),
        engine=str(_ask(engine, "Engine (sglang, vllm, trtllm)", "sglang")).lower(),
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
