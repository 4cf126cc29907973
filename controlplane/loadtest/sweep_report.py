"""Files of a sweep: sweep.json, sweep.csv, pareto.png and the best layouts as topologies."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import yaml

from controlplane.loadtest import plots
from controlplane.loadtest.sweep import LayoutResult, explain

CSV_COLUMNS = ("layout", "gpus", "mtp", "batch", "sustained_rps", "goodput_tokens_per_s",
               "goodput_tokens_per_s_per_gpu", "tokens_per_s_per_user", "ttft_p99_s",
               "itl_p99_s", "mtp_tokens_per_step", "decode_step_ms", "headroom_gib_per_gpu",
               "kv_full_context_sequences", "limit")  # fmt: skip


def _clean(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def topology_yaml(result: LayoutResult, rank: int) -> str:
    """A ready topology file for one layout, its measured numbers in the header."""
    row = result.row()
    spec = {k: v for k, v in result.layout.spec.items() if k != "simulation"}
    spec["name"] = f"sweep-{rank}-{spec['name']}"[:63].rstrip("-")
    header = (
        f"# Sweep rank {rank}: {row['layout']}\n"
        f"# {row['goodput_tokens_per_s_per_gpu']:.0f} goodput tokens/s per GPU at"
        f" {row['sustained_rps']:.2f} req/s on the simulated engine; {row['limit']}.\n"
    )
    return header + yaml.safe_dump(spec, sort_keys=False)


def write_sweep(
    ranked: list[LayoutResult], out: Path, top: int, meta: dict[str, Any]
) -> list[Path]:
    """Write every file; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    rows = [r.row() for r in ranked]
    doc = {**meta, "ranking": rows, "explanation": explain(ranked)}
    files = [out / "sweep.json", out / "sweep.csv"]
    files[0].write_text(json.dumps(_clean(doc), indent=2))
    with files[1].open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        for row in rows:
            writer.writerow([row[c] for c in CSV_COLUMNS])
    points = [
        {"label": row["layout"], "tokens_per_s_per_gpu": row["goodput_tokens_per_s_per_gpu"],
         "tokens_per_s_per_user": row["tokens_per_s_per_user"],
         "feasible": row["goodput_tokens_per_s_per_gpu"] > 0}
        for row in rows
    ]  # fmt: skip
    files.append(plots.pareto_plot(points, out / "pareto.png"))
    for rank, result in enumerate(ranked[:top], start=1):
        if result.goodput_per_gpu <= 0:
            break
        path = out / f"sweep-{rank}.yaml"
        path.write_text(topology_yaml(result, rank))
        files.append(path)
    return files
