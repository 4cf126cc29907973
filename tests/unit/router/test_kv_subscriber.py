"""KvSubscriber bookkeeping that needs no publisher: feeds, engine ids, metrics text."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from controlplane.router.kv_subscriber import KvFeed, KvSubscriber, render_metrics
from controlplane.router.kv_wire import BlockStored, EventBatch

NOBODY = "tcp://127.0.0.1:9"  # connects lazily; nothing is sent before close()


async def test_a_new_engine_id_drops_the_endpoints_blocks() -> None:
    sub = KvSubscriber()
    try:
        sub.watch(KvFeed("e0", NOBODY, engine_id="a"))
        sub.index.apply("e0", EventBatch(0.0, (BlockStored((1, 2), None, (), 16),)))
        sub.watch(KvFeed("e0", NOBODY, engine_id="a"))  # the same feed: nothing changes
        assert sub.index.blocks_of("e0") == 2 and sub.stats.restarts == 0
        sub.watch(KvFeed("e0", NOBODY, engine_id="b"))  # the engine was replaced
        assert sub.index.blocks_of("e0") == 0 and sub.stats.restarts == 1
        sub.index.apply("e0", EventBatch(0.0, (BlockStored((3,), None, (), 16),)))
        sub.unwatch("e0")
        sub.unwatch("e0")  # idempotent
        assert len(sub.index) == 0 and sub.stats.restarts == 1  # removal is not a restart
    finally:
        await sub.close()


async def test_metrics_text_names_every_family() -> None:
    sub = KvSubscriber()
    try:
        sub.index.apply("e1", EventBatch(0.0, (BlockStored((1, 2, 3), None, (), 16),)))
        sub.stats.resyncs = 2
        text = render_metrics(sub.index, sub.stats)
    finally:
        await sub.close()
    assert 'glmctl_router_kv_index_blocks{endpoint="e1"} 3' in text
    assert "glmctl_router_kv_resyncs_total 2" in text
    for family in ("event_lag_seconds", "event_batches_total", "resync_failures_total",
                   "engine_restarts_total"):  # fmt: skip
        assert f"# TYPE glmctl_router_kv_{family} " in text


def test_metrics_text_passes_promtool(tmp_path: Path) -> None:
    """`promtool check metrics` (Prometheus's own linter) accepts the exposition."""
    from controlplane.router.kv_index import KvIndex
    from controlplane.router.kv_subscriber import KvStats

    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (apt-get install prometheus)")
    index = KvIndex()
    index.apply("e1", EventBatch(0.0, (BlockStored((1, 2), None, (), 16),)))
    text = render_metrics(index, KvStats(batches=3))
    done = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                          text=True, timeout=30)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
