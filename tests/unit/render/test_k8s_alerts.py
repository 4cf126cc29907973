"""The committed PrometheusRule of a deployment under real Prometheus rule evaluation
(`promtool`): it loads, and the replica-down and rank-down alerts fire on the series the
Kubernetes PodMonitors produce (`up` of the engine and Ray targets), not on the embedded
observe agent's."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool missing")
REPO = Path(__file__).resolve().parents[3]
MONITORING = REPO / "manifests" / "glm45-bf16" / "monitoring.yaml"


def _rule_file(tmp_path: Path) -> Path:
    docs = [d for d in yaml.safe_load_all(MONITORING.read_text()) if d]
    (rule,) = [d for d in docs if d["kind"] == "PrometheusRule"]
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}, sort_keys=False))
    return path


def _labels(labels: dict[str, str]) -> str:
    name = labels.get("__name__", "")
    rest = ",".join(f'{k}="{v}"' for k, v in labels.items() if k != "__name__")
    return f"{name}{{{rest}}}"


def _fires(
    tmp_path: Path, alert: str, series: list[dict[str, Any]], exp: list[dict[str, str]]
) -> None:
    samples = [
        {"labels": _labels({"__name__": "ALERTS", "alertname": alert, "alertstate": "firing", **e}),
         "value": 1}
        for e in exp
    ]  # fmt: skip
    test = {
        "rule_files": [str(_rule_file(tmp_path))],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": series,
                "promql_expr_test": [
                    {
                        "expr": f'ALERTS{{alertname="{alert}"}}',
                        "eval_time": "6m",
                        "exp_samples": samples,
                    }
                ],
            }
        ],
    }
    path = tmp_path / "test.yaml"
    path.write_text(yaml.safe_dump(test, sort_keys=False))
    done = subprocess.run(["promtool", "test", "rules", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_rule_loads(tmp_path: Path) -> None:
    done = subprocess.run(
        ["promtool", "check", "rules", str(_rule_file(tmp_path))], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_replica_with_no_engine_pod_up_fires_one_with_its_rank_0_up_does_not(
    tmp_path: Path,
) -> None:
    up = 'up{{job="glmctl-engine",deployment="glm45-bf16",replica="{r}",node_rank="{n}"}}'
    series = [
        {"series": up.format(r="h100-x8-a", n=0), "values": "0x10"},  # both pods down
        {"series": up.format(r="h100-x8-a", n=1), "values": "0x10"},
        {"series": up.format(r="h100-x8-b", n=0), "values": "1x10"},  # rank 0 serves ...
        {"series": up.format(r="h100-x8-b", n=1), "values": "0x10"},  # ... rank 1: health only
    ]
    exp = [{"deployment": "glm45-bf16", "replica": "h100-x8-a", "severity": "critical"}]
    _fires(tmp_path, "GlmctlEngineReplicaDown", series, exp)


def test_a_pod_whose_ray_agent_is_down_fires_rank_down(tmp_path: Path) -> None:
    up = 'up{{job="glmctl-ray",deployment="glm45-bf16",replica="h100-x8-a",node_rank="{n}"}}'
    series = [
        {"series": up.format(n=0), "values": "1x10"},
        {"series": up.format(n=1), "values": "1 1 0x8"},
    ]
    exp = [
        {
            "deployment": "glm45-bf16",
            "replica": "h100-x8-a",
            "node_rank": "1",
            "severity": "critical",
        }
    ]
    _fires(tmp_path, "GlmctlNodeRankDown", series, exp)
    # The embedded agent's series alone no longer fire it.
    agent = [{"series": 'glmctl_replica_rank_up{deployment="glm45-bf16",replica="x",node_rank="1"}',
              "values": "0x10"}]  # fmt: skip
    _fires(tmp_path, "GlmctlNodeRankDown", agent, [])
