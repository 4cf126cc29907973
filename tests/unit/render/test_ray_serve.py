"""Rendered Ray Serve configs: valid for Serve's own schema and equal to a fresh render."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from controlplane.backends.ray.apps import engine_options
from controlplane.render.ray_serve import ray_serve_config, reference_plan, render_yaml
from controlplane.spec import load_topology

REPO = Path(__file__).resolve().parents[3]
TOPOLOGIES = sorted((REPO / "topologies").glob("*.yaml"))


@pytest.mark.parametrize("path", TOPOLOGIES, ids=lambda p: p.stem)
def test_committed_config_matches_a_fresh_render(path: Path) -> None:
    topology = load_topology(path)
    deployment = reference_plan(topology)
    committed = REPO / "deployments" / f"{deployment.name}.yaml"
    assert committed.exists(), f"run `glmctl render {path.relative_to(REPO)} --target ray`"
    fresh = render_yaml(deployment, str(path.relative_to(REPO)))
    assert committed.read_text() == fresh, f"stale: re-run glmctl render for {path.name}"


@pytest.mark.parametrize("path", TOPOLOGIES, ids=lambda p: p.stem)
def test_config_is_valid_for_ray_serve(path: Path) -> None:
    from ray.serve.schema import ServeDeploySchema

    deployment = reference_plan(load_topology(path))
    config = yaml.safe_load(render_yaml(deployment, path.name))
    ServeDeploySchema.model_validate(config)
    router, engine = config["applications"]
    assert router["route_prefix"] is None and engine["route_prefix"] is None
    # One deployment per engine group (a PD plan's two pools in one app).
    assert len(engine["deployments"]) == len(deployment.groups)
    for options, group in zip(engine["deployments"], deployment.groups, strict=True):
        assert options["name"] == ("EngineGroup-" + group.pd if group.pd else "EngineGroup")
        assert len(options["placement_group_bundles"]) == group.nodes
        assert options["placement_group_strategy"] == group.strategy
        assert options["ray_actor_options"]["num_gpus"] == 0  # the replica fits in bundle 0
    for group in engine["args"]["plan"]["groups"]:
        assert group["runtime"] == group["engine"]  # real engines


def test_autoscaling_bounds_come_from_the_plan() -> None:
    deployment = reference_plan(load_topology(REPO / "topologies" / "glm45-fp8-vllm.yaml"))
    options = engine_options(deployment)
    auto = options["autoscaling_config"]
    bounds = deployment.group.replicas
    assert (auto["min_replicas"], auto["max_replicas"]) == (bounds.min, bounds.max)
    assert "num_replicas" not in options
    assert engine_options(deployment, num_replicas=3)["num_replicas"] == 3
    assert ray_serve_config(deployment)["proxy_location"] == "Disabled"
