"""`glmctl capacity` for prefill/decode disaggregation: both pools, the transfer, xPyD.

`glmctl capacity PD.yaml` prints each pool's capacity (the colocated report of that pool)
and what PD adds, the KV transfer figures and the PD preflight. `--workload` (with or
without `--search`) proposes xPyD for a workload and compares it with colocated serving:

    glmctl capacity topologies/glm45-fp8-pd-h200.yaml --search --workload 8192/512@16
    glmctl capacity --model glm-4.5-air --precision fp8 --gpu h100 --workload 256/256@16,itl=30ms

A workload is `IN[:IN_P99]/OUT[@RATE][,ttft=DURATION][,itl=DURATION]`: mean (and tail)
prompt tokens, mean output tokens, requests per second (default 1); the bounds default to
the topology's `slo`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from rich.markup import escape
from rich.table import Table

from controlplane.cli.options import OutputFormat, emit
from controlplane.errors import UserError

WORKLOAD = re.compile(r"^\s*(\d+)(?::(\d+))?\s*/\s*(\d+)\s*(?:@\s*([0-9]*\.?[0-9]+))?\s*$")
WORKLOAD_FIX = (
    "write it as IN[:IN_P99]/OUT[@RATE][,ttft=2s][,itl=50ms], e.g. `--workload 8192/512@16`"
    " (8192 prompt tokens, 512 output tokens, 16 requests/s)."
)


def parse_workload(text: str, topo: Any) -> Any:
    """A `Workload` from `--workload` text; the bounds default to the topology's SLO."""
    from controlplane.capacity.pd_sizing import Workload
    from controlplane.spec.fields import parse_duration

    head, *options = text.split(",")
    match = WORKLOAD.match(head)
    if match is None:
        raise UserError(f"--workload `{text}` is not a workload.", fix=WORKLOAD_FIX)
    prompt, tail, output, rate = match.groups()
    bounds = {"ttft": topo.spec.slo.ttft_p99, "itl": topo.spec.slo.itl_p99}
    for option in options:
        key, _, value = option.partition("=")
        if key.strip() not in bounds:
            raise UserError(f"--workload: unknown setting `{option.strip()}`.", fix=WORKLOAD_FIX)
        try:
            bounds[key.strip()] = float(parse_duration(value.strip()))
        except (ValueError, TypeError) as exc:
            raise UserError(
                f"--workload: `{option.strip()}` is not a duration.", fix=WORKLOAD_FIX
            ) from exc
    work = Workload(
        prompt_tokens=int(prompt),
        output_tokens=int(output),
        rate=float(rate or 1.0),
        ttft_s=bounds["ttft"],
        itl_s=bounds["itl"],
        prompt_p99=int(tail) if tail else None,
    )
    if min(work.prompt_tokens, work.output_tokens, work.rate) <= 0:
        raise UserError(f"--workload `{text}`: every number must be above 0.", fix=WORKLOAD_FIX)
    return work


def pd_capacity_cmd(
    topo: Any,
    output: OutputFormat,
    workload: str | None,
    max_gpus: int,
    console: Any,
    print_report: Callable[[Any], None],
    search: bool = False,
) -> None:
    """The PD capacity report of a PD topology, or the xPyD comparison for `workload`;
    `print_report` prints one pool's capacity report as `glmctl capacity` does."""
    if search and workload is None:
        raise UserError(
            "--search on a prefill/decode topology proposes pools for a workload.",
            fix="add `--workload IN/OUT@RATE`, e.g. `--workload 8192/512@16`; without"
            " --search, `glmctl capacity FILE` sizes the declared pools.",
        )
    if workload is not None:
        _compare(topo, parse_workload(workload, topo), max_gpus, output, console)
        return
    from controlplane.capacity.pd_capacity import pd_capacity
    from controlplane.spec.pd_pools import pd_pools

    pools = pd_pools(topo)
    assert pools is not None
    report = pd_capacity(pools)
    if output is not OutputFormat.TEXT:
        emit(report.model_dump(), output)
        return
    for pool in report.pools:
        console.rule(f"{pool.role} pool: {pool.replicas} replica(s) of {pool.report.gpus} GPUs")
        print_report(pool.report)
        _print_pd_additions(pool, console)
    console.rule("KV transfer, prefill -> decode")
    _print_transfer(report.transfer, console)
    _print_findings(report.findings, console)
    style = "green" if report.fits else "red"
    console.print(f"[bold {style}]{escape(report.verdict)}[/]", soft_wrap=True)


def _print_pd_additions(pool: Any, console: Any) -> None:
    if pool.role != "decode" or not pool.reserved_decode_tokens:
        return
    console.print(
        f"PD decode (SGLang): {pool.reserved_decode_tokens} reserved decode tokens per"
        f" admission (--num-reserved-decode-tokens), {pool.prealloc_slots} prealloc slots for"
        f" requests in transfer ({pool.prealloc_slot_bytes / 2**20:.1f} MiB of request slots"
        f" per GPU); KV with the prealloc queue full: {pool.kv_tokens_with_prealloc} of"
        f" {pool.report.kv_token_capacity} tokens.",
        highlight=False,
        soft_wrap=True,
    )


def _print_transfer(transfer: Any, console: Any) -> None:
    console.print(
        f"backend {transfer.backend} over {transfer.transport}, {transfer.link_gbps:g} Gb/s"
        f" per link x {transfer.parallel_links} links in parallel;"
        f" {transfer.kv_bytes_per_token} KV bytes per token; a {transfer.prompt_tokens}-token"
        f" prompt moves {transfer.bytes_per_request / 2**20:.1f} MiB in"
        f" {transfer.seconds_per_request * 1000:.2f} ms at the declared link speed (a lower"
        " bound: no protocol overhead or contention).",
        highlight=False,
        soft_wrap=True,
    )


def _print_findings(findings: list[dict[str, str]], console: Any) -> None:
    for f in findings:
        color = "red" if f["severity"] == "error" else "yellow"
        console.print(
            f"[{color}]{f['severity']}[/] {escape(f['code'])}: {escape(f['message'])}"
            f" To fix: {escape(f['fix'])}",
            soft_wrap=True,
        )


def compare_for_sweep(topo: Any, text: str, max_gpus: int, console: Any) -> None:
    """`glmctl sweep --pd`: the PD / colocated ranking for workload `text` (as --workload)."""
    _compare(topo, parse_workload(text, topo), max_gpus, OutputFormat.TEXT, console)


def _compare(topo: Any, work: Any, max_gpus: int, output: OutputFormat, console: Any) -> None:
    from controlplane.capacity.pd_compare import compare_layouts

    result = compare_layouts(topo, work, max_gpus)
    rows = result.rows()
    if output is not OutputFormat.TEXT:
        emit({"winner": result.winner, "reason": result.reason, "layouts": rows}, output)
        return
    table = Table(
        title=f"{topo.model.display_name} {topo.precision.value} on {topo.gpu.name}:"
        f" {work.prompt_tokens} in (p99 {work.prompt_tail}) / {work.output_tokens} out at"
        f" {work.rate:g} req/s, TTFT p99 <= {work.ttft_s:g} s, ITL p99 <= {work.itl_s * 1000:g} ms"
    )
    for column in ("kind", "layout", "GPUs", "goodput/GPU tok/s", "GPU-s/request", "how"):
        table.add_column(column)
    for r in rows:
        mark = "[bold green]*[/] " if r["winner"] else ""
        table.add_row(
            mark + r["kind"], r["layout"], str(r["gpus"] or "-"), f"{r['goodput_per_gpu']:.1f}",
            str(r["gpu_seconds_per_request"] or "-"), r["detail"],
        )  # fmt: skip
    console.print(table)
    console.print(f"reason: {escape(result.reason)}", highlight=False, soft_wrap=True)
