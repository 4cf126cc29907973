"""`glmctl capacity`: GPU memory rank by rank, host RAM per node, and the layout search."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from controlplane.catalog.gpus import GIB
from controlplane.cli.options import OutputFormat, OutputOption, complete_topology, emit
from controlplane.cli.options import console as _console
from controlplane.errors import UserError

# Tables of ten numeric columns need more than the 80 columns rich assumes off a terminal.
console = _console if _console.is_terminal else Console(width=150)


def _gib(value: float) -> str:
    return f"{value / GIB:.1f}"


def _base_spec(
    model: str, precision: str | None, gpu: str, gpus: int, context: int | None, batch: int
) -> dict[str, Any]:
    if gpus < 1:
        raise UserError(
            f"--gpus {gpus}: a replica needs at least one GPU.", fix="pass --gpus 1 or more."
        )
    if batch < 1:
        raise UserError(
            f"--batch {batch}: the number of concurrent sequences must be at least 1.",
            fix="pass --batch 1 or more (the model card uses 8).",
        )
    if context is not None and context < 1:
        raise UserError(
            f"--context {context} is not a token count.", fix="pass --context 1 or more."
        )
    doc: dict[str, Any] = {
        "gpus": {"type": gpu, "count": gpus},
        "max_num_seqs": batch,
    }
    if is_config_path(model):
        doc["model_config"] = model
    else:
        doc["model"] = model
    if precision:
        doc["precision"] = precision.lower()
    if context is not None:
        doc["context_length"] = context
    return doc


def is_config_path(model: str) -> bool:
    """`--model` names a local config.json (or its folder) rather than a catalog model."""
    return model.endswith(".json") or Path(model).expanduser().exists()


def _topology_from_flags(
    doc: dict[str, Any], engine: str | None, mtp: bool, mem_fraction: float | None
) -> Any:
    from pydantic import ValidationError

    from controlplane.catalog.hf_config import load_model_config
    from controlplane.spec import resolve
    from controlplane.spec.messages import validation_messages
    from controlplane.spec.models import TopologySpec

    if engine or mem_fraction is not None:
        doc["engine"] = {"kind": engine} if engine else {}  # else the spec's default engine
        if mem_fraction is not None:
            doc["engine"]["mem_fraction"] = mem_fraction
    if not mtp:
        doc["speculative"] = {"algorithm": "none"}
    try:
        spec = TopologySpec.model_validate(doc)
    except ValidationError as exc:
        problems = " ".join(validation_messages(exc))
        raise UserError(
            f"bad capacity options: {problems}",
            fix="check the flags (`glmctl capacity --help`; `glmctl models` lists precisions).",
        ) from exc
    local = None
    if spec.model_config_path is not None:
        local = load_model_config(Path(spec.model_config_path).expanduser())
    return resolve(spec, local, origin="command line")


def _print_report(report: Any) -> None:
    style = "green" if report.fits else "red"
    console.print(f"[bold {style}]{escape(report.verdict)}[/]", highlight=False, soft_wrap=True)
    _print_ranks(report)
    _print_engine(report)
    _print_host(report)
    _print_findings(report)
    console.print(
        f"Estimated decode: {report.decode_tokens_per_s:.0f} tokens/s per replica at"
        f" {report.max_num_seqs} sequences ({report.tokens_per_step:.2f} tokens per step).",
        highlight=False,
    )
    if report.decode_caveat:
        console.print(f"[yellow]{escape(report.decode_caveat)}[/]", highlight=False)


def _print_ranks(report: Any) -> None:
    split = f"TP {report.tp} PP {report.pp} EP {report.ep} DP {report.dp}"
    table = Table(title=f"Per-GPU memory, GiB ({report.gpus} x {report.gpu}, {split})")
    columns = ("stage", "ranks", "layers", "GPU", "weights", "engine reserve", "KV needed",
               "KV pool", "KV tokens", "headroom")  # fmt: skip
    for col in columns:
        table.add_column(col, justify="right")
    for r in report.ranks:
        table.add_row(
            str(r.stage), r.ranks, r.layers, _gib(r.gpu_bytes), _gib(r.weights_bytes),
            _gib(r.engine_reserved_bytes), _gib(r.kv_required_bytes), _gib(r.kv_pool_bytes),
            str(r.kv_tokens), _gib(r.headroom_bytes),
        )  # fmt: skip
    console.print(table)
    tight = min(report.ranks, key=lambda r: r.headroom_bytes)
    classes = ", ".join(f"{k} {_gib(v)}" for k, v in tight.weights_by_class.items())
    console.print(f"Weights of stage {tight.stage} by class (GiB): {classes}", highlight=False)


def _print_engine(report: Any) -> None:
    auto = "the engine's own rule" if report.engine_mem_fraction_auto else "set in the spec"
    reserved = ", ".join(f"{k} {_gib(v)}" for k, v in report.engine_reserved_bytes.items())
    console.print(
        f"Engine: {report.engine} {report.engine_mem_fraction_flag} {report.engine_mem_fraction}"
        f" ({auto}); reserved per GPU (GiB): {reserved}",
        highlight=False, soft_wrap=True,
    )  # fmt: skip
    console.print(
        f"KV cache: {report.kv_token_capacity} tokens per replica ({report.kv_cache_dtype});"
        f" {report.max_concurrency} sequences of {report.context_length} fit; {report.max_num_seqs}"
        f" sequences fit up to {report.max_context_at_batch} tokens each.",
        highlight=False, soft_wrap=True,
    )  # fmt: skip


def _print_findings(report: Any) -> None:
    for f in report.findings:
        color = "red" if f.severity == "error" else "yellow"
        console.print(
            f"[{color}]{f.severity}[/] {escape(f.code)}: {escape(f.message)}"
            f" To fix: {escape(f.fix)}",
            soft_wrap=True,
        )
    for s in report.suggestions:
        console.print(
            f"[cyan]fits with[/] {escape(s.change)}: {escape(s.layout)}"
            f" ({_gib(s.headroom_bytes)} GiB spare per GPU)",
            soft_wrap=True,
        )


def _print_host(report: Any) -> None:
    table = Table(title="Host RAM per node, GB")
    for col in (
        "node",
        "GPUs",
        "page cache",
        "engine processes",
        "Ray object store",
        "pinned offload",
        "OS",
        "total",
        "node RAM",
        "verdict",
    ):
        table.add_column(col, justify="right")
    for n in report.host_nodes:
        table.add_row(
            str(n.node), str(n.gpus), f"{n.page_cache_bytes / 1e9:.0f}",
            f"{n.engine_processes_bytes / 1e9:.0f}", f"{n.ray_object_store_bytes / 1e9:.0f}",
            f"{n.pinned_offload_bytes / 1e9:.0f}", f"{n.os_reserve_bytes / 1e9:.0f}",
            f"{n.total_bytes / 1e9:.0f}", f"{n.node_ram_bytes / 1e9:.0f}", n.verdict,
        )  # fmt: skip
    console.print(table)
    console.print(escape(report.host_note), highlight=False, soft_wrap=True)


def _search_rows(topo: Any, max_gpus: int, limit: int) -> list[dict[str, Any]]:
    from controlplane.capacity.layout import layout_of
    from controlplane.capacity.search import search

    base = layout_of(topo)
    rows = []
    for cand in search(base, range(1, max_gpus + 1))[:limit]:
        lay, mem = cand.layout, cand.memory
        rows.append(
            {
                "gpus": lay.gpus,
                "nodes": lay.nodes,
                "tp": lay.tp,
                "pp": lay.pp,
                "ep": lay.ep,
                "dp": lay.dp,
                "dp_attention": lay.dp_attention,
                "headroom_per_gpu_bytes": int(cand.headroom_bytes),
                "kv_tokens": mem.kv_tokens * lay.copies,
                # KV held beyond the workload (batch x context), as a fraction of it
                "kv_margin": mem.kv_tokens / max(1, mem.required_tokens) - 1,
                "max_concurrency": (mem.kv_tokens // lay.context) * lay.copies,
                "engine_mem_fraction": mem.budget.mem_fraction,
                "flags": list(cand.flags),
            }
        )
    return rows


def _print_search(topo: Any, rows: list[dict[str, Any]], max_gpus: int) -> None:
    title = (
        f"Feasible layouts for {topo.model.display_name} {topo.precision.value} on {topo.gpu.name},"
        f" {topo.spec.max_num_seqs} x {topo.context_length} tokens: accepted by preflight first"
        " (flagged layouts last), then smallest"
    )
    if not rows:
        raise UserError(
            f"no layout of up to {max_gpus} x {topo.gpu.name} holds {topo.spec.max_num_seqs}"
            f" sequences of {topo.context_length} tokens of {topo.model.display_name}.",
            fix="use a shorter --context, a smaller --batch, --precision fp8, or a larger GPU.",
        )
    table = Table(title=title)
    for col in (
        "GPUs",
        "nodes",
        "TP",
        "PP",
        "EP",
        "DP attn",
        "headroom/GPU GiB",
        "KV tokens",
        "KV margin",
        "max seqs",
        "mem fraction",
        "preflight",
    ):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(
            str(r["gpus"]), str(r["nodes"]), str(r["tp"]), str(r["pp"]), str(r["ep"]),
            str(r["dp"]) if r["dp_attention"] else "-", _gib(r["headroom_per_gpu_bytes"]),
            str(r["kv_tokens"]), f"{r['kv_margin']:+.0%}", str(r["max_concurrency"]),
            str(r["engine_mem_fraction"]),
            ", ".join(r["flags"]) or "ok",
        )  # fmt: skip
    console.print(table)


def capacity(
    file: Annotated[
        Path | None,
        typer.Argument(
            help="A topology YAML file.", show_default=False, autocompletion=complete_topology
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            help="Catalog model, or a local config.json (or its folder), instead of a file.",
        ),
    ] = None,
    precision: Annotated[
        str | None, typer.Option("--precision", help="bf16, fp16, fp8, int8, int4.")
    ] = None,
    gpu: Annotated[
        str,
        typer.Option(
            "--gpu", help="GPU type (`glmctl gpus`), or SD8-ELITE, LNL-288V, XIAOMI-12 (edge)."
        ),
    ] = "H200",
    gpus: Annotated[
        int | None, typer.Option("--gpus", help="GPUs per replica (omit to search).")
    ] = None,
    context: Annotated[int | None, typer.Option("--context", help="Tokens per sequence.")] = None,
    batch: Annotated[int, typer.Option("--batch", help="Concurrent sequences.")] = 8,
    engine: Annotated[str | None, typer.Option("--engine", help="sglang, vllm or trtllm.")] = None,
    mtp: Annotated[bool, typer.Option("--mtp/--no-mtp", help="MTP speculative decoding.")] = True,
    do_search: Annotated[bool, typer.Option("--search", help="List feasible layouts.")] = False,
    max_gpus: Annotated[
        int, typer.Option("--max-gpus", min=1, help="Largest layout to search.")
    ] = 64,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Layouts to list.")] = 20,
    mem_fraction: Annotated[
        float | None,
        typer.Option("--mem-fraction", help="Engine memory fraction (default: the engine's rule)."),
    ] = None,
    gpu_memory_gb: Annotated[
        float | None,
        typer.Option("--gpu-memory-gb", help="Size a device with this much memory (GB)."),
    ] = None,
    node_ram_gb: Annotated[
        float | None, typer.Option("--node-ram-gb", help="Host RAM per node (default 2000).")
    ] = None,
    workload: Annotated[
        str | None,
        typer.Option(
            "--workload",
            help="IN/OUT@RATE: propose prefill/decode pools (xPyD)"
            " against colocated serving, e.g. 8192/512@16.",
        ),
    ] = None,
    output: OutputOption = OutputFormat.TEXT,
) -> None:
    """GPU memory per rank, KV capacity, host RAM per node and a verdict; or --search.
    On a prefill/decode topology: both pools and the KV transfer."""
    from controlplane.capacity.report import capacity_report
    from controlplane.catalog.edge import find_edge_device
    from controlplane.spec import load_topology

    if file is None and model is not None and find_edge_device(gpu) is not None:
        _edge_capacity(model, precision, gpu, context, output)  # a phone / laptop, not a GPU
        return
    if file is not None:
        topo = load_topology(file)
    elif model is not None:
        doc = _base_spec(model, precision, gpu, 1 if gpus is None else gpus, context, batch)
        topo = _topology_from_flags(doc, engine, mtp, mem_fraction)
        do_search = do_search or gpus is None
    else:
        raise UserError(
            "give a topology file or --model.",
            fix="run `glmctl capacity topologies/glm45-fp8.yaml` or"
            " `glmctl capacity --model glm-4.5 --precision fp8 --gpu h200 --search`.",
        )
    if workload is not None or topo.spec.disaggregation is not None:
        from controlplane.cli.pd_capacity_cmd import pd_capacity_cmd

        pd_capacity_cmd(topo, output, workload, max_gpus, console, _print_report, search=do_search)
        return
    if do_search:
        rows = _search_rows(topo, max_gpus, limit)
        if output is OutputFormat.TEXT:
            _print_search(topo, rows, max_gpus)
        else:
            emit(rows, output)
        return
    report = capacity_report(
        topo,
        _gb_to_bytes("--node-ram-gb", node_ram_gb),
        _gb_to_bytes("--gpu-memory-gb", gpu_memory_gb),
    )
    if output is OutputFormat.TEXT:
        _print_report(report)
    else:
        emit(report.model_dump(), output)


def _edge_capacity(
    model: str, precision: str | None, device: str, context: int | None, output: OutputFormat
) -> None:
    """Footprint lines of `model` on an edge device class (capacity/edge.py)."""
    from controlplane.capacity.edge import EDGE_PRECISIONS, edge_footprint
    from controlplane.catalog import Precision, find_model
    from controlplane.catalog.edge import find_edge_device

    entry, dev = find_model(model), find_edge_device(device)
    assert dev is not None
    if entry is None:
        raise UserError(f"unknown model `{model}`.", fix="pick one from `glmctl models`.")
    offered = ", ".join(p.value for p in EDGE_PRECISIONS)
    try:
        prec = Precision((precision or "int4").lower())
        fp = edge_footprint(entry.arch, prec, dev, context or entry.arch.max_context)
    except ValueError as exc:
        raise UserError(
            f"{entry.display_name} at {precision or 'int4'} on {dev.display_name}: {exc}.",
            fix=f"pass --precision one of {offered}, and a dense model (`glmctl models`).",
        ) from exc
    rows: list[dict[str, Any]] = [
        {"line": x.label, "gb": round(x.bytes / 1e9, 3), "source": x.note} for x in fp.lines
    ]
    if output is not OutputFormat.TEXT:
        summary = {"device": fp.device, "runtime": fp.runtime, "fits": fp.fits}
        gb = {"total_gb": fp.total_bytes / 1e9, "memory_gb": fp.memory_bytes / 1e9}
        emit({**summary, **gb, "lines": rows}, output)
        return
    table = Table(title=f"{entry.display_name} {prec.value} on {dev.display_name} ({fp.runtime})")
    for column in ("memory", "GB", "source"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["line"], f"{row['gb']:.3f}", row["source"])
    console.print(table)
    verdict = "fits" if fp.fits else "does not fit"
    console.print(
        f"Total {fp.total_bytes / 1e9:.2f} GB of {fp.memory_bytes / 1e9:.0f} GB: {verdict}"
        + (
            f"; {fp.on_disk_bytes / 1e9:.2f} GB of embedding read from disk"
            if fp.on_disk_bytes
            else ""
        ),
        highlight=False,
    )


def _gb_to_bytes(flag: str, gb: float | None) -> int | None:
    """Bytes of a `--...-gb` flag; None when not given. Zero or less is a UserError."""
    if gb is None:
        return None
    if gb <= 0:
        raise UserError(
            f"{flag} {gb:g} is not a memory size.", fix=f"pass {flag} a positive number."
        )
    return int(gb * 1e9)


def register(app: typer.Typer) -> None:
    """Add this group's commands to `app`."""
    app.command("capacity")(capacity)
