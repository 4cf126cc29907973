"""PNG plots of a load test and of a sweep (matplotlib, Agg backend: no display needed).

- `ttft_cdf.png`, `itl_cdf.png`: empirical CDFs of the raw samples on a log axis, with the
  SLO target and the p50 / p99 marked;
- `timeline.png`: output tokens/s, TTFT p50 / p99 and the engines' queue depth over time;
- `pareto.png` (sweep): tokens/s per user against tokens/s per GPU, the frontier joined.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from controlplane.errors import UserError
from controlplane.loadtest import INSTALL_HINT


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise UserError("plots need matplotlib.", fix=f"run `{INSTALL_HINT}`.") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def cdf_plot(values: list[float], target: float | None, title: str, path: Path) -> Path:
    """Write `cdf_figure(values, target, title)` to `path` as a PNG."""
    plt = _pyplot()
    return _save(cdf_figure(values, target, title), plt, path)


def cdf_figure(values: list[float], target: float | None, title: str) -> Any:
    """An empirical CDF of `values` (seconds, drawn in ms) on a log axis, with the SLO target
    as a dashed line and the p50 / p99 marked; the caller saves or closes the figure."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=100)
    ordered = sorted(v * 1000 for v in values if not math.isnan(v) and v > 0)
    if ordered:
        n = len(ordered)
        ax.step(ordered, [(i + 1) / n for i in range(n)], where="post", lw=2, label="measured")
        for share, colour in ((0.5, "tab:green"), (0.99, "tab:purple")):
            at = percentile_ms(ordered, share)
            ax.plot([at], [share], "o", color=colour, label=f"p{share * 100:g} {at:.3g} ms")
    else:
        ax.text(0.5, 0.5, "no samples", ha="center", transform=ax.transAxes)
    if target is not None:
        shown = f"{target:g} s" if target >= 1 else f"{target * 1000:g} ms"
        ax.axvline(target * 1000, color="tab:red", ls="--", label=f"SLO {shown}")
    ax.axhline(0.99, color="grey", lw=0.8, ls=":")
    low, high = cdf_axes(ordered, target)
    # A log axis: with a loose SLO the samples sit decades below the line, and on a linear
    # axis from 0 they collapse into a vertical stroke at 0.
    ax.set_xscale("log")
    ax.set(xlabel="ms (log scale)", ylabel="share of samples", title=title, ylim=(0, 1.02))
    ax.set_xlim(low, high)
    ax.grid(alpha=0.3, which="both")
    if ordered or target is not None:
        ax.legend(loc="upper left", fontsize=8)
    return fig


def percentile_ms(ordered: list[float], share: float) -> float:
    """The nearest-rank percentile of sorted samples (the value the CDF step reaches `share`)."""
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[rank - 1]


def cdf_axes(ordered_ms: list[float], target: float | None) -> tuple[float, float]:
    """x limits (ms) of a CDF plot: every sample and the SLO line, with a margin (pure)."""
    points = list(ordered_ms) + ([target * 1000] if target else [])
    if not points:
        return 0.1, 1000.0
    return min(points) / 1.5, max(points) * 1.5


def timeline_plot(
    rows: list[dict[str, float]], engine_series: list[dict[str, float]], path: Path
) -> Path:
    """Three panels over time: output tokens/s, TTFT p50 / p99, engine queue depth."""
    plt = _pyplot()
    fig, (tput, lat, queue) = plt.subplots(3, 1, figsize=(8, 8), dpi=100, sharex=True)
    t = [r["t_s"] for r in rows]
    tput.plot(t, [r["output_tokens_per_s"] for r in rows], marker="o", color="tab:blue")
    tput.set(ylabel="output tokens/s", title="throughput, latency and queue over the run")
    lat.plot(t, [r["ttft_p50_s"] * 1000 for r in rows], marker="o", label="TTFT p50")
    lat.plot(t, [r["ttft_p99_s"] * 1000 for r in rows], marker="s", label="TTFT p99")
    lat.set(ylabel="ms")
    lat.legend(loc="upper left")
    if engine_series:
        times = [s["t"] for s in engine_series]  # seconds since the run started
        queue.plot(times, [s["waiting"] for s in engine_series], label="waiting (queue)")
        queue.plot(times, [s["running"] for s in engine_series], label="running")
        queue.legend(loc="upper left")
    else:
        queue.text(0.5, 0.5, "no engine metrics scraped", ha="center", transform=queue.transAxes)
    queue.set(xlabel="seconds since start", ylabel="requests (engines)")
    for ax in (tput, lat, queue):
        ax.grid(alpha=0.3)
    return _save(fig, plt, path)


def pareto_plot(points: list[dict[str, Any]], path: Path) -> Path:
    """Each layout's (tokens/s per GPU, tokens/s per user); the Pareto frontier joined."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=100)
    for p in points:
        colour = "tab:green" if p.get("feasible") else "tab:grey"
        ax.scatter(p["tokens_per_s_per_gpu"], p["tokens_per_s_per_user"], s=60, color=colour)
        ax.annotate(p["label"], (p["tokens_per_s_per_gpu"], p["tokens_per_s_per_user"]),
                    fontsize=7, xytext=(4, 4), textcoords="offset points")  # fmt: skip
    front = pareto_front(points)
    if front:
        ax.plot([p["tokens_per_s_per_gpu"] for p in front],
                [p["tokens_per_s_per_user"] for p in front], color="tab:red", lw=1.5,
                label="Pareto frontier")  # fmt: skip
        ax.legend(loc="upper right")
    ax.set(xlabel="goodput tokens/s per GPU", ylabel="tokens/s per user (1 / TPOT)",
           title="layouts at the SLO (green: meets it)")  # fmt: skip
    ax.grid(alpha=0.3)
    return _save(fig, plt, path)


def pareto_front(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Points no other point beats on both axes, by tokens/s per GPU ascending (pure)."""
    front = [
        p
        for p in points
        if not any(
            q["tokens_per_s_per_gpu"] >= p["tokens_per_s_per_gpu"]
            and q["tokens_per_s_per_user"] >= p["tokens_per_s_per_user"]
            and q is not p
            and (q["tokens_per_s_per_gpu"], q["tokens_per_s_per_user"])
            != (p["tokens_per_s_per_gpu"], p["tokens_per_s_per_user"])
            for q in points
        )
    ]
    return sorted(front, key=lambda p: p["tokens_per_s_per_gpu"])


def _save(fig: Any, plt: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
