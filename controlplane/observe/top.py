"""`glmctl top`: the pure frame builder and its rich rendering.

A frame is built from query results (label sets and values), wherever they came from:
Prometheus' query API (`QUERIES`, by deployment, replica and node rank) or, when no
Prometheus runs, the router's load snapshots in Redis. Building and rendering do no I/O,
so a frame is testable from fixed samples and the live loop only fetches and redraws.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from rich.console import Group
from rich.table import Table
from rich.text import Text

from controlplane.observe import catalog as cat

Sample = tuple[Mapping[str, str], float]  # (labels, value)
KEY = "deployment, replica, node_rank"
TTFT_BUCKETS = f"sum by ({KEY}, le) (glmctl:engine_ttft_seconds_bucket:rate1m)"
QUERIES = {
    "up": f'up{{job="{cat.JOB_ENGINE}"}}',
    "running": "glmctl:engine_running",
    "waiting": "glmctl:engine_waiting",
    "kv": "glmctl:engine_kv_usage",
    "tokens": "glmctl:engine_generation_tokens:rate1m",
    "ttft_p50": f"histogram_quantile(0.5, {TTFT_BUCKETS})",
    "ttft_p99": f"histogram_quantile(0.99, {TTFT_BUCKETS})",
    "decisions": "sum by (deployment, reason) (glmctl:router_decisions:rate1m)",
    "prefix_hits": "sum by (deployment) (rate(glmctl_router_prefix_blocks_matched_total[1m]))"
    " / sum by (deployment) (rate(glmctl_router_prefix_blocks_total[1m]))",
    "desired": "max by (deployment) (glmctl_autoscale_desired_replicas)",
    "running_replicas": "max by (deployment) (glmctl_autoscale_running_replicas)",
    "max_replicas": "max by (deployment) (glmctl_autoscale_max_replicas)",
}
HISTORY_QUERY = QUERIES["ttft_p99"]  # the sparkline column, as a range query
SPARKS = "▁▂▃▄▅▆▇█"


@dataclass
class ReplicaRow:
    deployment: str
    replica: str
    node_rank: str
    values: dict[str, float] = field(default_factory=dict)
    history: list[float] = field(default_factory=list)


@dataclass
class DeploymentRow:
    name: str
    decisions: dict[str, float] = field(default_factory=dict)  # reason -> per second
    values: dict[str, float] = field(default_factory=dict)


@dataclass
class Frame:
    source: str  # where the numbers came from (Prometheus URL, or "redis")
    replicas: list[ReplicaRow]
    deployments: list[DeploymentRow]


def _finite(value: float) -> bool:
    return not (math.isnan(value) or math.isinf(value))


def build_frame(
    source: str,
    results: Mapping[str, Sequence[Sample]],
    history: Mapping[tuple[str, str, str], Sequence[float]] | None = None,
) -> Frame:
    """A frame from query results keyed like `QUERIES` (missing keys are fine)."""
    rows: dict[tuple[str, str, str], ReplicaRow] = {}
    deployments: dict[str, DeploymentRow] = {}
    for key, samples in results.items():
        for labels, value in samples:
            name = labels.get(cat.DEPLOYMENT, "")
            if not _finite(value) or not name:
                continue
            if cat.REPLICA in labels:
                ident = (name, labels[cat.REPLICA], labels.get(cat.NODE_RANK, "0"))
                rows.setdefault(ident, ReplicaRow(*ident)).values[key] = value
                continue
            row = deployments.setdefault(name, DeploymentRow(name))
            if key == "decisions":
                reason = labels.get("reason", "?")
                row.decisions[reason] = row.decisions.get(reason, 0.0) + value
            else:
                row.values[key] = value
    for ident, replica in rows.items():
        replica.history = [v for v in (history or {}).get(ident, ()) if _finite(v)]
        deployments.setdefault(ident[0], DeploymentRow(ident[0]))
    return Frame(
        source,
        sorted(rows.values(), key=lambda r: (r.deployment, r.replica, r.node_rank)),
        sorted(deployments.values(), key=lambda d: d.name),
    )


def sparkline(values: Iterable[float], width: int = 16) -> str:
    """Values as block characters, scaled to their own range (last `width` values)."""
    points = list(values)[-width:]
    if not points:
        return ""
    low, high = min(points), max(points)
    span = high - low or 1.0
    return "".join(
        SPARKS[min(len(SPARKS) - 1, int((v - low) / span * len(SPARKS)))] for v in points
    )


def _num(values: Mapping[str, float], key: str, fmt: str = "{:.0f}") -> str:
    return fmt.format(values[key]) if key in values else "-"


def _ms(values: Mapping[str, float], key: str) -> str:
    return f"{values[key] * 1000:.0f}" if key in values else "-"


def replica_name(label: str) -> str:
    """A replica as the table shows it: its id's tail, after its pool in a PD deployment
    (replica labels `prefill-<id>` / `decode-<id>`, backends/ray/pd_replica.py)."""
    pool, sep, rest = label.partition("-")
    if sep and pool in ("prefill", "decode"):
        return f"{pool} {rest[-12:]}"
    return label[-12:]


def replica_table(frame: Frame) -> Table:
    table = Table("deployment", "replica", "rank", "up", "running", "waiting", "KV",
                  "tok/s", "TTFT p50 ms", "TTFT p99 ms", "p99 trend", title="replicas")  # fmt: skip
    for row in frame.replicas:
        v = row.values
        table.add_row(
            row.deployment, replica_name(row.replica), row.node_rank, _num(v, "up"),
            _num(v, "running"), _num(v, "waiting"), _num(v, "kv", "{:.0%}"),
            _num(v, "tokens", "{:.1f}"), _ms(v, "ttft_p50"), _ms(v, "ttft_p99"),
            sparkline(row.history),
        )  # fmt: skip
    return table


def deployment_table(frame: Frame) -> Table:
    scaling_title = "autoscaler wants / runs / cluster holds"
    table = Table("deployment", "router decisions/s by reason", "prefix hit", scaling_title,
                  title="routers and scaling")  # fmt: skip
    for row in frame.deployments:
        decisions = ", ".join(f"{r} {v:.1f}" for r, v in sorted(row.decisions.items())) or "-"
        v = row.values
        scaling = "-"
        if "desired" in v:
            scaling = (
                f"{_num(v, 'desired')} / {_num(v, 'running_replicas')} / {_num(v, 'max_replicas')}"
            )
        table.add_row(row.name, decisions, _num(v, "prefix_hits", "{:.0%}"), scaling)
    return table


def render(frame: Frame) -> Group:
    """The whole frame as one rich renderable."""
    header = Text(f"glmctl top  ·  source: {frame.source}  ·  q quits", style="bold")
    if not frame.replicas:
        return Group(header, Text("no engine replica reports yet"))
    return Group(header, replica_table(frame), deployment_table(frame))
