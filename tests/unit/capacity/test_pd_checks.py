"""PD preflight: each combination SGLang 0.5.23 or vLLM 0.32 refuses, with its source."""

from __future__ import annotations

import pytest
import yaml

from controlplane.capacity.pd_checks import pd_findings
from controlplane.capacity.preflight import Finding, Severity
from tests.conftest import TOPOLOGIES
from tests.unit.spec.pd_helpers import AIR_PD, H200_PD, pools_of, shipped, with_pools

# Every refusal names where it comes from: an engine file, an issue or the engine's name.
SOURCES = ("sglang#", "SGLang", "vLLM", ".py")


def findings(text: str) -> dict[str, Finding]:
    return {f.code: f for f in pd_findings(pools_of(text))}


def assert_refused(found: dict[str, Finding], code: str) -> Finding:
    assert code in found, f"{code} not in {sorted(found)}"
    finding = found[code]
    assert finding.severity is Severity.ERROR
    assert any(s in finding.message for s in SOURCES), finding.message
    assert finding.fix
    return finding


def test_the_readme_layout_passes() -> None:
    errors = [f for f in pd_findings(shipped(AIR_PD)) if f.severity is Severity.ERROR]
    assert errors == []


@pytest.mark.parametrize(
    ("prefill", "code"),
    [
        ({"context_length": 16384}, "pd-context"),
        ({"kv_cache_dtype": "bf16"}, "pd-kv-dtype"),
        ({"engine": {"version": "0.5.22"}}, "pd-version"),
    ],
)
@pytest.mark.parametrize("engine", ["sglang", "vllm"])
def test_pools_must_agree(prefill: dict[str, object], code: str, engine: str) -> None:
    assert_refused(findings(with_pools(AIR_PD, prefill, {}, engine=engine)), code)


def test_vllm_refuses_any_speculative_difference() -> None:
    text = with_pools(AIR_PD, {"speculative": {"algorithm": "none"}}, {}, engine="vllm")
    assert "nixl/metadata.py" in assert_refused(findings(text), "pd-speculative").message


def test_sglang_refuses_draft_kv_the_decode_cannot_hold() -> None:
    text = with_pools(AIR_PD, {}, {"speculative": {"algorithm": "none"}})
    assert_refused(findings(text), "pd-speculative")


def test_sglang_warns_on_a_prefill_without_the_draft() -> None:
    found = findings(with_pools(AIR_PD, {"speculative": {"algorithm": "none"}}, {}))
    assert found["pd-speculative"].severity is Severity.WARNING
    assert "sglang#32527" in found["pd-speculative"].message


def test_vllm_nixl_refuses_prefill_tp_above_decode_tp_and_the_kv_heads() -> None:
    top = pools_of(with_pools(AIR_PD, {}, {}, engine="vllm")).topology
    heads = top.arch.num_kv_heads  # GQA: 8 KV heads on GLM-4.5 and Air
    text = with_pools(
        AIR_PD,
        {"gpus": 2 * heads, "parallelism": {"tensor": 2 * heads}},
        {"gpus": heads, "parallelism": {"tensor": heads}},
        engine="vllm",
    )
    assert "base_worker.py" in assert_refused(findings(text), "pd-tensor").message


def test_vllm_nixl_only_warns_when_the_prefill_kv_is_not_replicated() -> None:
    top = pools_of(with_pools(AIR_PD, {}, {}, engine="vllm")).topology
    heads = top.arch.num_kv_heads
    text = with_pools(
        AIR_PD,
        {"gpus": heads, "parallelism": {"tensor": heads}},
        {"gpus": heads // 2, "parallelism": {"tensor": heads // 2}},
        engine="vllm",
    )
    assert findings(text)["pd-tensor"].severity is Severity.WARNING


def test_sglang_warns_on_different_tp_for_a_gqa_model() -> None:
    text = with_pools(AIR_PD, {"gpus": 2, "parallelism": {"tensor": 2}}, {})
    found = findings(text)
    assert found["pd-tensor"].severity is Severity.WARNING
    assert "sglang#15674" in found["pd-tensor"].message


@pytest.mark.parametrize(
    ("engine", "backend", "source"),
    [
        ("vllm", "P2pNcclConnector", "factory.py"),  # gone from vLLM 0.32's factory
        ("sglang", "ascend", "choices.py"),  # Huawei NPUs: not offered for GPUs
        ("sglang", "NixlConnector", "choices.py"),  # vLLM's name on SGLang
    ],
)
def test_a_backend_the_engine_version_lacks_is_refused(
    engine: str, backend: str, source: str
) -> None:
    text = variant_with_transfer(engine, {"backend": backend})
    assert source in assert_refused(findings(text), "pd-backend").message


def variant_with_transfer(engine: str, transfer: dict[str, object], **network: object) -> str:
    import yaml

    data = yaml.safe_load(with_pools(AIR_PD, {}, {}, engine=engine))
    data["disaggregation"]["transfer"] = transfer
    data["disaggregation"]["network"] = network or {"transport": "rdma"}
    return yaml.safe_dump(data)


def test_a_shared_folder_needs_the_example_connector_which_warns_on_gpus() -> None:
    nixl = variant_with_transfer("vllm", {"shared_storage_path": "/data/kv"})
    assert "ExampleConnector" in assert_refused(findings(nixl), "pd-shared-storage").message
    example = pools_of(variant_with_transfer("vllm", {"backend": "ExampleConnector"}))
    found = {f.code: f for f in pd_findings(example)}
    assert found["pd-shared-storage"].severity is Severity.WARNING  # GPUs: tests only
    assert "pd-backend" not in found  # vLLM 0.32's factory.py registers it


def test_mooncake_over_tcp_is_refused_and_the_tcp_default_is_mooncake_tcp() -> None:
    refused = variant_with_transfer("sglang", {"backend": "mooncake"}, transport="tcp")
    assert_refused(findings(refused), "pd-network")
    default = pools_of(variant_with_transfer("sglang", {}, transport="tcp"))
    assert default.backend == "mooncake_tcp"
    assert not [f for f in pd_findings(default) if f.severity is Severity.ERROR]


def test_glm45_fp8_reports_are_warnings() -> None:
    found = {f.code: f for f in pd_findings(shipped(H200_PD))}
    assert found["sglang#9266"].severity is Severity.WARNING  # EAGLE + EP on GLM-4.5-FP8
    assert "sglang#9400" not in found  # one node per prefill replica
    two_nodes = with_pools(
        H200_PD, {"gpus": {"count": 16, "nodes": 2}, "parallelism": {"tensor": 16}}, {}
    )
    assert findings(two_nodes)["sglang#9400"].severity is Severity.WARNING
    air = {f.code for f in pd_findings(shipped(AIR_PD))}
    assert not air & {"sglang#9266", "sglang#9400"}  # reported against GLM-4.5, not Air


def test_an_engine_without_known_pd_flags_gets_that_refusal_alone() -> None:
    """TensorRT-LLM's PD rule says glmctl knows no PD flags of it: the refusal, and none of
    the other engines' transfer-backend or TP rules on top."""
    data = yaml.safe_load((TOPOLOGIES / "chatglm2-6b-trtllm-int8-l40sx1.yaml").read_text())
    data["disaggregation"] = {"prefill": {"replicas": 1}, "decode": {"replicas": 1}}
    found = pd_findings(pools_of(yaml.safe_dump(data)))
    assert [(f.severity, f.code) for f in found] == [(Severity.ERROR, "pd-engine")]
    assert "not TensorRT-LLM's" in found[0].message
    assert found[0].fix.startswith("set `engine: sglang` or `engine: vllm`")
