"""`router.policy: precise_prefix` validates, and says that it routes as prefix_affinity
until engines launched by glmctl publish KV events to the router."""

from __future__ import annotations

from pathlib import Path

from controlplane.spec import load_topology

REPO = Path(__file__).resolve().parents[3]


def test_precise_prefix_warns_that_it_falls_back(tmp_path: Path) -> None:
    text = (REPO / "topologies" / "glm45-fp8.yaml").read_text(encoding="utf-8")
    assert "router:" not in text  # the shipped file leaves the router section at defaults
    path = tmp_path / "precise.yaml"
    path.write_text(text + "router:\n  policy: precise_prefix\n", encoding="utf-8")
    warnings = load_topology(path).warnings
    assert any("precise_prefix" in w and "prefix_affinity" in w for w in warnings), warnings
    plain = load_topology(REPO / "topologies" / "glm45-fp8.yaml").warnings
    assert not any("precise_prefix" in w for w in plain)
