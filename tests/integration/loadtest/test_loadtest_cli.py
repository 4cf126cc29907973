"""`glmctl loadtest` end to end: Locust against the simulated GLM-4.5-FP8, verdicts, outputs.

- A topology file target: applied on a private embedded cluster, load-tested through the
  router with a loose SLO (exit 0), deleted; every output is written and the plots hold
  data; TTFT and output tokens agree with the engine's histograms and the simulator's own
  accounting within 10 %.
- A URL target (one simulated engine, no Ray) with a tight SLO: exit 1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from controlplane.engines.sim.server import SimServer
from controlplane.local.ports import free_port
from controlplane.spec import load_topology
from tests.conftest import TOPOLOGIES

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

GLMCTL = [sys.executable, "-c", "from controlplane.cli.main import run; run()"]
OUTPUTS = ("locust.html", "locust_stats.csv", "locust_stats_history.csv", "requests.csv",
           "summary.json", "ttft_cdf.png", "itl_cdf.png", "timeline.png")  # fmt: skip


def _glmctl(
    args: list[str], env: dict[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*GLMCTL, *args], env=env, capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip


def _env(state: Path) -> dict[str, str]:
    env = {**os.environ, "GLMCTL_STATE_DIR": str(state), "COLUMNS": "160"}
    env.pop("RAY_ADDRESS", None)
    env.pop("GLMCTL_REDIS_URL", None)
    return env


def _pixel_spread(path: Path) -> float:
    import matplotlib.image

    return float(matplotlib.image.imread(path).std())


def _assert_outputs(out: Path) -> dict[str, object]:
    for name in OUTPUTS:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    for plot in ("ttft_cdf.png", "itl_cdf.png", "timeline.png"):
        assert _pixel_spread(out / plot) > 0.05, f"{plot} looks blank"
    rows = (out / "requests.csv").read_text().splitlines()
    summary: dict[str, object] = json.loads((out / "summary.json").read_text())
    assert len(rows) - 1 == summary["summary"]["requests"]  # type: ignore[index]
    assert "TTFT" in (out / "locust_stats.csv").read_text()  # custom metrics reached Locust
    return summary


@pytest.mark.slow
def test_topology_target_loose_slo_passes_and_agrees_with_the_engine(tmp_path: Path) -> None:
    spec = yaml.safe_load((TOPOLOGIES / "glm45-fp8.yaml").read_text())
    spec["router"] = {"port": free_port("127.0.0.1"), "replicas": 1}
    topology = tmp_path / "glm45-fp8.yaml"
    topology.write_text(yaml.safe_dump(spec))
    env, out = _env(tmp_path / "state"), tmp_path / "out"
    # Long prompts: TTFT is then mostly prefill, and a few ms of HTTP stay well inside 10 %.
    result = _glmctl(["loadtest", str(topology), "--workload", "summarise", "--users", "4",
                      "--prompt-tokens", "normal:12000,2000", "--output-tokens", "normal:64,16",
                      "--duration", "40s", "--max-requests", "32", "--out", str(out),
                      "--slo", "ttft_p99=30s,itl_p99=1s,availability=0.9"], env, 400)  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "verdict: PASS" in result.stdout and "deleted" in result.stdout
    summary = _assert_outputs(out)
    checks = summary["cross_check"]
    sources = {(c["name"], c["source"]) for c in checks}  # type: ignore[union-attr]
    assert {("ttft_p50_s", "engine histogram"), ("ttft_mean_s", "engine histogram"),
            ("output_tokens", "engine counter"), ("ttft_p50_s", "simulator accounting"),
            ("ttft_count", "simulator accounting")} <= sources  # fmt: skip
    assert all(c["passed"] for c in checks), checks  # type: ignore[union-attr]
    status = _glmctl(["status", "-o", "json"], env, 60)
    assert json.loads(status.stdout)["deployments"] == []


def test_url_target_tight_slo_fails(tmp_path: Path) -> None:
    topo = load_topology(TOPOLOGIES / "glm45-fp8.yaml")
    out = tmp_path / "out"
    with SimServer.start(topo, flavor="vllm") as engine:
        result = _glmctl(["loadtest", engine.url, "--workload", "mix", "--users", "4",
                          "--duration", "60s", "--max-requests", "24", "--out", str(out),
                          "--metrics-url", engine.url, "--slo", "ttft_p99=5ms,itl_p99=1ms"],
                         _env(tmp_path / "state"), 120)  # fmt: skip
    assert result.returncode == 1, result.stdout[-4000:] + result.stderr[-4000:]
    assert "verdict: FAIL" in result.stdout
    summary = _assert_outputs(out)
    verdict = summary["verdict"]
    assert not verdict["passed"]  # type: ignore[index]
    failed = {o["objective"] for o in verdict["objectives"] if not o["passed"]}  # type: ignore[index]
    assert failed == {"ttft_p99", "itl_p99"}
    body = summary["summary"]
    assert body["reasoning_tokens"] > 0 and body["content_tokens"] > 0  # type: ignore[index]
    assert body["completed"] == 24  # type: ignore[index]


def test_sweep_ranks_layouts_and_writes_topologies(tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    result = _glmctl(["sweep", "--model", "glm-4.5", "--precision", "fp8", "--gpu", "H200",
                      "--gpus", "4", "--limit", "1", "--mtp", "on,off", "--step", "10s",
                      "--slo", "ttft_p99=5s,itl_p99=200ms", "--top", "2", "--out", str(out)],
                     _env(tmp_path / "state"), 240)  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    ranking = json.loads((out / "sweep.json").read_text())["ranking"]
    assert sorted(r["mtp"] for r in ranking) == [False, True]
    goodput = [r["goodput_tokens_per_s_per_gpu"] for r in ranking]
    assert goodput == sorted(goodput, reverse=True) and goodput[-1] > 0
    by_mtp = {r["mtp"]: r for r in ranking}
    assert by_mtp[True]["mtp_tokens_per_step"] > by_mtp[False]["mtp_tokens_per_step"] == 1.0
    assert by_mtp[True]["tokens_per_s_per_user"] > by_mtp[False]["tokens_per_s_per_user"]
    assert "wins with" in result.stdout and "Runner-up" in result.stdout
    assert _pixel_spread(out / "pareto.png") > 0.05
    best = load_topology(out / "sweep-1.yaml")
    assert best.spec.gpus.count == 4
    assert (best.speculative is not None) == ranking[0]["mtp"]
