"""Every alert fires on synthetic series that break it and stays quiet on healthy ones
(`promtool test rules` over the generated rule files, real Prometheus rule evaluation)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from controlplane.observe.alerts import operational_alerts, runbook_slug
from controlplane.observe.rules import alert_rules, recording_rules
from controlplane.spec.models import SloSpec

pytestmark = pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool missing")

ENGINE = 'job="glmctl-engine",deployment="d",model="m",replica="r1",node_rank="0"'
KEY = {"deployment": "d"}
REPLICA = {"deployment": "d", "model": "m", "replica": "r1", "node_rank": "0"}


def _s(series: str, values: str) -> dict[str, str]:
    return {"series": series, "values": values}


def _histogram(name: str, bounds: tuple[str, ...], per_min: tuple[int, ...], total: int) -> list:
    """A cumulative histogram growing by `per_min[i]` in bucket `bounds[i]` each minute."""
    out = [
        _s(f'{name}_bucket{{{ENGINE},le="{b}"}}', f"0+{n}x400")
        for b, n in zip(bounds, per_min, strict=True)
    ]
    return [*out, _s(f"{name}_count{{{ENGINE}}}", f"0+{total}x400")]


def _ttft(good: int) -> list:  # of 10 requests a minute, `good` under 1 s, the rest over 2.5 s
    return _histogram("vllm:time_to_first_token_seconds", ("1.0", "2.5"), (good, good), 10)


def _itl(good: int) -> list:
    return _histogram("sglang:inter_token_latency_seconds", ("0.05",), (good,), 10)


def _requests(errors: int) -> list:
    router = 'job="glmctl-router",deployment="d",route="chat"'
    return [
        _s(f'glmctl_router_requests_total{{{router},status="200"}}', f"0+{1000 - errors}x400"),
        _s(f'glmctl_router_requests_total{{{router},status="500"}}', f"0+{errors}x400"),
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


@pytest.mark.parametrize("alert", sorted(CASES))
def test_alert_fires(tmp_path: Path, alert: str) -> None:
    firing, _, at, labels = CASES[alert]
    severity = next(
        r["labels"]["severity"]
        for g in alert_rules(SloSpec())["groups"]
        for r in g["rules"]
        if r.get("alert") == alert
    )
    _promtool_test(tmp_path, alert, firing, at, [{**labels, "severity": severity}])


@pytest.mark.parametrize("alert", sorted(CASES))
def test_alert_stays_quiet(tmp_path: Path, alert: str) -> None:
    _, quiet, at, _ = CASES[alert]
    _promtool_test(tmp_path, alert, quiet, at, [])


def test_fast_burn_stays_quiet_on_a_slow_burn(tmp_path: Path) -> None:
    _promtool_test(tmp_path, "GlmctlTtftBudgetBurnFast", _ttft(9), "60m", [])


def test_operational_alerts_name_what_to_do() -> None:
    for rule in operational_alerts():
        assert rule["annotations"]["summary"] and len(rule["annotations"]["description"]) > 40
