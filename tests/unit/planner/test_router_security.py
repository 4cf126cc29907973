"""`router.auth` and `router.limits` reach the plan; `auth: none` is a plan warning."""

from __future__ import annotations

from pathlib import Path

import pytest

from controlplane.errors import UserError
from controlplane.planner import DeploymentPlan, embedded_inventory, plan
from controlplane.spec import load_topology

TOPOLOGY = Path(__file__).resolve().parents[3] / "topologies" / "glm45-air-fp8-h200x1.yaml"


def _plan(tmp_path: Path, router: str) -> DeploymentPlan:
    path = tmp_path / "t.yaml"
    path.write_text(TOPOLOGY.read_text() + f"\n{router}\n")
    topology = load_topology(path)
    return plan(topology, embedded_inventory(topology))


def test_auth_none_is_a_warning_and_limits_reach_the_plan(tmp_path: Path) -> None:
    if "router:" in TOPOLOGY.read_text():
        pytest.skip("the shipped topology already has a router section")
    open_plan = _plan(tmp_path, "router:\n  auth: none\n  limits:\n    max_tokens: 512")
    assert any("router.auth is `none`" in w for w in open_plan.warnings)
    assert open_plan.router.auth == "none"
    assert open_plan.router.limits["max_tokens"] == 512
    default = _plan(tmp_path, "router:\n  limits:\n    client_idle_timeout: 5s")
    assert not any("router.auth" in w for w in default.warnings)
    assert default.router.auth == "auto"
    assert default.router.limits["client_idle_timeout"] == 5.0


def test_unknown_auth_mode_is_a_spec_error(tmp_path: Path) -> None:
    if "router:" in TOPOLOGY.read_text():
        pytest.skip("the shipped topology already has a router section")
    with pytest.raises(UserError) as caught:
        _plan(tmp_path, "router:\n  auth: password")
    assert "api_keys" in str(caught.value)
