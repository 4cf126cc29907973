"""`glmctl --address` on a real multi-host Ray cluster, run from a host outside it.

The cluster (conftest.py) is three network namespaces started with `ray start`; glmctl
runs in a fourth. Every address used is inside those namespaces.
"""

from __future__ import annotations

import re
import sys
from typing import Any

import pytest

from tests.integration.multihost.conftest import GPUS_PER_HOST, Cluster

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]
BF16 = "topologies/glm45-bf16.yaml"
AIR = "topologies/glm45-air-fp8-h100x2.yaml"


def _deployment(status: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [d for d in status["deployments"] if d["name"] == name]
    return found


def test_apply_spreads_a_two_node_replica_over_two_hosts(namespace_cluster: Cluster) -> None:
    cluster = namespace_cluster
    key = cluster.api_key("glm45-bf16")
    done = cluster.glmctl("apply", BF16, "-y")
    assert done.returncode == 0, done.stdout + done.stderr
    status = cluster.status()
    assert status["cluster"]["embedded"] is False
    hosts = {cluster.lab.hosts[h].address for h in ("gpu1", "gpu2")}
    deployment = _deployment(status, "glm45-bf16")
    assert deployment["status"] == "RUNNING" and deployment["runtime"] == "sim"
    (replica,) = deployment["replica_details"]
    ranks = sorted(replica["ranks"], key=lambda r: r["rank"])
    assert [r["rank"] for r in ranks] == [0, 1]
    assert {r["host"] for r in ranks} == hosts  # one rank per host
    assert all(len(r["gpu_ids"]) == GPUS_PER_HOST for r in ranks)
    # The router listens on the head's cluster address, not on its loopback.
    head = cluster.lab.hosts["head"].address
    assert deployment["endpoint"] == f"http://{head}:8000"
    assert deployment["endpoint"] in done.stdout
    assert cluster.chat(deployment["endpoint"], deployment["model"]).returncode != 0  # 401
    chat = cluster.chat(deployment["endpoint"], deployment["model"], key)
    assert chat.returncode == 0, chat.stderr
    assert chat.stdout.startswith("200 ") and '"choices"' in chat.stdout


def test_scaling_past_the_hosts_is_refused_with_numbers(namespace_cluster: Cluster) -> None:
    done = namespace_cluster.glmctl("scale", "glm45-bf16", "--replicas", "2")
    assert done.returncode == 2, done.stdout + done.stderr
    text = done.stdout + done.stderr
    assert "32 H100 GPUs" in text and "holds 1 replica" in text and "Traceback" not in text


def test_delete_stops_the_router(namespace_cluster: Cluster) -> None:
    cluster = namespace_cluster
    endpoint = _deployment(cluster.status(), "glm45-bf16")["endpoint"]
    done = cluster.glmctl("delete", "glm45-bf16")
    assert done.returncode == 0, done.stdout + done.stderr
    assert cluster.status()["deployments"] == []
    assert cluster.chat(endpoint, "glm-4.5").returncode != 0  # nothing listens any more
    again = cluster.glmctl("delete", "glm45-bf16")  # idempotent
    assert again.returncode == 0, again.stdout + again.stderr


def test_a_topology_larger_than_the_cluster_is_refused_before_anything_starts(
    namespace_cluster: Cluster,
) -> None:
    cluster = namespace_cluster
    done = cluster.glmctl("apply", "topologies/glm45-bf16-128k-h100x32.yaml", "-y")
    assert done.returncode == 2, done.stdout + done.stderr
    text = re.sub(r"\s+", " ", done.stdout + done.stderr)
    assert "need 4 node(s) of H100" in text and "8/8 GPUs free" in text, text
    assert "Traceback" not in text
    assert cluster.status()["deployments"] == []


def test_scale_adds_a_replica_on_the_cluster(namespace_cluster: Cluster) -> None:
    cluster = namespace_cluster
    key = cluster.api_key("glm45-air-fp8-h100x2")
    done = cluster.glmctl("apply", AIR, "-y")
    assert done.returncode == 0, done.stdout + done.stderr
    try:
        scaled = cluster.glmctl("scale", "glm45-air-fp8-h100x2", "--replicas", "2")
        assert scaled.returncode == 0, scaled.stdout + scaled.stderr
        deployment = _deployment(cluster.status(), "glm45-air-fp8-h100x2")
        assert deployment["replicas"]["serving"] == 2 and len(deployment["replica_details"]) == 2
        chat = cluster.chat(deployment["endpoint"], deployment["model"], key)
        assert chat.stdout.startswith("200 "), chat.stdout + chat.stderr
    finally:
        cluster.glmctl("delete", "glm45-air-fp8-h100x2")


FAILING_APPLY = """
import sys
from pathlib import Path
from controlplane.backends.ray import deploy
from controlplane.spec import load_topology

topology = load_topology(Path(sys.argv[1]))
prepared = deploy.prepare_apply(topology)
group = prepared.plan.group
# What a GPU host without SGLang does when rank 0 starts its engine.
rank = group.ranks[0].model_copy(update={"argv": ("{python}", "-c", "import sglang")})
broken = group.model_copy(update={"ranks": (rank, *group.ranks[1:])})
prepared.plan = prepared.plan.model_copy(update={"groups": (broken,)})
try:
    deploy.execute_apply(prepared, topology)
except deploy.ApplyFailed as exc:
    print(str(exc))
    sys.exit(3)
"""


def test_an_engine_failure_on_a_worker_host_is_reported_by_its_first_cause(
    namespace_cluster: Cluster,
) -> None:
    cluster = namespace_cluster
    env = {"GLMCTL_REDIS_URL": cluster.redis_url, "GLMCTL_STATE_DIR": str(cluster.state_dir)}
    env |= {"RAY_ADDRESS": cluster.address, **cluster.lab.ray_env("client")}
    argv = [sys.executable, "-c", FAILING_APPLY, AIR]
    done = cluster.lab.run("client", argv, env, timeout=300)
    assert done.returncode == 3, done.stdout + done.stderr
    hosts = "|".join(re.escape(cluster.lab.hosts[h].address) for h in ("gpu1", "gpu2"))
    pattern = rf"rank 0 on ({hosts}) exited with code 1: ModuleNotFoundError: No module named"
    assert re.search(pattern, done.stdout), done.stdout
    assert "ray::" not in done.stdout and 'File "' not in done.stdout, done.stdout
    assert cluster.status()["deployments"] == []  # what the failed apply started is gone


def test_without_a_redis_url_glmctl_starts_one_on_the_head(namespace_cluster: Cluster) -> None:
    cluster = namespace_cluster
    done = cluster.glmctl("status", "-o", "json", redis=False)
    assert done.returncode == 0, done.stdout + done.stderr
    import json

    url = json.loads(done.stdout)["cluster"]["redis_url"]
    head = cluster.lab.hosts["head"].address
    assert re.fullmatch(rf"redis://:\*\*\*@{re.escape(head)}:\d+/0", url), url
    again = cluster.glmctl("status", "-o", "json", redis=False)  # the same one, found again
    assert json.loads(again.stdout)["cluster"]["redis_url"] == url


def test_apply_without_an_api_key_is_refused_before_anything_starts(
    namespace_cluster: Cluster,
) -> None:
    """The router would listen on the head's cluster address: without a key, apply stops
    with the fix before placing anything (the router itself would also refuse to start)."""
    cluster = namespace_cluster
    done = cluster.glmctl("apply", "topologies/glm45-fp8-h100x8.yaml", "-y")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "no API key exists" in done.stderr and "glmctl keys create" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    names = [d["name"] for d in cluster.status()["deployments"]]  # type: ignore[union-attr]
    assert "glm45-fp8-h100x8" not in names
