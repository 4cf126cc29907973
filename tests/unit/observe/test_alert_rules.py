"""Every alert fires on synthetic series that break it and stays quiet on healthy ones
(`promtool test rules` over the generated rule files, real Prometheus rule evaluation).

The TTFT and ITL burn-rate alerts run on each engine's real histogram layout (every bucket
bound the engine exports, its labels: tests/unit/observe/engine_layouts.py), SGLang's in
CASES and vLLM's in `test_latency_burn_on_vllm_layout`."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from controlplane.observe.alerts import operational_alerts, runbook_slug
from controlplane.observe.rules import alert_rules, recording_rules
from controlplane.spec.models import SloSpec
from tests.unit.observe.engine_layouts import SGLANG, VLLM, Layout
from tests.unit.observe.pd_cases import PD_CASES

needs_promtool = pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool missing")

ENGINE = 'job="glmctl-engine",deployment="d",model="m",replica="r1",node_rank="0"'
KEY = {"deployment": "d"}
REPLICA = {"deployment": "d", "model": "m", "replica": "r1", "node_rank": "0"}


def _s(series: str, values: str) -> dict[str, str]:
    return {"series": series, "values": values}


def _histogram(
    name: str,
    bounds: tuple[str, ...],
    label_sets: tuple[str, ...],
    values: tuple[float, float],
    per_min: tuple[int, int],
) -> list:
    """A cumulative histogram over every one of `bounds`: each minute, per label set,
    `per_min[0]` observations of `values[0]` and `per_min[1]` of `values[1]`."""
    out = []
    for labels in label_sets:
        series = f"{ENGINE},{labels}"
        for bound in (*bounds, "+Inf"):
            n = sum(k for v, k in zip(values, per_min, strict=True) if v <= float(bound))
            out.append(_s(f'{name}_bucket{{{series},le="{bound}"}}', f"0+{n}x400"))
        out.append(_s(f"{name}_count{{{series}}}", f"0+{sum(per_min)}x400"))
    return out


# SloSpec defaults: TTFT p99 <= 2 s, ITL p99 <= 50 ms. Good observations sit well under
# them, bad ones well over, in both engines' layouts.
def _ttft(good: int, layout: Layout = SGLANG) -> list:  # of 10 a minute, `good` at 0.5 s
    return _histogram(layout.ttft, layout.ttft_le, layout.ttft_label_sets, (0.5, 5.0),
                      (good, 10 - good))  # fmt: skip


def _itl(good: int, layout: Layout = SGLANG) -> list:  # of 10 a minute, `good` at 20 ms
    return _histogram(layout.itl, layout.itl_le, layout.itl_label_sets, (0.02, 0.1),
                      (good, 10 - good))  # fmt: skip


def _requests(bad: int, status: str = "500", outcome: str = "error") -> list:
    """1000 requests a minute, `bad` of them answered with `status` / `outcome`."""
    router = 'job="glmctl-router",deployment="d",route="chat"'
    ok = f'{router},status="200",outcome="ok"'
    failed = f'{router},status="{status}",outcome="{outcome}"'
    return [
        _s(f"glmctl_router_requests_total{{{ok}}}", f"0+{1000 - bad}x400"),
        _s(f"glmctl_router_requests_total{{{failed}}}", f"0+{bad}x400"),
    ]


def _up(job: str, replica: str, values: str) -> dict[str, str]:
    return _s(f'up{{job="{job}",deployment="d",replica="{replica}",instance="{replica}"}}', values)


# alert -> (firing series, quiet series, eval time, labels of the firing alert)
CASES: dict[str, tuple[list, list, str, dict[str, str]]] = {
    "GlmctlEngineReplicaDown": (
        [_s('glmctl_deployment_replicas_wanted{deployment="d"}', "2x10"),
         _up("glmctl-engine", "r1", "1x10"), _up("glmctl-engine", "r2", "1 1 0x8")],
        [_s('glmctl_deployment_replicas_wanted{deployment="d"}', "2x10"),
         _up("glmctl-engine", "r1", "1x10"), _up("glmctl-engine", "r2", "1x10")],
        "5m", KEY,
    ),
    "GlmctlNodeRankDown": (
        [_s('glmctl_replica_rank_up{deployment="d",replica="r1",node_rank="1"}', "1 1 0x8")],
        [_s('glmctl_replica_rank_up{deployment="d",replica="r1",node_rank="1"}', "1x10")],
        "5m", {"deployment": "d", "replica": "r1", "node_rank": "1"},
    ),
    "GlmctlKvCacheSaturated": (
        [_s(f'vllm:kv_cache_usage_perc{{{ENGINE},engine="0"}}', "0.95x20")],
        [_s(f'vllm:kv_cache_usage_perc{{{ENGINE},engine="0"}}', "0.6x20")],
        "15m", {"deployment": "d", "replica": "r1"},
    ),
    "GlmctlQueueGrowing": (
        [_s(f'sglang:num_queue_reqs{{{ENGINE},tp_rank="0"}}', "0+2x30")],
        [_s(f'sglang:num_queue_reqs{{{ENGINE},tp_rank="0"}}', "3x30")],
        "20m", KEY,
    ),
    "GlmctlSpecAcceptanceCollapse": (
        [_s(f'sglang:spec_accept_length{{{ENGINE}}}', "3x360 1.2x60")],
        [_s(f'sglang:spec_accept_length{{{ENGINE}}}', "3x360 2.8x60")],
        "390m", REPLICA,
    ),
    "GlmctlRouterRedisUnreachable": (
        [_s('glmctl_router_redis_up{job="glmctl-router",deployment="d"}', "1 1 0x8")],
        [_s('glmctl_router_redis_up{job="glmctl-router",deployment="d"}', "1x10")],
        "5m", KEY,
    ),
    "GlmctlRouterDown": (
        [_up("glmctl-router", "router", "1 1 0x8")],
        [_up("glmctl-router", "router", "1x10")],
        "5m", {"job": "glmctl-router", "deployment": "d", "replica": "router",
               "instance": "router"},
    ),
    "GlmctlAutoscalerWantsMoreThanClusterHolds": (
        [_s('glmctl_autoscale_desired_replicas{deployment="d"}', "3x20"),
         _s('glmctl_autoscale_max_replicas{deployment="d"}', "2x20")],
        [_s('glmctl_autoscale_desired_replicas{deployment="d"}', "2x20"),
         _s('glmctl_autoscale_max_replicas{deployment="d"}', "2x20")],
        "10m", KEY,
    ),
    # Fast burn: every request misses (budget 1 %, limit 14.4 %); slow burn: 10 % miss
    # (above 6 x 1 %, below 14.4 x 1 %).
    "GlmctlTtftBudgetBurnFast": (_ttft(0), _ttft(10), "20m", KEY),
    "GlmctlTtftBudgetBurnSlow": (_ttft(9), _ttft(10), "60m", KEY),
    "GlmctlItlBudgetBurnFast": (_itl(0), _itl(10), "20m", KEY),
    "GlmctlItlBudgetBurnSlow": (_itl(9), _itl(10), "60m", KEY),
    # availability 0.999: budget 0.1 %; fast limit 1.44 %, slow 0.6 %.
    "GlmctlAvailabilityBudgetBurnFast": (_requests(100), _requests(0), "20m", KEY),
    "GlmctlAvailabilityBudgetBurnSlow": (_requests(10), _requests(0), "60m", KEY),
}  # fmt: skip
CASES.update(PD_CASES)


def _rule_files(tmp_path: Path) -> list[str]:
    files = {"recording.yaml": recording_rules(), "alerts.yaml": alert_rules(SloSpec())}
    for name, data in files.items():
        (tmp_path / name).write_text(yaml.safe_dump(data, sort_keys=False))
    return list(files)


def _labels(labels: dict[str, str]) -> str:
    name = labels.pop("__name__")
    return name + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


def _all_alert_names() -> set[str]:
    groups = alert_rules(SloSpec())["groups"]
    return {r["alert"] for g in groups for r in g["rules"] if "alert" in r}


def test_every_alert_has_a_case_and_a_runbook() -> None:
    assert set(CASES) == _all_alert_names()
    pages = Path(__file__).resolve().parents[3] / "docs" / "reference" / "alerts"
    for name in _all_alert_names():
        page = pages / f"{runbook_slug(name)}.md"
        assert page.exists(), f"no runbook page for {name}: `python -m ops.docs.gen`"


def _severity(alert: str) -> str:
    return next(
        r["labels"]["severity"]
        for g in alert_rules(SloSpec())["groups"]
        for r in g["rules"]
        if r.get("alert") == alert
    )


def _promtool_test(tmp_path: Path, alert: str, series: list, at: str, exp: list) -> None:
    """`exp`: label sets of the firing alerts (ALERTS series: annotations are not compared)."""
    samples = [
        {"labels": _labels({"__name__": "ALERTS", "alertname": alert, "alertstate": "firing", **e}),
         "value": 1}
        for e in exp
    ]  # fmt: skip
    test: dict[str, Any] = {
        "rule_files": _rule_files(tmp_path),
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": series,
                "promql_expr_test": [
                    {
                        "expr": f'ALERTS{{alertname="{alert}"}}',
                        "eval_time": at,
                        "exp_samples": samples,
                    }
                ],
            }
        ],
    }
    path = tmp_path / "test.yaml"
    path.write_text(yaml.safe_dump(test, sort_keys=False))
    done = subprocess.run(
        ["promtool", "test", "rules", str(path)], capture_output=True, text=True, cwd=tmp_path
    )
    assert done.returncode == 0, done.stdout + done.stderr


@needs_promtool
@pytest.mark.parametrize("alert", sorted(CASES))
def test_alert_fires(tmp_path: Path, alert: str) -> None:
    firing, _, at, labels = CASES[alert]
    _promtool_test(tmp_path, alert, firing, at, [{**labels, "severity": _severity(alert)}])


@needs_promtool
@pytest.mark.parametrize("alert", sorted(CASES))
def test_alert_stays_quiet(tmp_path: Path, alert: str) -> None:
    _, quiet, at, _ = CASES[alert]
    _promtool_test(tmp_path, alert, quiet, at, [])


@needs_promtool
def test_fast_burn_stays_quiet_on_a_slow_burn(tmp_path: Path) -> None:
    _promtool_test(tmp_path, "GlmctlTtftBudgetBurnFast", _ttft(9), "60m", [])


def test_operational_alerts_name_what_to_do() -> None:
    for rule in operational_alerts():
        assert rule["annotations"]["summary"] and len(rule["annotations"]["description"]) > 40


# alert -> (series maker, bad count firing it, eval time)
LATENCY = {
    "GlmctlTtftBudgetBurnFast": (_ttft, 0, "20m"),
    "GlmctlTtftBudgetBurnSlow": (_ttft, 9, "60m"),
    "GlmctlItlBudgetBurnFast": (_itl, 0, "20m"),
    "GlmctlItlBudgetBurnSlow": (_itl, 9, "60m"),
}


@needs_promtool
@pytest.mark.parametrize("alert", sorted(LATENCY))
def test_latency_burn_on_vllm_layout(tmp_path: Path, alert: str) -> None:
    make, good, at = LATENCY[alert]
    firing = [{**KEY, "severity": _severity(alert)}]
    _promtool_test(tmp_path, alert, make(good, VLLM), at, firing)
    _promtool_test(tmp_path, alert, make(10, VLLM), at, [])


@needs_promtool
@pytest.mark.parametrize(
    ("status", "outcome"), [("429", "overloaded"), ("200", "midstream_error"), ("503", "error")]
)
def test_availability_counts_overload_and_midstream(
    tmp_path: Path, status: str, outcome: str
) -> None:
    alert = "GlmctlAvailabilityBudgetBurnFast"
    firing = [{**KEY, "severity": _severity(alert)}]
    _promtool_test(tmp_path, alert, _requests(100, status, outcome), "20m", firing)


@needs_promtool
@pytest.mark.parametrize(("status", "outcome"), [("429", "rate_limited"), ("400", "client_error")])
def test_availability_ignores_the_clients_own_failures(
    tmp_path: Path, status: str, outcome: str
) -> None:
    alert = "GlmctlAvailabilityBudgetBurnFast"
    _promtool_test(tmp_path, alert, _requests(100, status, outcome), "20m", [])


def test_latency_rules_select_only_bounds_each_engine_exports() -> None:
    """Every `le` an SLO rule selects is one the engine of that metric name exports
    (needs no promtool: a selector on a bound the engine lacks matches nothing)."""
    exported = {VLLM.ttft: VLLM.ttft_le, VLLM.itl: VLLM.itl_le,
                SGLANG.ttft: SGLANG.ttft_le, SGLANG.itl: SGLANG.itl_le}  # fmt: skip
    groups = alert_rules(SloSpec())["groups"]
    exprs = [r["expr"] for g in groups for r in g["rules"] if "record" in r]
    found = 0
    for expr in exprs:
        for name, le in re.findall(r'([a-z_:]+)_bucket\{le="([^"]+)"\}', expr):
            assert le in exported[name], f'{name} has no bucket le="{le}"'
            found += 1
    assert found >= 8
