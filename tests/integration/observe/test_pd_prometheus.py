"""The PD recording rules and dashboard on a real Prometheus: simulated prefill and decode
replicas (SGLang's and vLLM's flavours), the router's PD route, and the scrape targets the
embedded monitor writes for a PD deployment (`monitor.targets`: vLLM's series name no
pool, so the target carries it). Every PD recording rule and PD panel returns data.

No Ray: the pieces start directly (as tests/integration/observe/test_sglang_slo.py does).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from controlplane.backends.ray import monitor
from controlplane.backends.ray.records import new_record
from controlplane.engines.sim import SimServer
from controlplane.local.redis_server import LocalRedis
from controlplane.observe import prometheus as prom
from controlplane.observe.dashboards import render_dashboards
from controlplane.observe.pd import pd_recording_rules
from controlplane.planner import embedded_inventory, plan
from controlplane.router.registry import EndpointInfo, register_info
from controlplane.router.server import RouterProcesses
from controlplane.spec import load_topology
from controlplane.spec.models import SloSpec
from tests.integration.observe import promql

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]
REPO = Path(__file__).resolve().parents[3]
TOPOLOGY = REPO / "topologies" / "glm45-air-fp8-pd.yaml"
ROLES = ("prefill", "decode")


@pytest.fixture(scope="module", params=["sglang", "vllm"])
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    flavor = request.param
    topo = load_topology(TOPOLOGY)
    record = new_record(plan(topo, embedded_inventory(topo)), "pd-abc", "pd-router", 8123, 1)
    redis = LocalRedis.start()
    started: list[Any] = [redis]
    try:
        replicas = []
        for role in ROLES:
            server = SimServer.start(topo, flavor=flavor, pd_role=role, time_scale=20.0)
            started.append(server)
            port = server.port if role == "prefill" else 0  # the simulator's bootstrap
            info = EndpointInfo(f"{role}-0", server.url, topo.served_model_name, "g", flavor,
                                pd=role, bootstrap_port=port)  # fmt: skip
            register_info(redis.url, info)
            replicas.append({"replica_id": f"{role}-0", "url": server.url, "pd": role})
        router = RouterProcesses.start(redis.url, policy="least_load", scrape_interval=0.3)
        started.append(router)
        record = record.model_copy(update={"router_url": router.url})
        layout = prom.Layout(tmp_path_factory.mktemp(f"prometheus-{flavor}"))
        targets = monitor.targets([record], {record.name: replicas}, "x:1")
        with promql.running(layout, targets, {record.name: SloSpec()}) as url:
            yield {"prometheus": url, "router": router.url, "model": topo.served_model_name,
                   "deployment": record.name}  # fmt: skip
    finally:
        for item in reversed(started):
            item.stop()


@pytest.fixture(scope="module")
def driven(stack: dict[str, Any]) -> dict[str, Any]:
    url = stack["prometheus"]
    promql.wait_for(lambda: len(promql.query(url, 'up{job="glmctl-engine"} == 1')) == 2, 30,
                    "both pools scraped")  # fmt: skip
    for index in range(12):
        content = f"pd question {index} " * 30
        body = {"model": stack["model"], "max_tokens": 8, "stream": index % 2 == 0,
                "messages": [{"role": "user", "content": content}]}  # fmt: skip
        with httpx.stream("POST", f"{stack['router']}/v1/chat/completions", json=body,
                          timeout=60) as reply:  # fmt: skip
            reply.read()
            assert reply.status_code == 200
    return stack


def test_every_pd_recording_rule_returns_data(driven: dict[str, Any]) -> None:
    url = driven["prometheus"]
    records = sorted({rule["record"] for rule in pd_recording_rules()})
    missing = records
    deadline = time.monotonic() + 45
    while missing and time.monotonic() < deadline:
        missing = [name for name in records if not promql.query(url, name)]
        time.sleep(0.5)
    assert not missing, f"PD recording rules without data: {missing}"
    pools = promql.query(url, "glmctl:pd_pool_replicas")
    assert {(r["metric"]["pool"], r["value"][1]) for r in pools} == {("prefill", "1"),
                                                                     ("decode", "1")}  # fmt: skip
    ratio = promql.query(url, "glmctl:pd_prefill_per_decode")
    assert [float(r["value"][1]) for r in ratio] == [1.0]


def test_every_pd_panel_returns_data(driven: dict[str, Any]) -> None:
    url = driven["prometheus"]
    board = render_dashboards()["pd-disaggregation.json"]
    empty = []
    for panel in board["panels"]:
        exprs = [t["expr"].replace("$__rate_interval", "1m") for t in panel["targets"]]
        exprs = [re.sub(r"\$(deployment|model|replica)", ".*", e) for e in exprs]
        if not any(promql.query(url, e) for e in exprs):
            empty.append(panel["title"])
    assert not empty, f"PD panels without data: {empty}"
