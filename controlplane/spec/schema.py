"""The topology JSON schema, generated from the pydantic models (never written by hand)."""

from __future__ import annotations

from typing import Any

from controlplane.spec.models import EngineKind, TopologySpec

SCHEMA_ID = "https://glmctl.dev/schemas/topology.json"

# Shorthands the models accept in `mode="before"` validators; pydantic cannot see them,
# so the schema states them next to the full form.
SHORTHANDS: dict[str, dict[str, Any]] = {
    "gpus": {"type": "string", "pattern": r"^\s*[0-9]+\s*[xX]\s*\S+\s*$"},  # 4xH200
    "engine": {"type": "string", "enum": [kind.value for kind in EngineKind]},  # vllm
    "replicas": {"type": "integer", "minimum": 0},  # 2
}
# The same shorthands inside a PD pool (spec/disaggregation.py), plus `gpus: 4` there and
# `ib_devices: mlx5_0,mlx5_1` as SGLang's flag spells it.
POOL_SHORTHANDS: dict[tuple[str, str], list[dict[str, Any]]] = {
    ("PoolSpec", "gpus"): [SHORTHANDS["gpus"], {"type": "integer", "minimum": 1}],
    ("PoolSpec", "replicas"): [SHORTHANDS["replicas"]],
    ("NetworkSpec", "ib_devices"): [{"type": "string"}],
}


def topology_json_schema() -> dict[str, Any]:
    """JSON schema of a topology file as a user writes it (aliases, shorthands allowed)."""
    schema = TopologySpec.model_json_schema(by_alias=True, mode="validation")
    for name, shorthand in SHORTHANDS.items():
        prop = schema["properties"][name]
        full = {"$ref": prop.pop("$ref")}
        prop["anyOf"] = [full, shorthand]
    for (model, name), shorthands in POOL_SHORTHANDS.items():
        schema["$defs"][model]["properties"][name]["anyOf"] += shorthands
    schema["$id"] = SCHEMA_ID
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema
