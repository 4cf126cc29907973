"""The GLM-4.5 model card's two requirement tables, derived from architecture + constants.

Each of the 16 cells must come out as the smallest power-of-two GPU count that fits under
the card's conditions (MTP 3 / 1 / 4 on SGLang, batch 8, FP8 KV with FP8 weights, no CPU
offload, SGLang's own memory rule); one power of two fewer must not fit in any split.

The numbers below are the published table (reference/glm45-deployment.md) and are only
compared against: the model never reads them.

Context of the "minimum" table: the card does not say at which context its minimum layouts
were tested. We take 8192 tokens per sequence, SGLang's default chunked-prefill size on
H100 / H200 (server_args.py), i.e. each of the 8 sequences holds one full prefill chunk:
"the model runs" at the card's batch. The minimum layouts are weight-bound, so any context
up to ~28K gives the same 8 cells; at 32K x 8 the two tightest (Air FP8 on 1 x H200, Air
BF16 on 2 x H200) run out of KV (test_minimum_layouts_are_weight_bound below).
"""

from __future__ import annotations

import pytest

from controlplane.capacity.layout import Layout, layout_of
from controlplane.capacity.memory import replica_memory
from controlplane.capacity.search import POWERS_OF_TWO, any_fits, smallest_fitting
from tests.unit.capacity.conftest import make_topology

MIN_TABLE_CONTEXT = 8192  # SGLang default chunked_prefill_size on H100/H200
FULL_CONTEXT = 131072  # "full 128K context"
CARD_BATCH = 8

# model, precision -> (minimum H100, minimum H200), (128K H100, 128K H200)
PUBLISHED = {
    ("glm-4.5", "bf16"): ((16, 8), (32, 16)),
    ("glm-4.5", "fp8"): ((8, 4), (16, 8)),
    ("glm-4.5-air", "bf16"): ((4, 2), (8, 4)),
    ("glm-4.5-air", "fp8"): ((2, 1), (4, 2)),
}
CELLS = [
    (model, precision, gpu, table, counts[table == "full"][g])
    for (model, precision), counts in PUBLISHED.items()
    for table in ("minimum", "full")
    for g, gpu in enumerate(("H100", "H200"))
]


def card_base(model: str, precision: str, gpu: str, context: int) -> Layout:
    """The card's conditions, as glmctl's defaults resolve them (one GPU; the search splits)."""
    layout = layout_of(make_topology(model, precision, gpu, 1, context, CARD_BATCH))
    assert layout.speculative and (layout.spec_steps, layout.spec_draft_tokens) == (3, 4)
    assert layout.kv_dtype.value == ("fp8" if precision == "fp8" else "bf16")
    assert layout.mem_fraction is None and layout.cpu_offload_gb == 0
    return layout


def _ids(cell: tuple[str, str, str, str, int]) -> str:
    return "-".join(str(x) for x in cell[:4])


@pytest.mark.parametrize("cell", CELLS, ids=[_ids(c) for c in CELLS])
def test_card_cell(cell: tuple[str, str, str, str, int]) -> None:
    model, precision, gpu, table, published = cell
    context = FULL_CONTEXT if table == "full" else MIN_TABLE_CONTEXT
    base = card_base(model, precision, gpu, context)
    found = smallest_fitting(base, POWERS_OF_TWO)
    assert found is not None, "no power of two up to 64 fits"
    assert found.layout.gpus == published, found.layout
    lay, memory = found.layout, found.memory
    held, needed = memory.kv_tokens * lay.copies, memory.required_tokens * lay.copies
    print(
        f"\n{_ids(cell)}: {published} x {gpu} TP {lay.tp} PP {lay.pp} DP {lay.dp}"
        f" EP {lay.ep}: KV {held} tokens for {CARD_BATCH} x {context} = {needed}"
        f" (margin {held - needed:+d} tokens, {held / needed - 1:+.1%};"
        f" {found.headroom_bytes / 2**30:.1f} GiB spare per GPU)"
    )
    assert held >= needed
    if published > 1:
        assert not any_fits(base, published // 2), "one power of two fewer fits too"


@pytest.mark.parametrize(
    "model,precision,gpu,published",
    [
        (m, p, g, counts[0][i])
        for (m, p), counts in PUBLISHED.items()
        for i, g in enumerate(("H100", "H200"))
    ],
)
def test_minimum_layouts_are_weight_bound(
    model: str, precision: str, gpu: str, published: int
) -> None:
    """Half the minimum GPUs cannot even hold the weights, whatever the context."""
    base = card_base(model, precision, gpu, 1)
    if published > 1:
        assert not any_fits(base, published // 2)
    # and the minimum layout holds the card's batch up to at least 28K tokens per sequence
    found = smallest_fitting(base.with_(context=28672), (published,))
    assert found is not None


def test_air_minimum_on_h200_does_not_hold_eight_32k_sequences() -> None:
    """Why the minimum table needs a context below 32K (and the shipped layouts use 28K)."""
    for precision, gpus in (("fp8", 1), ("bf16", 2)):
        base = card_base("glm-4.5-air", precision, "H200", 32768)
        assert not any_fits(base, gpus)
        assert any_fits(base.with_(context=28672), gpus)


def test_glm45_bf16_h100x32_needs_less_kv_replication_than_tp32() -> None:
    """TP 32 stores each KV head 4x and falls short at 8 x 128K; DP attention fits."""
    base = card_base("glm-4.5", "bf16", "H100", FULL_CONTEXT)
    assert not replica_memory(base.with_(tp=32)).fits
    assert replica_memory(base.with_(tp=16, dp=2, dp_attention=True)).fits
