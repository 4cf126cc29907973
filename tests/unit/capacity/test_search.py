"""The layout search: valid splits only, smallest first, the fast check agrees with the model."""

from __future__ import annotations

import pytest

from controlplane.capacity.layout import Layout, layout_of
from controlplane.capacity.memory import replica_memory
from controlplane.capacity.search import (
    FastCheck,
    apply_shape,
    layout_problems,
    placeable,
    search,
    shapes_for,
    smallest_fitting,
)
from controlplane.catalog import Precision
from tests.unit.capacity.conftest import make_topology


def _base(**kw: object) -> Layout:
    return layout_of(make_topology(count=1, **kw))  # type: ignore[arg-type]


def test_search_lists_feasible_layouts_smallest_first() -> None:
    found = search(_base(context=131072), range(1, 17))
    assert found and all(c.fits for c in found)
    keys = [c.sort_key() for c in found]
    assert keys == sorted(keys)
    clean = [c for c in found if not c.findings]
    assert found[0].layout.gpus == min(c.layout.gpus for c in clean)
    assert not any(
        replica_memory(apply_shape(_base(context=131072), s)).fits for s in shapes_for(_base(), 4)
    )


def test_only_valid_splits_are_considered() -> None:
    base = _base()
    for gpus in range(1, 65):
        for shape in shapes_for(base, gpus):
            layout = apply_shape(base, shape)
            assert layout.gpus == gpus and not layout_problems(layout)
            assert 96 % layout.tp == 0 and (8 % layout.tp == 0 or layout.tp % 8 == 0)
            assert placeable(gpus, 8)
    assert shapes_for(base, 9) == ()  # 9 GPUs do not fill 8-GPU nodes evenly


def test_block_fp8_splits_get_expert_parallelism() -> None:
    base = _base()
    for gpus in (8, 16):
        for shape in shapes_for(base, gpus):
            if (shape.tp * shape.dp) % 8 == 0 and 1536 // (shape.tp * shape.dp) % 128:
                assert shape.ep == shape.tp * shape.dp


@pytest.mark.parametrize(
    "model,precision", [("glm-4.5", "fp8"), ("glm-4.5-air", "bf16"), ("chatglm2-6b", "fp16")]
)
@pytest.mark.parametrize("context", [4096, 131072])
def test_fast_check_agrees_with_full_memory_model(model: str, precision: str, context: int) -> None:
    ctx = min(context, 32768) if model == "chatglm2-6b" else context
    for gpu in ("H100", "H200", "A100-40G"):
        base = layout_of(
            make_topology(model=model, precision=precision, gpu=gpu, count=1, context=ctx)
        )
        check = FastCheck(base)
        for gpus in (1, 2, 4, 8, 16, 32):
            for shape in shapes_for(base, gpus):
                assert check.fits(shape) == replica_memory(apply_shape(base, shape)).fits


@pytest.mark.parametrize("context", [8192, 65536, 131072])
def test_vllm_rule_in_search(context: int) -> None:
    """The fast check follows vLLM's rule too: whole blocks, non-torch by TP and nodes."""
    for model, precision in (("glm-4.5-air", "bf16"), ("glm-4.5", "fp8")):
        topo = make_topology(model=model, precision=precision, count=1, engine="vllm")
        base = layout_of(topo).with_(context=context)
        check = FastCheck(base)
        for gpus in (2, 4, 8, 16):
            for shape in shapes_for(base, gpus):
                assert check.fits(shape) == replica_memory(apply_shape(base, shape)).fits


def test_smallest_fitting_none_when_nothing_fits() -> None:
    base = layout_of(
        make_topology(model="glm-4.5", precision="bf16", gpu="V100-16G", count=1, context=131072)
    )
    assert smallest_fitting(base) is None


def test_fp8_halves_the_gpus_of_bf16() -> None:
    bf16 = smallest_fitting(_base(precision="bf16", context=8192))
    fp8 = smallest_fitting(_base(precision="fp8", context=8192))
    assert bf16 is not None and fp8 is not None
    assert fp8.layout.gpus * 2 == bf16.layout.gpus
    assert fp8.layout.precision is Precision.FP8


def test_fast_validity_matches_the_problem_messages() -> None:
    from controlplane.capacity.search import SplitShape, _problems, _valid, default_ep
    from controlplane.catalog import MODELS

    for entry in MODELS:
        arch, fmt = entry.arch, entry.weight_format
        for tp in (d for d in range(1, 65) if arch.num_attention_heads % d == 0):
            for pp in (1, 2, 3, 4, 8, 64):
                for dp in (1, 2, 4):
                    for ep in {1, 2, default_ep(arch, fmt, tp * dp), tp * dp}:
                        shape = SplitShape(tp, pp, dp, ep)
                        assert _valid(arch, fmt, shape) == (not _problems(arch, fmt, shape))


def test_pipeline_with_speculative_ranks_after_every_accepted_layout() -> None:
    """Issue 11: GLM-4.5 FP8 on H200 at 8 x 128K ranked 5 x H200 TP 1 x PP 5 with EAGLE first,
    a layout SGLang refuses (PP with speculative decoding) and the report flags."""
    found = search(_base(context=131072), range(1, 17))
    ranks = [flag_rank_of(c) for c in found]
    assert ranks == sorted(ranks), "no flagged layout above a clean one"
    pp_spec = [c for c in found if c.layout.pp > 1 and c.layout.speculative]
    assert pp_spec and all("warning:pp-speculative" in c.flags for c in pp_spec)
    first = found[0]
    assert not first.findings and first.layout.pp == 1
    assert first.layout.gpus > min(c.layout.gpus for c in found)  # the 5-GPU PP layout fits
    assert smallest_fitting(_base(context=131072), range(1, 17)) is not None


def test_rejected_layouts_rank_after_accepted_ones_whatever_their_size() -> None:
    """An error (here: FP8 Marlin tiles on a GPU without FP8) ranks below any accepted layout."""
    base = _base(model="glm-4.5-air", precision="fp8", gpu="A100-80G", context=8192)
    found = search(base, range(1, 9))
    accepted = [c for c in found if c.accepted]
    rejected = [c for c in found if not c.accepted]
    assert accepted and rejected
    assert found.index(rejected[0]) > found.index(accepted[-1])
    assert any("error:fp8-dense-tile" in c.flags for c in rejected)


def flag_rank_of(candidate: object) -> int:
    from controlplane.capacity.preflight import flag_rank

    return flag_rank(candidate.findings)  # type: ignore[attr-defined]
