"""Topology specs: YAML -> pydantic models -> resolved `Topology` (defaults filled, checked)."""

from controlplane.spec.loader import load_spec, parse_spec
from controlplane.spec.models import EngineKind, KvCacheDtype, SpeculativeAlgorithm, TopologySpec
from controlplane.spec.resolve import Topology, load_topology, resolve
from controlplane.spec.router import RouterPolicy
from controlplane.spec.schema import topology_json_schema

__all__ = [
    "EngineKind",
    "KvCacheDtype",
    "RouterPolicy",
    "SpeculativeAlgorithm",
    "Topology",
    "TopologySpec",
    "load_spec",
    "load_topology",
    "parse_spec",
    "resolve",
    "topology_json_schema",
]
