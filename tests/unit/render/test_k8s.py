"""KubeRay manifests: every shipped topology renders, validates offline (Kubernetes 1.30
strict, KubeRay and prometheus-operator CRDs), holds no secret value, and the committed
manifests/ equal a fresh render."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from controlplane.backends.ray.apps import engine_options
from controlplane.errors import UserError
from controlplane.planner.models import DeploymentPlan
from controlplane.render.k8s import (
    K8sOptions,
    manifest_files,
    manifests,
    observability_catalogue,
)
from controlplane.render.k8s.monitoring import (
    CONFIGMAP_LIMIT_BYTES,
    dashboards_configmap,
    prometheus_rule,
)
from controlplane.render.ray_serve import reference_plan, render_yaml
from controlplane.spec import load_topology
from tests.unit.render.crd_schemas import validate

REPO = Path(__file__).resolve().parents[3]
TOPOLOGIES = sorted((REPO / "topologies").glob("*.yaml"))
BF16 = REPO / "topologies" / "glm45-bf16.yaml"
RULES = {
    "groups": [
        {
            "name": "glmctl-test",
            "rules": [
                {"record": "glmctl:ttft_seconds:p99", "expr": "histogram_quantile(0.99, x)"},
                {
                    "alert": "GlmctlTtftHigh",
                    "expr": "glmctl:ttft_seconds:p99 > 2",
                    "for": "5m",
                    "labels": {"severity": "warning"},
                    "annotations": {"summary": "TTFT p99 above the SLO"},
                },
            ],
        }
    ]
}
DASHBOARDS = {"overview.json": {"title": "glmctl overview", "panels": [], "uid": "glmctl-ov"}}


def _plan(path: Path) -> Any:
    return reference_plan(load_topology(path))


def _by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def _source(path: Path) -> str:
    return str(path.relative_to(REPO))


@pytest.mark.parametrize("path", TOPOLOGIES, ids=lambda p: p.stem)
def test_committed_manifests_match_a_fresh_render(path: Path) -> None:
    deployment = _plan(path)
    folder = REPO / "manifests" / deployment.name
    rule_files, dashboards = observability_catalogue(deployment)
    fresh = manifest_files(deployment, _source(path), rule_files=rule_files, dashboards=dashboards)
    hint = f"run `glmctl render {_source(path)} --target k8s`"
    assert folder.is_dir(), hint
    assert sorted(p.name for p in folder.iterdir()) == sorted(fresh), hint
    for name, text in fresh.items():
        assert (folder / name).read_text() == text, f"stale {name}: {hint}"


@pytest.mark.parametrize("path", TOPOLOGIES, ids=lambda p: p.stem)
def test_every_committed_object_validates(path: Path) -> None:
    folder = REPO / "manifests" / _plan(path).name
    objects = [
        obj
        for file in sorted(folder.glob("*.yaml"))
        if file.name != "kustomization.yaml"
        for obj in yaml.safe_load_all(file.read_text())
    ]
    kinds = {o["kind"] for o in objects}
    assert {"RayService", "Deployment", "Service", "StatefulSet", "NetworkPolicy"} <= kinds
    assert {"PodDisruptionBudget", "ServiceMonitor", "PodMonitor", "PrometheusRule"} <= kinds
    assert "ConfigMap" in kinds  # the dashboards
    for obj in objects:
        validate(obj)


def test_the_validators_reject_unknown_and_mistyped_fields() -> None:
    deployment = _plan(BF16)
    objects = manifests(deployment)
    service = yaml.safe_load(yaml.safe_dump(_by_kind(objects, "RayService")[0]))
    service["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["numOfHost"] = 2
    with pytest.raises(Exception, match="numOfHost"):
        validate(service)
    router = yaml.safe_load(yaml.safe_dump(_by_kind(objects, "Deployment")[0]))
    router["spec"]["replicas"] = "two"
    with pytest.raises(Exception, match=r"replicas|integer|two"):
        validate(router)


@pytest.mark.parametrize("path", TOPOLOGIES, ids=lambda p: p.stem)
def test_worker_group_is_sized_from_the_plan(path: Path) -> None:
    """One worker group per engine group (a PD plan's two pools), each sized from it."""
    deployment = _plan(path)
    (service,) = _by_kind(manifests(deployment), "RayService")
    cluster = service["spec"]["rayClusterConfig"]
    assert len(cluster["workerGroupSpecs"]) == len(deployment.groups)
    auto = any(g.autoscaling is not None for g in deployment.groups)
    assert cluster["enableInTreeAutoscaling"] is auto
    for group, workers in zip(deployment.groups, cluster["workerGroupSpecs"], strict=True):
        _check_worker_group(deployment, group, workers)


def _check_worker_group(deployment: Any, group: Any, workers: dict[str, Any]) -> None:
    assert workers["numOfHosts"] == group.nodes
    assert workers["maxReplicas"] == group.replicas.max
    assert workers["minReplicas"] == group.replicas.min
    container = workers["template"]["spec"]["containers"][0]  # KubeRay: Ray's comes first
    assert container["name"] == "ray-worker"
    limits = container["resources"]["limits"]
    gpus = int(group.bundles[0].get("GPU", 0))
    assert limits.get("nvidia.com/gpu") == (str(gpus) if gpus else None)
    # The pod's memory covers the bundle the plan asks Ray for (host-RAM calculator).
    gib = int(limits["memory"].removesuffix("Gi"))
    assert 0 <= gib * 1024**3 - group.bundles[0]["memory"] < 1024**3
    assert int(workers["rayStartParams"]["memory"]) >= group.bundles[0]["memory"]
    # Every bundle (node rank) fits one worker pod's Ray resources.
    start = workers["rayStartParams"]
    for bundle in group.bundles:
        assert bundle.get("GPU", 0) <= int(start["num-gpus"])
        assert bundle["CPU"] <= int(start["num-cpus"])
    volumes = {v["name"]: v for v in workers["template"]["spec"]["volumes"]}
    assert volumes["dshm"]["emptyDir"]["medium"] == "Memory"
    drain = engine_options(deployment, group=group)["graceful_shutdown_timeout_s"]
    assert workers["template"]["spec"]["terminationGracePeriodSeconds"] > drain


@pytest.mark.parametrize("path", TOPOLOGIES, ids=lambda p: p.stem)
def test_serve_config_is_the_rendered_engine_application(path: Path) -> None:
    """The engine application of `--target ray`, under its stable name, with the replica
    counts only in the deployment's options."""
    from ray.serve.schema import ServeDeploySchema

    deployment = _plan(path)
    (service,) = _by_kind(manifests(deployment), "RayService")
    config = yaml.safe_load(service["spec"]["serveConfigV2"])
    ServeDeploySchema.model_validate(config)
    (app,) = config["applications"]
    ray_app = yaml.safe_load(render_yaml(deployment, _source(path)))["applications"][1]
    assert app["name"] == app["args"]["app_name"] == f"{deployment.name}-engine"
    assert app["import_path"] == ray_app["import_path"]
    assert len(app["deployments"]) == len(ray_app["deployments"]) == len(deployment.groups)
    for options, ray_options in zip(app["deployments"], ray_app["deployments"], strict=True):
        assert options["name"] == ray_options["name"]
        assert options["max_constructor_retry_count"] > ray_options["max_constructor_retry_count"]
        for key in ("num_replicas", "placement_group_bundles", "graceful_shutdown_timeout_s"):
            assert options.get(key) == ray_options.get(key), key
        if "autoscaling_config" in ray_options:
            bounds = ("min_replicas", "max_replicas", "initial_replicas")
            for key in bounds:
                assert options["autoscaling_config"][key] == ray_options["autoscaling_config"][key]
    # The replicas' argument is the plan minus its replica counts, which a replica never
    # reads: it builds the same engine commands.
    args_plan = DeploymentPlan.model_validate(app["args"]["plan"])
    for planned, group in zip(args_plan.groups, deployment.groups, strict=True):
        assert planned.ranks == group.ranks and planned.bundles == group.bundles
        assert planned.replicas.max == 1


def test_selectors_match_the_pods_they_protect() -> None:
    deployment = _plan(BF16)
    objects = manifests(deployment)
    (service,) = _by_kind(objects, "RayService")
    cluster = service["spec"]["rayClusterConfig"]
    ray_pods = [cluster["headGroupSpec"]["template"]["metadata"]["labels"]]
    ray_pods += [g["template"]["metadata"]["labels"] for g in cluster["workerGroupSpecs"]]
    router = _by_kind(objects, "Deployment")[0]["spec"]["template"]["metadata"]["labels"]
    redis = _by_kind(objects, "StatefulSet")[0]["spec"]["template"]["metadata"]["labels"]

    def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in selector.items())

    policies = {p["metadata"]["name"]: p for p in _by_kind(objects, "NetworkPolicy")}
    policy = policies[f"{deployment.name}-redis"]
    assert matches(policy["spec"]["podSelector"]["matchLabels"], redis)
    allowed = [p["podSelector"]["matchLabels"] for p in policy["spec"]["ingress"][0]["from"]]
    for pod in [router, *ray_pods]:
        assert any(matches(a, pod) for a in allowed), pod
    assert not any(matches(a, redis) for a in allowed)
    for svc in _by_kind(objects, "Service"):
        targets = [router, redis]
        assert sum(matches(svc["spec"]["selector"], t) for t in targets) == 1
    router_pdb = [
        p for p in _by_kind(objects, "PodDisruptionBudget") if "router" in p["metadata"]["name"]
    ]
    assert matches(router_pdb[0]["spec"]["selector"]["matchLabels"], router)


SECRET_NAMES = re.compile(r"PASSWORD|TOKEN|SECRET|API_KEY|CREDENTIAL", re.IGNORECASE)


def _env_entries(node: Any) -> list[dict[str, Any]]:
    if isinstance(node, dict):
        found = list(node.get("env", [])) if isinstance(node.get("env"), list) else []
        return found + [e for v in node.values() for e in _env_entries(v)]
    if isinstance(node, list):
        return [e for v in node for e in _env_entries(v)]
    return []


@pytest.mark.parametrize("path", TOPOLOGIES, ids=lambda p: p.stem)
def test_no_secret_value_in_any_manifest(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    planted = "planted-secret-4f1c9a"
    monkeypatch.setenv("GLMCTL_REDIS_URL", f"redis://:{planted}@10.0.0.1:6379/0")
    monkeypatch.setenv("HF_TOKEN", planted)
    deployment = _plan(path)
    files = manifest_files(deployment, _source(path), rule_files=[RULES], dashboards=DASHBOARDS)
    text = "\n".join(files.values())
    assert planted not in text
    assert "kind: Secret" not in text
    # A URL with credentials in it carries them only as a $(VAR) reference.
    for userinfo in re.findall(r"redis://([^@\s]*)@", text):
        assert re.fullmatch(r":\$\([A-Z_]+\)", userinfo), userinfo
    objects = [o for t in files.values() for o in yaml.safe_load_all(t)]
    for entry in _env_entries(objects):
        if SECRET_NAMES.search(entry["name"]):
            assert "value" not in entry and "secretKeyRef" in entry["valueFrom"], entry
    (service,) = _by_kind(objects, "RayService")
    password = service["spec"]["rayClusterConfig"]["gcsFaultToleranceOptions"]["redisPassword"]
    assert set(password) == {"valueFrom"}


def test_external_redis_replaces_the_statefulset() -> None:
    objects = manifests(_plan(BF16), K8sOptions(external_redis="redis.example.internal:6380"))
    assert not _by_kind(objects, "StatefulSet")
    assert [p["metadata"]["name"] for p in _by_kind(objects, "NetworkPolicy")] == ["glm45-bf16-ray"]
    (service,) = _by_kind(objects, "RayService")
    gcs = service["spec"]["rayClusterConfig"]["gcsFaultToleranceOptions"]
    assert gcs["redisAddress"] == "redis.example.internal:6380"
    router = _by_kind(objects, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]
    url = {e["name"]: e.get("value") for e in router["env"]}["GLMCTL_REDIS_URL"]
    assert url == "redis://redis.example.internal:6380/1"  # the password: GLMCTL_REDIS_PASSWORD


def test_prometheus_rule_merges_rule_files_and_refuses_duplicate_groups() -> None:
    deployment = _plan(BF16)
    other = {"groups": [{"name": "glmctl-other", "rules": [{"record": "a:b", "expr": "1"}]}]}
    rule = prometheus_rule(deployment, [RULES, other])
    assert [g["name"] for g in rule["spec"]["groups"]] == ["glmctl-test", "glmctl-other"]
    validate(rule)
    with pytest.raises(UserError, match="glmctl-test"):
        prometheus_rule(deployment, [RULES, RULES])
    broken = {"groups": [{"name": "x", "rules": [{"record": "a", "expr": "1", "fro": "1m"}]}]}
    with pytest.raises(Exception, match="fro"):
        validate(prometheus_rule(deployment, [broken]))


def test_dashboards_configmap_is_labelled_for_the_grafana_sidecar() -> None:
    import json

    deployment = _plan(BF16)
    configmap = dashboards_configmap(deployment, {"overview": DASHBOARDS["overview.json"]})
    validate(configmap)
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(configmap["data"]["overview.json"])["uid"] == "glmctl-ov"
    huge = {"big": {"panels": ["x" * CONFIGMAP_LIMIT_BYTES]}}
    with pytest.raises(UserError, match="ConfigMap"):
        dashboards_configmap(deployment, huge)


def test_render_cli_writes_a_kustomization_and_removes_stale_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from controlplane.cli.main import app

    monkeypatch.chdir(REPO)
    stale = tmp_path / "glm45-bf16" / "old.yaml"
    stale.parent.mkdir()
    stale.write_text("kind: Old\n")
    runner = CliRunner()
    args = ["render", str(BF16), "--target", "k8s", "--out", str(tmp_path)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    folder = tmp_path / "glm45-bf16"
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(
        p.name for p in folder.glob("*.yaml") if p.name != "kustomization.yaml"
    )
    assert not stale.exists()
    bad = runner.invoke(app, [*args, "--external-redis", "redis://x:1"])
    assert bad.exit_code != 0 and "HOST:PORT" in str(bad.exception)


def test_the_router_pod_runs_with_the_topologys_auth_and_limits(tmp_path: Path) -> None:
    from controlplane.render.k8s.services import router_args

    spec = tmp_path / "t.yaml"
    spec.write_text(
        "model: glm-4.5-air\nprecision: fp8\ngpus: 2xH200\nrouter:\n  auth: api_keys\n"
        "  limits: {max_body_bytes: 1000, max_tokens: 512}\n"
    )
    args = router_args(_plan(spec))
    assert args[args.index("--auth") + 1] == "api_keys"
    limits = json.loads(args[args.index("--limits") + 1])
    assert limits["max_body_bytes"] == 1000 and limits["max_tokens"] == 512
