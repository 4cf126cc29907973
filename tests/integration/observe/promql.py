"""A real Prometheus for the observe tests: started on given targets and rules, an instant
query (at a given time), and waiting for one."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import httpx

from controlplane.local.ports import free_port
from controlplane.observe import prometheus as prom
from controlplane.spec.models import SloSpec


@contextmanager
def running(
    layout: prom.Layout, targets: Sequence[prom.ScrapeTarget], slos: Mapping[str, SloSpec]
) -> Iterator[str]:
    """A Prometheus scraping `targets` every second with glmctl's rule files for `slos`;
    yields its URL, stops it on exit."""
    prom.write_targets(layout, list(targets))
    prom.write_rules(layout, slos)
    port = free_port()
    process = prom.start(layout, port, 1.0, 1.0)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=20)


def query(url: str, expr: str, at: float | None = None) -> list[dict[str, Any]]:
    """The result vector of `expr` at `url`'s Prometheus, now or at time `at` (the query
    must succeed)."""
    params: dict[str, Any] = {"query": expr} if at is None else {"query": expr, "time": at}
    answer = httpx.get(f"{url}/api/v1/query", params=params, timeout=10).json()
    assert answer["status"] == "success", f"{expr}: {answer}"
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


def wait_for(condition: Any, timeout: float, what: str) -> Any:
    """`condition()`'s first truthy value within `timeout` seconds, polled every 0.5 s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"{what} not seen in {timeout:.0f} s")
