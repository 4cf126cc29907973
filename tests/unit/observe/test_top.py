"""`glmctl top` frames from fixed samples (the builder and renderer are pure)."""

from __future__ import annotations

import math

from rich.console import Console

from controlplane.observe.top import QUERIES, build_frame, render, sparkline

A = {"deployment": "d", "replica": "aaaa", "node_rank": "0"}
B = {"deployment": "d", "replica": "bbbb", "node_rank": "0"}


def _text(frame: object) -> str:
    console = Console(record=True, width=200)
    console.print(render(frame))  # type: ignore[arg-type]
    return console.export_text()


def test_a_frame_shows_each_replica_and_the_router() -> None:
    results = {
        "up": [(A, 1.0), (B, 0.0)],
        "running": [(A, 3.0), (B, 1.0)],
        "waiting": [(A, 2.0)],
        "kv": [(A, 0.42)],
        "tokens": [(A, 120.5)],
        "ttft_p50": [(A, 0.081), (B, math.nan)],
        "ttft_p99": [(A, 0.9)],
        "decisions": [({"deployment": "d", "reason": "prefix"}, 2.5)],
        "prefix_hits": [({"deployment": "d"}, 0.75)],
        "desired": [({"deployment": "d"}, 3.0)],
        "running_replicas": [({"deployment": "d"}, 2.0)],
        "max_replicas": [({"deployment": "d"}, 2.0)],
    }
    frame = build_frame("http://prom", results, {("d", "aaaa", "0"): [0.1, 0.5, 0.9]})
    assert [r.replica for r in frame.replicas] == ["aaaa", "bbbb"]
    assert "ttft_p50" not in frame.replicas[1].values  # NaN (no traffic) is left out
    text = _text(frame)
    row = next(line for line in text.splitlines() if "aaaa" in line)
    for shown in ("3", "2", "42%", "120.5", "81", "900", "▁"):
        assert shown in row, (shown, row)
    assert "prefix 2.5" in text and "75%" in text and "3 / 2 / 2" in text


def test_an_empty_frame_says_so() -> None:
    assert "no engine replica reports yet" in _text(build_frame("redis", {}))


def test_sparkline_scales_to_its_range() -> None:
    assert sparkline([1, 2, 3, 4]) == "▁▃▆█"
    assert sparkline([5, 5]) == "▁▁"
    assert sparkline([]) == ""


def test_queries_cover_what_the_table_shows() -> None:
    assert {"running", "waiting", "kv", "tokens", "ttft_p50", "ttft_p99"} <= set(QUERIES)
