"""`router.auth` and `router.limits` reach the plan; `auth: none` is a plan warning."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from controlplane.errors import UserError
from controlplane.planner import DeploymentPlan, embedded_inventory, plan
from controlplane.spec import load_topology

TOPOLOGY = Path(__file__).resolve().parents[3] / "topologies" / "glm45-air-fp8-h200x1.yaml"


def _plan(tmp_path: Path, router: dict[str, Any]) -> DeploymentPlan:
    """The shipped topology with its router section (if it has one) replaced by `router`."""
    document = yaml.safe_load(TOPOLOGY.read_text())
    document["router"] = router
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    topology = load_topology(path)
    return plan(topology, embedded_inventory(topology))


def test_auth_none_is_a_warning_and_limits_reach_the_plan(tmp_path: Path) -> None:
    open_plan = _plan(tmp_path, {"auth": "none", "limits": {"max_tokens": 512}})
    assert any("router.auth is `none`" in w for w in open_plan.warnings)
    assert open_plan.router.auth == "none"
    assert open_plan.router.limits["max_tokens"] == 512
    default = _plan(tmp_path, {"limits": {"client_idle_timeout": "5s"}})
    assert not any("router.auth" in w for w in default.warnings)
    assert default.router.auth == "auto"
    assert default.router.limits["client_idle_timeout"] == 5.0


def test_unknown_auth_mode_is_a_spec_error(tmp_path: Path) -> None:
    with pytest.raises(UserError) as caught:
        _plan(tmp_path, {"auth": "password"})
    assert "api_keys" in str(caught.value)
