"""The embedded default's Prometheus, end to end: apply a simulated glm45-fp8, drive traffic
through the router, then check every recording rule and dashboard query against the real
Prometheus, evaluate every alert, watch the replica-down alert follow a killed engine and
its replacement, read `glmctl top --once`, and see Prometheus stop with the deployment.

Scrape and rule evaluation every second (GLMCTL_PROMETHEUS_INTERVAL_S=1) keep it short.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from controlplane.observe.pd import pd_recording_rules
from controlplane.spec import load_topology
from tests.integration.observe import promql

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]
REPO = Path(__file__).resolve().parents[3]
NAME = "observe-fp8"
PD_BOARD = "pd-disaggregation.json"
TOPOLOGY = (REPO / "topologies" / "glm45-fp8.yaml").read_text() + (
    f"name: {NAME}\nsimulation:\n  time_scale: 20\n"
)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from controlplane.backends.ray import deploy, manage, monitor
    from controlplane.local.ports import free_port
    from controlplane.settings import get_settings

    state = tmp_path_factory.mktemp("glmctl-observe")
    saved = {k: os.environ.get(k) for k in ("GLMCTL_STATE_DIR", "GLMCTL_PROMETHEUS_INTERVAL_S",
                                            "GLMCTL_PROMETHEUS_PORT")}  # fmt: skip
    os.environ.update(
        GLMCTL_STATE_DIR=str(state),
        GLMCTL_PROMETHEUS_INTERVAL_S="1",
        GLMCTL_PROMETHEUS_PORT=str(free_port()),
    )
    get_settings.cache_clear()
    spec = state / f"{NAME}.yaml"
    spec.write_text(TOPOLOGY + f"router:\n  port: {free_port()}\n")  # 8000 may be busy here
    topology = load_topology(spec)
    try:
        record = deploy.execute_apply(deploy.prepare_apply(topology), topology)
        url = monitor.prometheus_url()
        assert url, (state / "prometheus" / "agent.log").read_text()
        yield {"record": record, "prometheus": url, "state": state}
    finally:
        manage.delete(NAME)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        get_settings.cache_clear()


_query, _wait = promql.query, promql.wait_for  # tests/integration/observe/promql.py


def _chat(router: str, index: int) -> int:
    shared = "You are a careful assistant for the glmctl operations team. " * 8
    body = {
        "model": "glm-4.5-fp8",
        "messages": [{"role": "user", "content": f"{shared} question {index % 5}"}],
        "max_tokens": 24,
        "stream": index % 2 == 0,
    }
    with httpx.stream("POST", f"{router}/v1/chat/completions", json=body, timeout=60) as reply:
        reply.read()
        return reply.status_code


@pytest.fixture(scope="module")
def scraped(deployment: dict[str, Any]) -> dict[str, Any]:
    """Once Prometheus scrapes the engine and router, bounded traffic (40 requests, 4 at a
    time, in 4 rounds a second apart so counters grow between scrapes), then wait until the
    rules have data."""
    router, url = deployment["record"].router_url, deployment["prometheus"]
    _wait(lambda: len(_query(url, 'up{job=~"glmctl-engine|glmctl-router"} == 1')) == 2, 30,
          "engine and router scraped")  # fmt: skip
    codes = []
    with ThreadPoolExecutor(4) as pool:
        for round_ in range(4):
            codes += pool.map(lambda i: _chat(router, i), range(round_ * 10, round_ * 10 + 10))
            time.sleep(1.0)
    assert codes.count(200) == 40, codes
    _wait(lambda: _query(url, "glmctl:engine_ttft_seconds_bucket:rate1m > 0"), 30, "TTFT rates")
    _wait(lambda: _query(url, "glmctl:slo_ttft_bad:ratio_rate5m"), 30, "SLO ratios")
    return deployment


def test_every_recording_rule_returns_data(scraped: dict[str, Any]) -> None:
    from controlplane.observe.prometheus import rule_files
    from controlplane.spec.models import SloSpec

    records = {
        rule["record"]
        for data in rule_files({NAME: SloSpec()}).values()
        for group in data["groups"]
        for rule in group["rules"]
        if "record" in rule
    }
    records -= {rule["record"] for rule in pd_recording_rules()}  # test_pd_prometheus.py
    empty = [name for name in sorted(records) if not _query(scraped["prometheus"], name)]
    assert not empty, f"recording rules without data: {empty}"


def _substitute(expr: str) -> str:
    expr = expr.replace("$__rate_interval", "1m").replace("$deployment", NAME)
    return re.sub(r"\$(model|replica)", ".*", expr)


def test_every_dashboard_panel_returns_data(scraped: dict[str, Any]) -> None:
    from controlplane.observe.dashboards import render_dashboards

    empty = []
    for file, board in render_dashboards().items():
        if file == PD_BOARD:  # a colocated deployment has no PD series: test_pd_prometheus.py
            continue
        for panel in board["panels"]:
            exprs = [_substitute(t["expr"]) for t in panel["targets"]]
            results = [_query(scraped["prometheus"], expr) for expr in exprs]  # all evaluate
            if not any(results):
                empty.append(f"{file}: {panel['title']}")
    assert not empty, f"panels without data: {empty}"


def test_every_alert_expression_evaluates(scraped: dict[str, Any]) -> None:
    url = scraped["prometheus"]
    rules = httpx.get(f"{url}/api/v1/rules", timeout=10).json()["data"]["groups"]
    alerts = [r for g in rules for r in g["rules"] if r["type"] == "alerting"]
    assert len(alerts) >= 14
    assert all(r["health"] == "ok" for g in rules for r in g["rules"]), [
        (r["name"], r.get("lastError")) for g in rules for r in g["rules"] if r["health"] != "ok"
    ]
    for rule in alerts:
        _query(url, rule["query"])
    targets = httpx.get(f"{url}/api/v1/targets", timeout=10).json()["data"]["activeTargets"]
    jobs = sorted(t["labels"]["job"] for t in targets if t["health"] == "up")
    assert jobs == ["glmctl-agent", "glmctl-engine", "glmctl-router"]


def test_top_once_shows_numbers_for_each_replica(scraped: dict[str, Any]) -> None:
    from controlplane.backends.ray.records import replica_records

    env = {**os.environ, "COLUMNS": "200"}
    done = subprocess.run(
        [sys.executable, "-m", "controlplane.cli.main", "top", "--once"],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert scraped["prometheus"] in done.stdout
    status = subprocess.run(
        [sys.executable, "-m", "controlplane.cli.main", "status"],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert f"prometheus {scraped['prometheus']}" in status.stdout, status.stdout + status.stderr
    replicas = replica_records(_redis(), NAME)
    assert replicas
    for replica in replicas:
        line = next(row for row in done.stdout.splitlines() if replica["replica_id"][-12:] in row)
        numbers = re.findall(r"\b\d+(?:\.\d+)?%?", line.split(replica["replica_id"][-12:])[1])
        assert len(numbers) >= 8, line  # rank, up, running, waiting, KV, tok/s, p50, p99


def test_top_live_view_refreshes_and_quits_on_q(scraped: dict[str, Any]) -> None:
    """The interactive mode in a pseudo-terminal: frames arrive, `q` ends it."""
    import pty
    import select

    master, slave = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "controlplane.cli.main", "top", "--interval", "1"],
        stdin=slave, stdout=slave, stderr=slave, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    os.close(slave)
    seen = b""
    deadline = time.monotonic() + 20
    while seen.count(b"glmctl top") < 2 and time.monotonic() < deadline:
        if select.select([master], [], [], 0.5)[0]:
            seen += os.read(master, 65536)
    os.write(master, b"q")
    try:
        assert process.wait(timeout=10) == 0
    finally:
        process.kill()
        os.close(master)
    assert seen.count(b"glmctl top") >= 2, seen[-2000:]  # at least two refreshed frames


def _redis() -> str:
    from controlplane.backends.ray import cluster
    from controlplane.settings import get_settings

    state = cluster.embedded_state(get_settings().state_dir)
    assert state is not None
    return state.redis_url


def _engine_pid(rank_worker_pid: int) -> int:
    children = Path(f"/proc/{rank_worker_pid}/task/{rank_worker_pid}/children").read_text().split()
    assert children, "the rank worker runs no engine process"
    return int(children[0])


def _alert_states(url: str, name: str) -> set[str]:
    alerts = httpx.get(f"{url}/api/v1/alerts", timeout=10).json()["data"]["alerts"]
    return {a["state"] for a in alerts if a["labels"]["alertname"] == name}


def test_replica_down_alert_follows_a_killed_engine(scraped: dict[str, Any]) -> None:
    from controlplane.backends.ray.records import replica_records

    url, redis_url = scraped["prometheus"], _redis()
    (replica,) = replica_records(redis_url, NAME)
    assert not _alert_states(url, "GlmctlEngineReplicaDown")
    os.kill(_engine_pid(int(replica["ranks"][0]["pid"])), signal.SIGKILL)
    started = time.monotonic()
    states = _wait(lambda: _alert_states(url, "GlmctlEngineReplicaDown"), 30, "replica-down")
    assert states <= {"pending", "firing"}
    print(f"replica-down {states} after {time.monotonic() - started:.1f} s")

    def replaced() -> bool:
        now = replica_records(redis_url, NAME)
        return bool(now) and now[0]["replica_id"] != replica["replica_id"]

    _wait(replaced, 90, "a replacement replica")
    _wait(lambda: not _alert_states(url, "GlmctlEngineReplicaDown"), 30, "the alert resolving")
    print(f"resolved {time.monotonic() - started:.1f} s after the kill")


def test_prometheus_stops_with_the_last_deployment(deployment: dict[str, Any]) -> None:
    from controlplane.backends.ray import manage, monitor

    url = deployment["prometheus"]
    assert manage.delete(NAME)
    assert monitor.prometheus_url() is None
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{url}/-/ready", timeout=2)
