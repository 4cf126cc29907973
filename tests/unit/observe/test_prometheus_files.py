"""What the embedded Prometheus is given: its config, file-SD targets from the registry's
records, rule files per deployment SLO, and the agent's metrics (all without running it)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from controlplane.backends.ray import monitor
from controlplane.backends.ray.records import new_record
from controlplane.catalog.gpus import find_gpu
from controlplane.observe import prometheus as prom
from controlplane.planner import embedded_inventory, plan
from controlplane.spec import load_topology
from controlplane.spec.models import SloSpec

TOPOLOGIES = Path(__file__).resolve().parents[3] / "topologies"


def _record(name: str = "glm45-fp8", replicas: int = 2):  # type: ignore[no-untyped-def]
    topology = load_topology(TOPOLOGIES / f"{name}.yaml")
    planned = plan(topology, embedded_inventory(topology))
    return new_record(planned, f"{name}-abc", f"{name}-router", 8123, replicas)


def _replica(rid: str, port: int, ranks: int = 1) -> dict[str, object]:
    return {
        "replica_id": rid,
        "url": f"http://127.0.0.1:{port}",
        "ranks": [{"rank": r, "host": "127.0.0.1", "pid": 1000 + r} for r in range(ranks)],
    }


def test_config_reads_file_sd_and_rule_files(tmp_path: Path) -> None:
    layout = prom.Layout(tmp_path)
    config = prom.prometheus_config(layout, 1, 2)
    assert config["global"] == {"scrape_interval": "1s", "evaluation_interval": "2s"}
    assert config["rule_files"] == [str(tmp_path / "rules" / "*.yaml")]
    files = [c["file_sd_configs"][0]["files"][0] for c in config["scrape_configs"]]
    assert files == [str(tmp_path / "targets" / f"{job}.json") for job in prom.JOBS]


def test_targets_follow_the_registry(tmp_path: Path) -> None:
    record = _record()
    layout = prom.Layout(tmp_path)
    replicas = {record.name: [_replica("r1", 9001), _replica("r2", 9002)]}
    assert prom.write_targets(layout, monitor.targets([record], replicas, "127.0.0.1:7000"))
    engines = json.loads((layout.sd_dir / "glmctl-engine.json").read_text())
    assert [e["targets"] for e in engines] == [["127.0.0.1:9001"], ["127.0.0.1:9002"]]
    assert engines[0]["labels"] == {
        "deployment": "glm45-fp8", "model": "glm-4.5-fp8", "replica": "r1", "node_rank": "0"
    }  # fmt: skip
    router = json.loads((layout.sd_dir / "glmctl-router.json").read_text())
    assert router[0]["targets"] == ["127.0.0.1:8123"]
    # unchanged registry: nothing rewritten; scale down: the target goes
    assert not prom.write_targets(layout, monitor.targets([record], replicas, "127.0.0.1:7000"))
    replicas = {record.name: [_replica("r1", 9001)]}
    assert prom.write_targets(layout, monitor.targets([record], replicas, "127.0.0.1:7000"))
    assert len(json.loads((layout.sd_dir / "glmctl-engine.json").read_text())) == 1


def test_trtllm_engines_are_scraped_at_health(tmp_path: Path) -> None:
    """trtllm-serve's /metrics is JSON (and drained by each read): Prometheus gets /health."""
    record = _record("chatglm2-6b-trtllm-int8-l40sx1", replicas=1)
    layout = prom.Layout(tmp_path)
    replicas = {record.name: [_replica("r1", 9001)]}
    assert prom.write_targets(layout, monitor.targets([record], replicas, "127.0.0.1:7000"))
    engines = json.loads((layout.sd_dir / "glmctl-engine.json").read_text())
    assert engines[0]["labels"]["__metrics_path__"] == "/health"
    vllm = _record()
    replicas = {vllm.name: [_replica("r1", 9001)]}
    assert prom.write_targets(layout, monitor.targets([vllm], replicas, "127.0.0.1:7000"))
    engines = json.loads((layout.sd_dir / "glmctl-engine.json").read_text())
    assert "__metrics_path__" not in engines[0]["labels"]


def test_rule_files_carry_each_deployments_slo(tmp_path: Path) -> None:
    layout = prom.Layout(tmp_path)
    fast = SloSpec(ttft_p99=0.5, itl_p99=0.025, availability=0.99)
    assert prom.write_rules(layout, {"a": SloSpec(), "b": fast})
    names = sorted(p.name for p in layout.rules_dir.iterdir())
    assert names == ["operations.yaml", "recording.yaml", "slo-a.yaml", "slo-b.yaml"]
    text = (layout.rules_dir / "slo-b.yaml").read_text()
    assert 'le="0.5"' in text and 'le="0.025"' in text and 'deployment="b"' in text
    assert "0.144" in text  # 14.4 x (1 - 0.99)
    assert not prom.write_rules(layout, {"a": SloSpec(), "b": fast})
    assert prom.write_rules(layout, {"a": SloSpec()})  # b deleted: its rules go
    assert not (layout.rules_dir / "slo-b.yaml").exists()
    groups = yaml.safe_load((layout.rules_dir / "operations.yaml").read_text())["groups"]
    assert [g["name"] for g in groups] == ["glmctl-operations"]


def test_agent_metrics_report_replicas_ranks_and_the_plan() -> None:
    record = _record()
    replicas = {record.name: [_replica("r1", 9001, ranks=2)]}
    text = monitor.agent_metrics([record], replicas, lambda pid: pid != 1001, 123.0)
    lines = set(text.splitlines())
    assert 'glmctl_deployment_replicas_wanted{deployment="glm45-fp8"} 2.0' in lines
    assert 'glmctl_deployment_replicas_registered{deployment="glm45-fp8"} 1.0' in lines
    assert 'glmctl_replica_rank_up{deployment="glm45-fp8",node_rank="0",replica="r1"} 1.0' in lines
    assert 'glmctl_replica_rank_up{deployment="glm45-fp8",node_rank="1",replica="r1"} 0.0' in lines
    assert "glmctl_node_memory_available_bytes{} 123.0" in lines
    fraction = record.deployment_plan.capacity["engine_mem_fraction"]
    planned = next(line for line in lines if line.startswith("glmctl_plan_gpu_memory_bytes"))
    h200 = find_gpu("H200")
    assert h200 is not None
    assert float(planned.split()[-1]) == fraction * h200.memory_bytes  # per GPU, not per node


def test_interpolated_slo_threshold_between_buckets() -> None:
    from controlplane.catalog.engine_metrics import HistogramNames
    from controlplane.observe.rules import good_rate

    hist = HistogramNames("x_seconds", (1.0, 2.5), ())
    expr = good_rate(hist, 2.0, "5m", "")
    assert 'le="1.0"' in expr and 'le="2.5"' in expr and "0.666667" in expr  # (2-1)/(2.5-1)
    assert 'le="2.5"' in good_rate(hist, 2.5, "5m", "") and 'le="1.0' not in good_rate(
        hist, 2.5, "5m", ""
    )
    assert "x_seconds_count" in good_rate(hist, 9.0, "5m", "")
