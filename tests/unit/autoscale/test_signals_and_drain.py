"""Pure parts around the policy: signals from Redis hashes, TTFT from histogram deltas,
the never-empty peer check, restart backoff, Serve's config, the metrics rendering."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from controlplane.autoscale.drain import (
    BACKOFF_CAP_S,
    MAX_RESTARTS,
    PEER_WAIT_S,
    RESTART_WINDOW_S,
    STOP_S,
    has_peer,
    restart_delay,
    shutdown_budget_s,
)
from controlplane.autoscale.serve_policy import POLICY_PATH, serve_autoscaling_config
from controlplane.autoscale.signals import TtftWindow, quantile_from_buckets, replica_signals
from controlplane.backends.ray.apps import engine_options
from controlplane.planner import embedded_inventory, plan
from controlplane.planner.plan import DRAIN_CAP_S, DRAIN_FLOOR_S, drain_seconds
from controlplane.router.exposition import render_autoscale
from controlplane.router.metrics import LATENCY_BUCKETS
from controlplane.spec import load_topology

REPO = Path(__file__).resolve().parents[3]


def endpoint(model: str = "m", group: str = "app") -> str:
    return json.dumps({"url": "http://x", "model": model, "group": group})


def test_replica_signals_keep_serving_replicas_of_the_app() -> None:
    now = 1000.0
    endpoints = {"a": endpoint(), "b": endpoint(), "c": endpoint(), "d": endpoint(group="old")}
    health = {"b": json.dumps({"ok": False})}
    load = {
        "a": json.dumps({"running": 3, "waiting": 2, "kv_usage": 0.5, "ts": now - 1}),
        "c": json.dumps({"running": 9, "waiting": 9, "kv_usage": 0.9, "ts": now - 60}),
    }
    found = replica_signals(endpoints, health, load, {"x"}, {"a": 7, "c": 1}, "app", now)
    assert [r.endpoint_id for r in found] == ["a", "c"]  # b unhealthy, d another version
    a, c = found
    assert (a.running, a.waiting, a.kv_usage, a.inflight, a.ongoing) == (3, 2, 0.5, 7, 7)
    assert (c.running, c.waiting, c.inflight) == (0, 0, 1)  # stale snapshot: no engine signal
    assert replica_signals(endpoints, {}, load, {"a", "c"}, {}, "app", now)[0].endpoint_id == "b"


def test_ttft_p99_comes_from_the_interval_only() -> None:
    size = len(LATENCY_BUCKETS) + 2
    slow = LATENCY_BUCKETS.index(5)

    def export(fast: int, slow_count: int) -> dict:
        data = [0.0] * size
        data[0], data[slow] = fast, slow_count
        return {"histograms": {"glmctl_router_ttft_seconds": data}}

    window = TtftWindow()
    assert window.update([export(100, 0)]) is None  # first reading: no interval yet
    assert window.update([export(200, 0)]) == LATENCY_BUCKETS[0]
    # 10 new slow first tokens among 10 fast ones -> p99 in the 5 s bucket.
    assert window.update([export(205, 5), export(5, 5)]) == 5.0
    assert window.update([export(1, 0), export(0, 0)]) is None  # restarted router, 1 sample
    assert quantile_from_buckets([0.0] * size, 0.99) is None


def test_has_peer() -> None:
    endpoints = {"a": endpoint(), "b": endpoint(), "c": endpoint(model="other")}
    assert has_peer(endpoints, {}, set(), "a")
    assert not has_peer(endpoints, {}, {"b"}, "a")
    assert not has_peer(endpoints, {"b": json.dumps({"ok": False})}, set(), "a")
    assert not has_peer(endpoints, {}, set(), "c")
    assert not has_peer(endpoints, {}, set(), "missing")


def test_restart_backoff_grows_then_gives_up() -> None:
    now = 10_000.0
    delays = [restart_delay([now - 1] * n, now) for n in range(MAX_RESTARTS + 1)]
    assert delays[0] == 0.0
    assert delays[1:MAX_RESTARTS] == sorted(delays[1:MAX_RESTARTS])
    assert all(d is not None and d <= BACKOFF_CAP_S for d in delays[:MAX_RESTARTS])
    assert delays[MAX_RESTARTS] is None
    old = [now - RESTART_WINDOW_S - 1] * MAX_RESTARTS  # outside the window: forgotten
    assert restart_delay(old, now) == 0.0


def test_drain_timeout_follows_the_topology(tmp_path: Path) -> None:
    base = (REPO / "topologies" / "glm45-fp8.yaml").read_text()
    assert drain_seconds(load_topology(REPO / "topologies" / "glm45-fp8.yaml")) == DRAIN_CAP_S
    short = tmp_path / "short.yaml"  # 2K context at the same decode speed: well under the cap
    short.write_text(base.replace("context_length: 32768", "context_length: 2048"))
    assert DRAIN_FLOOR_S <= drain_seconds(load_topology(short)) < DRAIN_CAP_S
    fast = tmp_path / "fast.yaml"
    fast.write_text(base + "simulation:\n  time_scale: 10\n")
    assert drain_seconds(load_topology(fast)) == pytest.approx(DRAIN_CAP_S / 10)
    given = tmp_path / "given.yaml"
    given.write_text(base + "replicas:\n  min: 1\n  drain_timeout: 42s\n")
    assert drain_seconds(load_topology(given)) == 42.0


def test_serve_runs_glmctl_policy_with_its_own_delays_off() -> None:
    topo = load_topology(REPO / "topologies" / "glm45-fp8-vllm.yaml")
    built = plan(topo, embedded_inventory(topo))
    options = engine_options(built, redis_url="redis://127.0.0.1:1/0")
    auto = options["autoscaling_config"]
    assert (auto["min_replicas"], auto["max_replicas"]) == (2, 4)
    assert auto["upscale_delay_s"] == auto["downscale_delay_s"] == 0.0
    assert auto["policy"]["policy_function"] == POLICY_PATH
    kwargs = auto["policy"]["policy_kwargs"]
    assert kwargs["config"]["ttft_slo_s"] == topo.spec.slo.ttft_p99
    assert kwargs["namespace"] == "glmctl-glm45-fp8-vllm"
    drain = built.group.graceful_shutdown_s
    assert options["graceful_shutdown_timeout_s"] == shutdown_budget_s(drain)
    assert shutdown_budget_s(drain) == PEER_WAIT_S + drain + STOP_S
    assert (
        serve_autoscaling_config(kwargs["config"], "", "ns", "d", "a")["policy"]["policy_kwargs"][
            "redis_url"
        ]
        == ""
    )


def test_render_autoscale_metrics() -> None:
    text = render_autoscale(
        {"glm45": {"desired": 3, "running": 2, "max": 4}}, {"glm45|up|kv_usage": 2.0}
    )
    assert 'glmctl_autoscale_desired_replicas{deployment="glm45"} 3.0' in text
    assert 'glmctl_autoscale_running_replicas{deployment="glm45"} 2.0' in text
    assert 'glmctl_autoscale_max_replicas{deployment="glm45"} 4.0' in text
    assert (
        'glmctl_autoscale_decisions_total{deployment="glm45",direction="up",reason="kv_usage"} 2.0'
        in text
    )
