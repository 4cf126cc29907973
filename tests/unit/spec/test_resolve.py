"""Defaults a short spec gets, and a spec that points at a local config.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from controlplane.catalog import Precision
from controlplane.errors import SpecError
from controlplane.spec import (
    EngineKind,
    KvCacheDtype,
    SpeculativeAlgorithm,
    load_topology,
    parse_spec,
    resolve,
)
from tests.unit.catalog import configs

SHORT = "model: glm-4.5\nprecision: fp8\ngpus:\n  type: H200\n  count: 4\n"


def test_a_four_line_spec_gets_the_model_cards_settings() -> None:
    topo = resolve(parse_spec(SHORT, "short.yaml", default_name="short"))
    # GLM-4.5 model card: MTP draft 3 steps, top-1, 4 draft tokens on SGLang; FP8 KV.
    spec = topo.speculative
    assert spec is not None and spec.algorithm is SpeculativeAlgorithm.EAGLE
    assert (spec.num_steps, spec.eagle_topk, spec.num_draft_tokens) == (3, 1, 4)
    assert topo.spec.kv_cache_dtype is KvCacheDtype.FP8
    assert (topo.spec.engine.tool_parser, topo.spec.engine.reasoning_parser) == ("glm45", "glm45")
    assert topo.model.name == "glm-4.5-fp8" and topo.model.hf_repo == "zai-org/GLM-4.5-FP8"
    assert (topo.tp, topo.pp, topo.dp, topo.nodes) == (4, 1, 1, 1)
    assert topo.context_length == topo.arch.max_context
    assert topo.served_model_name == "glm-4.5-fp8"
    assert topo.name == "short"


def test_vllm_drafts_one_token_with_mtp() -> None:
    topo = resolve(parse_spec(SHORT + "engine: vllm\n", default_name="v"))
    spec = topo.speculative
    assert spec is not None and spec.algorithm is SpeculativeAlgorithm.MTP
    assert (spec.num_steps, spec.num_draft_tokens) == (1, 1)
    assert topo.engine is EngineKind.VLLM


def test_shorthands_mean_the_full_forms() -> None:
    short = resolve(parse_spec("model: glm-4.5\ngpus: 8xH100\nreplicas: 2\n", default_name="a"))
    full = resolve(
        parse_spec(
            "model: glm-4.5\ngpus: {type: H100, count: 8}\nreplicas: {min: 2, max: 2}\n",
            default_name="a",
        )
    )
    assert short.spec == full.spec


def test_fp8_experts_that_tp_cannot_split_get_expert_parallelism() -> None:
    # 1536 / 8 = 192 is not a multiple of the 128-wide FP8 block (model-configs.md).
    topo = resolve(parse_spec("model: glm-4.5\nprecision: fp8\ngpus: 8xH200\n", default_name="a"))
    assert topo.ep == 8
    bf16 = resolve(parse_spec("model: glm-4.5\nprecision: bf16\ngpus: 8xH200\n", default_name="a"))
    assert bf16.ep == 1


def test_small_models_take_int8_and_int4() -> None:
    # Sized for any runtime (engine: sim); vLLM / SGLang refuse them: test_quant_launch.py
    for precision in ("int8", "int4"):
        topo = resolve(
            parse_spec(
                f"model: glm-4-9b\nprecision: {precision}\ngpus: 1xL40S\nengine: sim\n",
                default_name="a",
            )
        )
        assert topo.precision is Precision(precision)
        assert topo.speculative is None  # no MTP layer to draft with


def test_glm46_serves_its_200k_context() -> None:
    topo = resolve(parse_spec("model: glm-4.6\nprecision: fp8\ngpus: 8xH200\n", default_name="a"))
    assert topo.context_length == 202752


def test_resolve_leaves_its_input_alone() -> None:
    spec = parse_spec(SHORT, default_name="a")
    before = spec.model_dump()
    resolve(spec)
    assert spec.model_dump() == before


def _write_air(tmp_path: Path) -> None:
    folder = tmp_path / "models" / "GLM-4.5-Air"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(configs.GLM_45_AIR))


def test_spec_with_a_local_model_config(tmp_path: Path) -> None:
    _write_air(tmp_path)
    path = tmp_path / "air-local.yaml"
    path.write_text("model_config: models/GLM-4.5-Air\ngpus: 2xH200\ncontext_length: 32768\n")
    topo = load_topology(path)
    assert topo.model.name == "glm-4.5-air"
    assert topo.arch.total_params(include_nextn=False) / 1e9 == pytest.approx(106.9, rel=0.002)
    assert topo.precision is Precision.BF16
    assert topo.speculative is not None  # the config ships an MTP layer
    assert topo.spec.engine.tool_parser == "glm45"
    assert topo.spec.model_config_path == "models/GLM-4.5-Air"


def test_local_config_limits_are_checked(tmp_path: Path) -> None:
    _write_air(tmp_path)
    path = tmp_path / "too-long.yaml"
    path.write_text("gpus: 2xH200\nmodel_config: models/GLM-4.5-Air\ncontext_length: 500000\n")
    with pytest.raises(SpecError, match=r"too-long.yaml:3: context_length 500000 exceeds"):
        load_topology(path)


def test_resolve_without_the_load_step_says_so() -> None:
    spec = parse_spec("model_config: ./config.json\ngpus: 4xH200\n", default_name="a")
    with pytest.raises(SpecError, match="has not been loaded"):
        resolve(spec)
