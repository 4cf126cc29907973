"""Fire-and-forget tasks of a router worker, and the router's logger.

A leaf module: app.py, admission.py and collector.py use it, it uses none of them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

_background: set[asyncio.Task[Any]] = set()
log = logging.getLogger("controlplane.router")


def spawn(coroutine: Coroutine[Any, Any, Any]) -> None:
    """Fire and forget, keeping a reference so the task is not collected mid-way."""
    task = asyncio.get_running_loop().create_task(coroutine)
    _background.add(task)
    task.add_done_callback(_background.discard)


async def cancel_all(tasks: list[asyncio.Task[None]], timeout: float = 2.0) -> None:
    """Cancel `tasks` and wait up to `timeout` for them to end."""
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=timeout)
