"""An `engine: trtllm` plan without a GPU: rank 0 runs the simulator (vLLM flavour), and
the plan keeps TensorRT-LLM's three steps as the command a GPU node would run.

Started here as `glmctl apply` starts it (the rank's argv with its placeholders filled),
without Ray; the full apply of this topology was run by hand (README, TensorRT-LLM).
"""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

from controlplane.engines import LaunchCommand
from controlplane.engines.trtllm import script_steps
from controlplane.local.ports import free_port, wait_port
from controlplane.planner import embedded_inventory, plan, plan_summary
from controlplane.spec import load_topology
from tests.conftest import TOPOLOGIES

pytestmark = pytest.mark.integration


def test_trtllm_topology_runs_on_the_simulator_and_plans_three_steps() -> None:
    topology = load_topology(TOPOLOGIES / "chatglm2-6b-trtllm-int8-l40sx1.yaml")
    deployment = plan(topology, embedded_inventory(topology))
    group = deployment.group
    assert (group.engine, group.runtime, group.flavor) == ("trtllm", "sim", "vllm")
    rank = group.ranks[0]
    steps = script_steps(rank.engine_argv[2])
    assert [s[0] for s in steps] == ["python3", "trtllm-build", "trtllm-serve"]
    summary = plan_summary(deployment)
    assert all(f"    {name}" in summary for name in ("convert", "build", "serve"))

    port = free_port()
    values = {"host": "127.0.0.1", "port": str(port), "python": sys.executable}
    command = LaunchCommand(rank.argv, rank.env).resolve(values)
    proc = subprocess.Popen(list(command.argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert wait_port(port, timeout=30), "the simulator did not open its port"
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", trust_env=False) as http:
            assert http.get("/health").status_code == 200
            body = {"model": "chatglm2-6b", "prompt": "a b", "max_tokens": 3}
            assert http.post("/v1/completions", json=body).status_code == 200
            assert "vllm:num_requests_running" in http.get("/metrics").text
    finally:
        proc.terminate()
        proc.wait(10)
