"""Scrape the engines' `/metrics` during a load test (a thin I/O adapter, stdlib only).

A background thread polls every engine each `interval_s` and keeps a time series of the
summed queue depth (waiting), running requests, KV usage and generated tokens; the first
and last full texts feed the cross-check. `sim_ttfts` reads the simulator's `/sim/ttft`.
Errors are counted, never raised: an engine that stops answering leaves a gap.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from typing import Any

from controlplane.loadtest.crosscheck import GENERATED, counter
from controlplane.router.engine_metrics import parse_engine_metrics

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback, no proxy


def fetch(url: str, timeout: float = 5.0) -> str:
    with _OPENER.open(url, timeout=timeout) as reply:
        return str(reply.read().decode("utf-8", errors="replace"))


class MetricsScraper:
    """`with MetricsScraper(engine_urls) as scraper:` around the run."""

    def __init__(self, engine_urls: list[str], interval_s: float = 1.0) -> None:
        self.urls = [u.rstrip("/") for u in engine_urls]
        self.interval_s = interval_s
        self.series: list[dict[str, float]] = []
        self.before: list[str] = []
        self.after: list[str] = []
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="metrics-scraper", daemon=True)

    def _scrape_all(self) -> list[str]:
        texts = []
        for url in self.urls:
            try:
                texts.append(fetch(f"{url}/metrics"))
            except (OSError, ValueError):
                self.errors += 1
                texts.append("")
        return texts

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            texts = self._scrape_all()
            loads = [parse_engine_metrics(t) for t in texts if t]
            self.series.append(
                {
                    "t": time.time(),
                    "waiting": float(sum(x.waiting for x in loads)),
                    "running": float(sum(x.running for x in loads)),
                    "kv_usage": sum(x.kv_usage for x in loads) / len(loads) if loads else 0.0,
                    "generation_tokens": sum(counter(t, GENERATED) for t in texts),
                }
            )

    def __enter__(self) -> MetricsScraper:
        self.before = self._scrape_all()
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.after = self._scrape_all()


def sim_ttft_counts(engine_urls: list[str]) -> list[int]:
    """How many TTFTs each simulator has recorded (-1 where the engine is not simulated)."""
    counts = []
    for url in engine_urls:
        try:
            counts.append(int(json.loads(fetch(f"{url.rstrip('/')}/sim/stats"))["ttft_count"]))
        except (OSError, ValueError, KeyError):
            counts.append(-1)
    return counts


def sim_ttfts(engine_urls: list[str], starts: list[int]) -> list[float]:
    """The TTFTs each simulator recorded since `starts` (simulated seconds)."""
    values: list[float] = []
    for url, start in zip(engine_urls, starts, strict=True):
        if start < 0:
            continue
        try:
            data = json.loads(fetch(f"{url.rstrip('/')}/sim/ttft?start={start}"))
        except (OSError, ValueError):
            continue
        values += [float(v) for v in data.get("ttft_s", [])]
    return values
