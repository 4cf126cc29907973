"""PD topologies for the tests: the shipped examples, and small variations written inline."""

from __future__ import annotations

from pathlib import Path

import yaml

from controlplane.spec import load_topology, parse_spec, resolve
from controlplane.spec.pd_pools import PdPools, pd_pools
from controlplane.spec.topology import Topology

REPO = Path(__file__).resolve().parents[3]
PD_DIR = REPO / "topologies"
AIR_PD = PD_DIR / "glm45-air-fp8-pd.yaml"
H200_PD = PD_DIR / "glm45-fp8-pd-h200.yaml"


def topology(text: str, name: str = "pd-test") -> Topology:
    """A resolved topology from YAML text."""
    return resolve(parse_spec(text, origin=f"{name}.yaml", default_name=name))


def pools_of(text: str) -> PdPools:
    found = pd_pools(topology(text))
    assert found is not None
    return found


def shipped(path: Path) -> PdPools:
    found = pd_pools(load_topology(path))
    assert found is not None
    return found


def variant(path: Path, **top: object) -> str:
    """The YAML of a shipped PD topology with top-level keys replaced (None deletes)."""
    data = yaml.safe_load(path.read_text())
    for key, value in top.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return yaml.safe_dump(data)


def with_pools(
    path: Path, prefill: dict[str, object], decode: dict[str, object], **top: object
) -> str:
    """A shipped PD topology with fields laid over its pools (and top-level keys); with
    another `engine`, the transfer backend is left to that engine's default."""
    data = yaml.safe_load(variant(path, **top))
    pd = data["disaggregation"]
    if "engine" in top:
        pd.pop("transfer", None)
    pd["prefill"] = {**(pd.get("prefill") or {}), **prefill}
    pd["decode"] = {**(pd.get("decode") or {}), **decode}
    return yaml.safe_dump(data)
