"""Preflight: the known GLM-4.5 failures, each with its fix."""

from __future__ import annotations

from dataclasses import replace

from controlplane.capacity.preflight import Finding, Severity, preflight
from controlplane.catalog import Precision, find_model
from controlplane.catalog.quant import scheme_from_config
from controlplane.spec.layout import moe_split_fails_fp8
from tests.unit.capacity.conftest import make_topology


def _codes(findings: list[Finding], severity: Severity | None = None) -> set[str]:
    return {f.code for f in findings if severity is None or f.severity is severity}


def test_fp8_moe_block_split_fails_without_ep() -> None:
    bad = preflight(make_topology(count=8, parallelism={"expert": 1}))
    error = next(f for f in bad if f.code == "fp8-moe-block")
    assert error.severity is Severity.ERROR
    assert "1536 / 8 = 192" in error.message and "expert: 8" in error.fix
    assert "fp8-moe-block" not in _codes(preflight(make_topology(count=8)))  # default EP 8


def test_fp8_moe_block_split_is_fine_at_tp4() -> None:
    assert "fp8-moe-block" not in _codes(
        preflight(make_topology(count=4, parallelism={"expert": 1}))
    )


def test_air_fp8_dense_mlp_at_tp4_warns_on_hopper_and_fails_on_a100() -> None:
    hopper = preflight(make_topology(model="glm-4.5-air", gpu="H100", count=4))
    warn = next(f for f in hopper if f.code == "fp8-dense-tile")
    assert warn.severity is Severity.WARNING and "size_n = 5472" in warn.message
    a100 = preflight(make_topology(model="glm-4.5-air", gpu="A100-80G", count=4))
    assert "fp8-dense-tile" in _codes(a100, Severity.ERROR)
    assert "fp8-dense-tile" not in _codes(
        preflight(make_topology(model="glm-4.5-air", gpu="H100", count=2))
    )


def test_kv_heads_replicated_warns_with_its_cost() -> None:
    findings = preflight(make_topology(precision="bf16", gpu="H100", count=16))
    warn = next(f for f in findings if f.code == "kv-heads-replicated")
    assert warn.severity is Severity.WARNING and "2x" in warn.message and "GiB" in warn.message
    assert "kv-heads-replicated" not in _codes(preflight(make_topology(count=8)))


def test_model_card_conditions() -> None:
    assert "card-batch" in _codes(preflight(make_topology(batch=16, context=8192)))
    assert "card-mtp" in _codes(preflight(make_topology(speculative={"algorithm": "none"})))
    assert "card-fp8-kv" in _codes(preflight(make_topology(kv_cache_dtype="bf16")))
    card = preflight(make_topology())
    assert not _codes(card, Severity.ERROR) and not _codes(card, Severity.WARNING)


def test_explicit_mem_fraction_that_fails_names_the_engine_rule() -> None:
    findings = preflight(
        make_topology(
            model="glm-4.5-air",
            precision="bf16",
            count=2,
            context=8192,
            engine={"mem_fraction": 0.7},
        )
    )
    error = next(f for f in findings if f.code == "mem-fraction-too-small")
    assert error.severity is Severity.ERROR
    assert "0.7" in error.message and "remove `engine.mem_fraction`" in error.fix
    assert "0.891" in error.fix  # SGLang's own fraction for 2 x H200, which fits
    ok = preflight(
        make_topology(
            model="glm-4.5-air",
            precision="bf16",
            count=4,
            context=8192,
            engine={"mem_fraction": 0.7},
        )
    )
    assert "mem-fraction-too-small" not in _codes(ok)


def test_smaller_models_get_no_card_findings() -> None:
    assert (
        preflight(
            make_topology(
                model="chatglm2-6b", precision="fp16", gpu="A100-80G", count=1, context=8192
            )
        )
        == []
    )


def test_the_block_rule_follows_the_checkpoint_scheme() -> None:
    # 1536 / 8 = 192: cuts a 128-block, not a 64-block, and per-tensor FP8 has no block.
    entry = find_model("glm-4.5")
    assert entry is not None
    arch = entry.arch
    assert moe_split_fails_fp8(arch, Precision.FP8, 8)  # the catalog's 128 x 128 blocks
    for quant, fails in (
        ({"quant_method": "fp8", "weight_block_size": [128, 128]}, True),
        ({"quant_method": "fp8", "weight_block_size": [64, 64]}, False),
        ({"quant_method": "fp8"}, False),
    ):
        stored = replace(arch, quant=scheme_from_config(quant))
        assert moe_split_fails_fp8(stored, Precision.FP8, 8) is fails
    assert not moe_split_fails_fp8(arch, Precision.BF16, 8)
