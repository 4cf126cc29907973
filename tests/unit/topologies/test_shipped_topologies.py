"""Every shipped topology validates, matches the generated JSON schema, and the set covers
each published GLM-4.5 layout of the model card."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from controlplane.catalog import BYTES_PER_VALUE, Precision
from controlplane.spec import load_topology, parse_spec, resolve, topology_json_schema
from tests.unit.cli.helpers import CliResult

REPO = Path(__file__).resolve().parents[3]
TOPOLOGIES = sorted((REPO / "topologies").glob("*.yaml"))
IDS = [p.stem for p in TOPOLOGIES]


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    schema = topology_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _errors(validator: Any, data: Any) -> list[str]:
    return [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(data)
    ]


def test_topologies_are_shipped() -> None:
    assert len(TOPOLOGIES) >= 17


@pytest.mark.parametrize("path", TOPOLOGIES, ids=IDS)
def test_shipped_topology_validates(path: Path) -> None:
    topo = load_topology(path)
    assert topo.name == path.stem
    assert topo.tp * topo.pp * topo.dp == topo.gpus_per_replica
    assert topo.context_length <= topo.arch.max_context


@pytest.mark.parametrize("path", TOPOLOGIES, ids=IDS)
def test_raw_yaml_matches_json_schema(path: Path, validator: Any) -> None:
    assert _errors(validator, yaml.safe_load(path.read_text())) == []


@pytest.mark.parametrize("path", TOPOLOGIES, ids=IDS)
def test_resolved_spec_from_glmctl_show_matches_json_schema(
    path: Path, validator: Any, glmctl: Callable[..., CliResult]
) -> None:
    result = glmctl("show", path, "-o", "json")
    assert result.code == 0, result.err
    assert _errors(validator, json.loads(result.out)) == []


@pytest.mark.parametrize("path", TOPOLOGIES, ids=IDS)
def test_resolved_spec_resolves_to_itself(path: Path) -> None:
    """`glmctl show` output is a spec too: loading it again changes nothing."""
    topo = load_topology(path)
    shown = yaml.safe_dump(topo.spec.model_dump(mode="json", by_alias=True, exclude_none=True))
    local = topo.model if topo.spec.model is None else None  # a model_config, as loaded
    again = resolve(parse_spec(shown, "shown.yaml"), local)
    assert again.spec == topo.spec


def test_schema_rejects_what_the_models_reject(validator: Any) -> None:
    good = {"model": "glm-4.5", "gpus": {"type": "H200", "count": 4}}
    assert _errors(validator, good) == []
    assert _errors(validator, {**good, "gpus": "4xH200", "engine": "vllm", "replicas": 2}) == []
    assert _errors(validator, {**good, "contxt_length": 8})  # unknown key
    assert _errors(validator, {**good, "precision": "fp9"})
    assert _errors(validator, {**good, "gpus": {"type": "H200", "count": 0}})
    assert _errors(validator, {**good, "engine": "vllm2"})
    assert _errors(validator, {**good, "name": "Bad_Name"})


# ----- the model card's published layouts ----------------------------------------------------
# zai-org/GLM-4.5 model card, "System requirements" (shared/reference/glm45-deployment.md):
# minimum: GLM-4.5 BF16 H100 x16 / H200 x8, FP8 H100 x8 / H200 x4; Air BF16 H100 x4 /
# H200 x2, FP8 H100 x2 / H200 x1. Full 128K context: GLM-4.5 BF16 H100 x32 / H200 x16, FP8
# H100 x16 / H200 x8; Air BF16 H100 x8 / H200 x4, FP8 H100 x4 / H200 x2.
CARD = [
    ("glm-4.5", "bf16", "H100", 16, 32),
    ("glm-4.5", "bf16", "H200", 8, 16),
    ("glm-4.5", "fp8", "H100", 8, 16),
    ("glm-4.5", "fp8", "H200", 4, 8),
    ("glm-4.5-air", "bf16", "H100", 4, 8),
    ("glm-4.5-air", "bf16", "H200", 2, 4),
    ("glm-4.5-air", "fp8", "H100", 2, 4),
    ("glm-4.5-air", "fp8", "H200", 1, 2),
]


def _layouts() -> set[tuple[str, str, str, int, bool]]:
    found = set()
    for path in TOPOLOGIES:
        topo = load_topology(path)
        if topo.engine.value != "sglang":
            continue
        full = topo.context_length == topo.arch.max_context
        found.add(
            (topo.model.family, topo.precision.value, topo.gpu.name, topo.gpus_per_replica, full)
        )
    return found


def test_every_published_layout_has_a_topology() -> None:
    found = _layouts()
    for family, precision, gpu, minimum, full_context in CARD:
        assert (family, precision, gpu, minimum, False) in found, (family, precision, gpu, minimum)
        assert (family, precision, gpu, full_context, True) in found, (family, precision, gpu)


def test_default_topologies_named_in_the_issue() -> None:
    fp8 = load_topology(REPO / "topologies" / "glm45-fp8.yaml")
    assert (fp8.model.name, fp8.gpu.name, fp8.gpus_per_replica) == ("glm-4.5-fp8", "H200", 4)
    bf16 = load_topology(REPO / "topologies" / "glm45-bf16.yaml")
    assert (bf16.gpu.name, bf16.nodes, bf16.gpus_per_node) == ("H100", 2, 8)
    assert bf16.precision is Precision.BF16


def test_a_vllm_variant_is_shipped() -> None:
    engines = {load_topology(p).engine.value for p in TOPOLOGIES}
    assert "vllm" in engines


def test_file_names_say_model_precision_and_gpus() -> None:
    for path in TOPOLOGIES:
        topo = load_topology(path)
        if topo.gpu.name == "CPU":
            continue
        words = path.stem.split("-")
        # A topology's name cannot hold a dot: glm-4.7-flash is written glm47-flash.
        compact = topo.model.family.replace("-4.", "4")
        prefixes = ("glm45-", topo.model.family + "-", topo.model.name + "-", compact + "-")
        assert path.stem.startswith(prefixes), path.name
        assert topo.precision.value in words, path.name
        shape = [w for w in words if "x" in w and w.split("x")[-1].isdigit()]
        if shape:
            assert shape[0] == f"{topo.gpu.name.lower()}x{topo.gpus_per_replica}", path.name


def test_fp8_topologies_use_fp8_kv_cache() -> None:
    # Model card: FP8 checkpoints run with an FP8 KV cache (condition 4 of its table).
    for path in TOPOLOGIES:
        topo = load_topology(path)
        if topo.precision is Precision.FP8:
            assert BYTES_PER_VALUE[topo.kv_cache_dtype] == 1.0, path.name
