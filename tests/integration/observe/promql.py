"""Reading a real Prometheus from the observe tests: an instant query, and waiting for one."""

from __future__ import annotations

import time
from typing import Any

import httpx


def query(url: str, expr: str) -> list[dict[str, Any]]:
    """The result vector of `expr` at `url`'s Prometheus (the query must succeed)."""
    answer = httpx.get(f"{url}/api/v1/query", params={"query": expr}, timeout=10).json()
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
