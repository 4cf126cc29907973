"""Committed dashboards, rule files and Grafana provisioning match a fresh render, and the
rule files pass `promtool check rules`."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from controlplane.observe import catalog as cat
from controlplane.observe.dashboards import DASHBOARDS, panel_queries, render_dashboards
from controlplane.observe.grafana import provisioning
from controlplane.observe.rules import alert_rules, recording_rules
from controlplane.spec.models import SloSpec

OPS = Path(__file__).resolve().parents[3] / "ops"


def test_committed_dashboards_match_a_fresh_render() -> None:
    rendered = render_dashboards()
    assert sorted(p.name for p in (OPS / "dashboards").glob("*.json")) == sorted(rendered)
    for name, model in rendered.items():
        committed = json.loads((OPS / "dashboards" / name).read_text())
        assert committed == model, f"ops/dashboards/{name} is stale: `glmctl dashboards render`"


def test_committed_rules_match_a_fresh_render() -> None:
    for name, data in (
        ("recording.yaml", recording_rules()),
        ("alerts.yaml", alert_rules(SloSpec())),
    ):
        committed = yaml.safe_load((OPS / "prometheus" / name).read_text())
        assert committed == data, f"ops/prometheus/{name} is stale: `glmctl rules render`"


def test_committed_provisioning_matches() -> None:
    files = provisioning("http://127.0.0.1:9090", "/var/lib/grafana/dashboards/glmctl")
    for name, data in files.items():
        assert yaml.safe_load((OPS / "grafana" / name).read_text()) == data


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool missing")
def test_promtool_accepts_the_rule_files() -> None:
    files = [str(OPS / "prometheus" / n) for n in ("recording.yaml", "alerts.yaml")]
    done = subprocess.run(["promtool", "check", "rules", *files], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_dashboards_read_only_catalogued_or_recorded_names() -> None:
    known = {m.name for m in cat.all_metrics()} | {"up", "sglang:max_total_num_tokens"}
    known |= {r["record"] for g in recording_rules()["groups"] for r in g["rules"]}
    known |= {r["record"] for g in alert_rules(SloSpec())["groups"] for r in g["rules"]
              if "record" in r}  # fmt: skip
    known |= {f"{m.name}_bucket" for m in cat.all_metrics() if m.kind is cat.Kind.HISTOGRAM}
    functions = {"sum", "by", "rate", "histogram_quantile", "max", "min", "avg", "or", "vector",
                 "le", "increase", "on"}  # fmt: skip
    for board in render_dashboards().values():
        for title, expr in panel_queries(board):
            stripped = re.sub(r"\{[^}]*\}|\[[^]]*\]|\"[^\"]*\"", "", expr)
            names = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", stripped)) - functions
            names -= {"replica", "node_rank", "deployment", "component", "status", "kind",
                      "policy", "reason", "endpoint", "direction"}  # fmt: skip
            assert names <= known, f"{title}: unknown {names - known}"


def test_every_dashboard_has_deployment_and_model_variables() -> None:
    boards = render_dashboards()
    assert len({b["uid"] for b in boards.values()}) == len(DASHBOARDS)
    for board in boards.values():
        names = [v["name"] for v in board["templating"]["list"]]
        assert {"datasource", "deployment", "model"} <= set(names)
        for _, expr in panel_queries(board):
            assert "$deployment" in expr or "glmctl_node_memory" in expr, expr
