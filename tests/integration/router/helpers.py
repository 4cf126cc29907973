"""Small HTTP helpers for router tests (httpx, loopback only)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx


def chat_body(model: str, content: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": content}], **extra}


def served_by(response: httpx.Response) -> str:
    return response.headers["x-glmctl-endpoint"]


@contextmanager
def held_streams(
    url: str, body: dict[str, Any], count: int, headers: dict[str, str] | None = None
) -> Iterator[list[str]]:
    """`count` long streams open through the router while the block runs; yields the
    endpoints serving them (filled as their headers arrive)."""
    endpoints: list[str] = []
    ready = threading.Barrier(count + 1, timeout=30)

    def run() -> None:
        with (
            httpx.Client(timeout=60) as client,
            client.stream(
                "POST", url + "/v1/chat/completions", json=body, headers=headers or {}
            ) as response,
        ):
            endpoints.append(served_by(response))
            ready.wait()
            for _ in response.iter_bytes():
                pass

    threads = [threading.Thread(target=run, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    ready.wait()
    try:
        yield endpoints
    finally:
        for thread in threads:
            thread.join(timeout=60)


def router_outcomes(url: str, wait_for: str = "", timeout: float = 5.0) -> dict[str, float]:
    """Requests counted per outcome on the router's /metrics (router/metrics.py); waits up
    to `timeout` for `wait_for` to appear (a request is counted after its last byte)."""
    import time

    from prometheus_client.parser import text_string_to_metric_families

    deadline = time.monotonic() + timeout
    while True:
        counts: dict[str, float] = {}
        text = httpx.get(url + "/metrics", timeout=10).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "glmctl_router_requests_total":
                    outcome = sample.labels["outcome"]
                    counts[outcome] = counts.get(outcome, 0.0) + sample.value
        if not wait_for or wait_for in counts or time.monotonic() > deadline:
            return counts
        time.sleep(0.1)
