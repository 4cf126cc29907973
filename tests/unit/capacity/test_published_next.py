"""The GPU counts published for the GLM generations after GLM-4.5, derived from the
architecture and the engines' memory rules, as the GLM-4.5 card's 16 cells are
(test_model_card.py).

Each published count must come out as the smallest power-of-two GPU count that fits under
the publication's conditions (engine, speculative decoding, context), and one power of two
fewer must not fit in any split. The counts below are only compared against. Where the
source names no workload, the cell states the one assumed (the conditions glmctl ships the
layout with); each printed line gives the KV margin at that workload.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from controlplane.capacity.layout import Layout, layout_of
from controlplane.capacity.search import POWERS_OF_TWO, any_fits, smallest_fitting
from tests.unit.capacity.conftest import make_topology

VLLM: dict[str, Any] = {"engine": {"kind": "vllm"}}


@dataclass(frozen=True)
class Published:
    source: str
    model: str
    precision: str
    gpu: str
    context: int
    batch: int
    gpus: int
    extra: tuple[tuple[str, Any], ...] = ()

    @property
    def id(self) -> str:
        return f"{self.model}-{self.precision}-{self.gpu}x{self.gpus}-{self.context}"


CELLS = [
    Published(
        "zai-org/GLM-4.7 README @26f32ad: vllm serve GLM-4.7-FP8 --tensor-parallel-size 4,"
        " MTP 1 (4 x H100 cannot hold the FP8 weights, so H200)",
        "glm-4.7",
        "fp8",
        "H200",
        202752,
        1,
        4,
        tuple(VLLM.items()),
    ),
    Published(
        "SGLang docs basic_usage/glm45.html: GLM-4.6 / 4.7 FP8 on 8xH100, TP 8, EAGLE 3/1/4",
        "glm-4.7",
        "fp8",
        "H100",
        8192,
        8,
        8,
    ),
    Published(
        "SGLang docs basic_usage/glm45.html: GLM-4.6-FP8 --tp 8 on 8xH100",
        "glm-4.6",
        "fp8",
        "H100",
        8192,
        8,
        8,
    ),
    Published(
        "vLLM recipes GLM/GLM-V.html: GLM-4.5V BF16 on 4xH100, TP 4, 64K context",
        "glm-4.5v",
        "bf16",
        "H100",
        65536,
        1,
        4,
        tuple(VLLM.items()),
    ),
    Published(
        "vLLM recipes GLM/GLM-V.html: GLM-4.6V BF16 on 4xH100, TP 4, 128K context",
        "glm-4.6v",
        "bf16",
        "H100",
        131072,
        1,
        4,
        tuple(VLLM.items()),
    ),
    Published(
        "vLLM recipes GLM/GLM5.html: Serving FP8 Model on 8xH200, TP 8, MTP",
        "glm-5",
        "fp8",
        "H200",
        202752,
        1,
        8,
        tuple(VLLM.items()),
    ),
    Published(
        "issue 25 / SGLang cookbook GLM-4.7-Flash (H100, BF16): one GPU; 64K assumed",
        "glm-4.7-flash",
        "bf16",
        "H100",
        65536,
        1,
        1,
    ),
]


def base_of(cell: Published) -> Layout:
    topo = make_topology(
        cell.model, cell.precision, cell.gpu, 1, cell.context, cell.batch, **dict(cell.extra)
    )
    layout = layout_of(topo)
    # The published launches draft with the MTP layer wherever the checkpoint has one
    # (GLM-4.5V / 4.6V have none).
    assert layout.speculative is (layout.arch.num_nextn_layers > 0)
    return layout


@pytest.mark.parametrize("cell", CELLS, ids=[c.id for c in CELLS])
def test_published_gpu_count(cell: Published) -> None:
    base = base_of(cell)
    found = smallest_fitting(base, POWERS_OF_TWO)
    assert found is not None, "no power of two up to 64 fits"
    lay, memory = found.layout, found.memory
    held, needed = memory.kv_tokens * lay.copies, memory.required_tokens * lay.copies
    print(
        f"\n{cell.id} [{base.engine.value}]: {lay.gpus} x {cell.gpu} TP {lay.tp} PP {lay.pp}"
        f" DP {lay.dp} EP {lay.ep}: KV {held} tokens for {cell.batch} x {cell.context}"
        f" = {needed} (margin {held - needed:+d} tokens, {held / needed - 1:+.1%};"
        f" {found.headroom_bytes / 2**30:.1f} GiB spare per GPU) <- {cell.source}"
    )
    assert lay.gpus == cell.gpus, lay
    assert held >= needed
    if cell.gpus > 1:
        assert not any_fits(base, cell.gpus // 2), "one power of two fewer fits too"


def test_glm45v_fp8_recipe_layout_is_not_the_minimum() -> None:
    """The GLM-V recipe runs FP8 on 4 x H100 too; its weights (about 110 GB) fit on 2."""
    cell = Published("vLLM recipes GLM/GLM-V.html", "glm-4.5v", "fp8", "H100", 65536, 1, 4)
    base = base_of(Published(**{**cell.__dict__, "extra": tuple(VLLM.items())}))
    assert any_fits(base, 4) and any_fits(base, 2) and not any_fits(base, 1)


def test_glm5_bf16_needs_two_h200_nodes() -> None:
    """No publication checked here gives GLM-5 BF16's count; the weights alone decide it."""
    base = base_of(Published("derived", "glm-5", "bf16", "H200", 8192, 1, 16, tuple(VLLM.items())))
    assert not any_fits(base, 8) and any_fits(base, 16)


def test_mla_cache_is_replicated_so_dp_attention_holds_more_glm5_sequences() -> None:
    """MLA keeps the whole latent on every TP rank: at 8 x 200K on 16 x H200 TP 16 falls
    short while DP attention (TP 8 x DP 2) fits."""
    from controlplane.capacity.memory import replica_memory

    base = base_of(Published("derived", "glm-5", "bf16", "H200", 202752, 2, 16))
    assert not replica_memory(base.with_(tp=16)).fits
    assert replica_memory(base.with_(tp=8, dp=2, dp_attention=True)).fits
