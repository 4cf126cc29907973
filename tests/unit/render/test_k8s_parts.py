"""Parts of the Kubernetes render added for issue 23: model staging, GPU nodes, worker pods,
network policies, monitoring, the `kubernetes:` section and the rank addresses."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from controlplane.backends.ray.apps import plan_from_args
from controlplane.backends.ray.serve_app import rank_values
from controlplane.catalog import find_model
from controlplane.engines.kv_events_args import KV_PORT_RANGE, kv_ports
from controlplane.errors import UserError
from controlplane.planner.models import DeploymentPlan
from controlplane.render.k8s import fabric_notes, manifests
from controlplane.render.k8s.gpus import gpu_products, product_label
from controlplane.render.k8s.monitoring import K8S_ALERTS, k8s_rule_groups
from controlplane.render.k8s.network import ray_network_policy
from controlplane.render.k8s.staging import HEADROOM
from controlplane.render.k8s.worker_pod import ENGINE_HTTP_PORT, LOG_DIR
from controlplane.render.ray_serve import reference_plan
from controlplane.spec import load_topology
from tests.unit.render.crd_schemas import validate

REPO = Path(__file__).resolve().parents[3]
BF16 = REPO / "topologies" / "glm45-bf16.yaml"  # 2 nodes of 8 x H100, one replica
GIB = 1024**3


def _plan(path: Path, **kubernetes: Any) -> DeploymentPlan:
    if not kubernetes:
        return reference_plan(load_topology(path))
    data = yaml.safe_load(path.read_text())
    data |= {"name": path.stem, "kubernetes": kubernetes}
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / path.name
        out.write_text(yaml.safe_dump(data))
        return reference_plan(load_topology(out))


def _kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def _worker_pod(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (service,) = _kind(objects, "RayService")
    pod: dict[str, Any] = service["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["template"]
    return pod["spec"]


def test_the_models_claim_holds_the_checkpoint_from_its_parameter_count() -> None:
    objects = manifests(_plan(BF16))
    (pvc,) = _kind(objects, "PersistentVolumeClaim")
    size = int(pvc["spec"]["resources"]["requests"]["storage"].removesuffix("Gi")) * GIB
    entry = find_model("glm-4.5")
    assert entry is not None
    bf16 = entry.arch.total_params(include_nextn=True) * 2  # two bytes a value
    assert bf16 < size <= bf16 * HEADROOM + GIB
    assert set(pvc["spec"]["accessModes"]) == {"ReadWriteOnce", "ReadOnlyMany"}
    (job,) = _kind(objects, "Job")
    env = {e["name"]: e for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["GLMCTL_HF_REPO"]["value"] == entry.hf_repo
    assert env["HF_HOME"]["value"] == "/models"
    worker_env = {e["name"]: e.get("value") for e in _worker_pod(objects)["containers"][0]["env"]}
    assert worker_env["HF_HOME"] == "/models" and worker_env["HF_HUB_OFFLINE"] == "1"
    for obj in (pvc, job):
        validate(obj)


def test_host_path_staging_renders_no_claim_or_job() -> None:
    objects = manifests(_plan(BF16, models={"storage": "host_path", "host_path": "/nvme/m"}))
    assert not _kind(objects, "PersistentVolumeClaim") and not _kind(objects, "Job")
    volumes = {v["name"]: v for v in _worker_pod(objects)["volumes"]}
    assert volumes["models"]["hostPath"]["path"] == "/nvme/m"


def test_gpu_nodes_are_chosen_by_the_gpu_operators_product_label() -> None:
    assert product_label("NVIDIA H100 80GB HBM3") == "NVIDIA-H100-80GB-HBM3"
    pod = _worker_pod(manifests(_plan(BF16)))
    (term,) = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ]
    (expression,) = term["matchExpressions"]
    assert expression["key"] == "nvidia.com/gpu.product"
    assert "NVIDIA-H100-80GB-HBM3" in expression["values"]
    assert "glmctl.io/gpu-type" not in yaml.safe_dump(pod)
    assert gpu_products("H100", ["my-h100"]) == ["my-h100"]
    with pytest.raises(UserError, match="gpu_products"):
        gpu_products("MI300X")


def test_worker_pod_ports_probe_prestop_logs_and_nccl() -> None:
    plan = _plan(BF16)
    pod = _worker_pod(manifests(plan))
    ray, logs = pod["containers"]
    ports = {p["name"]: p["containerPort"] for p in ray["ports"]}
    assert ports["engine-http"] == ENGINE_HTTP_PORT and "metrics" in ports
    env = {e["name"]: e.get("value") for e in ray["env"]}
    assert env["GLMCTL_ENGINE_PORT"] == str(ENGINE_HTTP_PORT)
    assert env["NCCL_SOCKET_IFNAME"] == env["GLOO_SOCKET_IFNAME"] == "eth0"
    assert env["NCCL_IB_DISABLE"] == "1"  # two nodes, no RDMA device
    assert "REDIS_PASSWORD" not in env and "GLMCTL_REDIS_PASSWORD" in env
    assert "@" not in env["GLMCTL_REDIS_URL"]
    hook = ray["lifecycle"]["preStop"]["exec"]["command"]
    assert hook[:4] == ["python3", "-m", "controlplane.backends.ray.prestop", plan.name]
    timeout = float(hook[hook.index("--timeout") + 1])
    assert pod["terminationGracePeriodSeconds"] > timeout
    assert logs["name"] == "engine-logs" and LOG_DIR in logs["command"][-1]


def test_rdma_option_adds_the_device_and_ipc_lock() -> None:
    pod = _worker_pod(manifests(_plan(BF16, rdma={"resource": "rdma/ib", "hca": "mlx5"})))
    ray = pod["containers"][0]
    assert ray["resources"]["limits"]["rdma/ib"] == "1"
    assert ray["securityContext"]["capabilities"]["add"] == ["IPC_LOCK"]
    env = {e["name"]: e.get("value") for e in ray["env"]}
    assert env["NCCL_IB_HCA"] == "mlx5" and "NCCL_IB_DISABLE" not in env


def test_only_routers_reach_engines_and_only_ray_pods_reach_the_dashboard() -> None:
    plan = _plan(BF16)
    policy = ray_network_policy(plan)
    validate(policy)
    rules = policy["spec"]["ingress"]
    open_ports = [r for r in rules if "ports" not in r]
    assert [r["from"][0]["podSelector"]["matchLabels"] for r in open_ports] == [
        policy["spec"]["podSelector"]["matchLabels"]
    ]  # every port (the dashboard's 8265 included) only from this deployment's Ray pods
    routers = [r for r in rules if "podSelector" in r["from"][0] and "ports" in r]
    router_rule, operator_rule = routers
    assert operator_rule["from"][0]["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "kuberay-operator"
    }  # its RayService controller asks the head's dashboard and Serve proxy
    assert sorted(p["port"] for p in operator_rule["ports"]) == [8000, 8265]
    assert router_rule["from"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == (
        "router"
    )
    assert [p["port"] for p in router_rule["ports"]] == [ENGINE_HTTP_PORT]
    for rule in rules:
        if rule is not operator_rule:
            assert all(p["port"] != 8265 for p in rule.get("ports", []))


def test_router_is_scraped_as_one_target_with_its_own_labels() -> None:
    plan = _plan(BF16)
    objects = manifests(plan)
    monitor = next(o for o in _kind(objects, "ServiceMonitor"))
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["honorLabels"] is True
    relabel = endpoint["relabelings"]
    address = next(r for r in relabel if r.get("targetLabel") == "__address__")
    assert address["sourceLabels"] == [
        "__meta_kubernetes_service_name",
        "__meta_kubernetes_namespace",
    ]
    assert address["replacement"] == f"$1.$2.svc:{plan.router.port}"
    assert any(r["action"] == "labeldrop" and "pod" in r["regex"] for r in relabel)
    replica = [r for r in relabel if r.get("targetLabel") == "replica"]
    assert replica == [{"action": "replace", "targetLabel": "replica", "replacement": "router"}]
    engines = [
        m for m in _kind(objects, "PodMonitor") if m["metadata"]["name"].endswith("-engines")
    ]
    assert engines[0]["spec"]["podMetricsEndpoints"][0]["port"] == "engine-http"
    for obj in (monitor, *engines):
        validate(obj)


def test_replica_and_rank_alerts_use_metrics_kubernetes_has() -> None:
    groups = [
        {
            "name": "ops",
            "rules": [
                {"alert": "GlmctlNodeRankDown", "expr": "glmctl_replica_rank_up == 0", "for": "1m",
                 "labels": {"severity": "critical"}},
                {"alert": "Other", "expr": "up == 0"},
            ],
        }
    ]  # fmt: skip
    (out,) = k8s_rule_groups(groups)
    rank, other = out["rules"]
    assert rank["expr"] == K8S_ALERTS["GlmctlNodeRankDown"]["expr"]
    assert rank["labels"] == {"severity": "critical"} and other["expr"] == "up == 0"
    assert "glmctl_replica_rank_up" not in str(K8S_ALERTS)


def test_rank_values_give_each_rank_its_own_address() -> None:
    rank0 = {"host": "10.0.0.1", "port": "8100", "dist_host": "10.0.0.1", "dist_port": "8101"}
    rank1 = {"host": "10.0.0.2", "port": "8100", "dist_host": "10.0.0.2", "dist_port": "8101"}
    values = rank_values(rank0, rank1)
    assert values["host"] == "10.0.0.2"  # binds its own node's address ...
    assert values["dist_host"] == "10.0.0.1"  # ... and meets rank 0 for the rendezvous


def test_a_topology_without_the_section_keeps_its_digest() -> None:
    plain = _plan(BF16)
    assert "kubernetes" not in plain.spec
    assert _plan(BF16, image="registry.example/glmctl-sglang:x").spec["kubernetes"]["image"]
    objects = manifests(_plan(BF16, image="registry.example/e:1", router_image="r.example/r:1"))
    images = {c["image"] for c in _worker_pod(objects)["containers"]}
    assert images == {"registry.example/e:1"}
    (router,) = _kind(objects, "Deployment")
    assert router["spec"]["template"]["spec"]["containers"][0]["image"] == "r.example/r:1"


def test_tensor_parallelism_across_nodes_without_rdma_gets_a_note() -> None:
    (note,) = fabric_notes(_plan(BF16))  # TP 16 over 2 nodes of 8
    assert "tensor parallelism 16 spans 2 nodes" in note and "pipeline: 2" in note
    assert fabric_notes(_plan(BF16, rdma={"resource": "rdma/ib"})) == []
    assert fabric_notes(_plan(REPO / "topologies" / "glm45-fp8.yaml")) == []  # one node


def test_render_cli_takes_a_tls_redis(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from controlplane.cli.main import app

    args = ["render", str(BF16), "--target", "k8s", "--out", str(tmp_path)]
    done = CliRunner().invoke(app, [*args, "--external-redis", "rediss://r.example:6380"])
    assert done.exit_code == 0, done.output
    router = (tmp_path / "glm45-bf16" / "router.yaml").read_text()
    assert "value: rediss://r.example:6380/1" in router
    assert not (tmp_path / "glm45-bf16" / "redis.yaml").exists()
    refused = CliRunner().invoke(app, [*args, "--external-redis", "http://r.example"])
    assert refused.exit_code != 0 and "rediss://HOST:PORT" in str(refused.exception)


def test_every_rendered_config_builds_its_plan() -> None:
    """What `engine_builder` / `router_builder` do with a committed config's args (the Ray
    Serve configs leave `origin` out, which the plan model requires)."""
    configs = [yaml.safe_load(p.read_text()) for p in sorted((REPO / "deployments").glob("*.yaml"))]
    for path in sorted((REPO / "manifests").glob("*/rayservice.yaml")):
        (service,) = [d for d in yaml.safe_load_all(path.read_text()) if d]
        configs.append(yaml.safe_load(service["spec"]["serveConfigV2"]))
    assert len(configs) > 40
    for config in configs:
        for app in config["applications"]:
            assert plan_from_args(app["args"]).name


def test_precise_prefix_opens_the_kv_event_ports_to_the_routers_only(tmp_path: Path) -> None:
    data = yaml.safe_load(BF16.read_text()) | {"name": "bf16-precise"}
    data.setdefault("router", {})["policy"] = "precise_prefix"
    path = tmp_path / "bf16-precise.yaml"
    path.write_text(yaml.safe_dump(data))
    policy = ray_network_policy(reference_plan(load_topology(path)))
    validate(policy)
    (router_rule,) = [
        r for r in policy["spec"]["ingress"]
        if r["from"][0].get("podSelector", {}).get("matchLabels", {}).get(
            "app.kubernetes.io/component") == "router"
    ]  # fmt: skip
    ranges = [p for p in router_rule["ports"] if "endPort" in p]
    assert [(p["port"], p["endPort"]) for p in ranges] == [KV_PORT_RANGE]
    for _ in range(20):  # the ports the engines pick lie inside what the policy opens
        ports = kv_ports(4)
        for first in (int(ports["kv_port"]), int(ports["kv_replay_port"])):
            assert KV_PORT_RANGE[0] <= first and first + 3 <= KV_PORT_RANGE[1]
    plain = ray_network_policy(_plan(BF16))
    assert not [p for r in plain["spec"]["ingress"] for p in r.get("ports", []) if "endPort" in p]
