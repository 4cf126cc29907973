"""The `disaggregation:` section: parsing, errors with fixes, pools resolved as topologies."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from controlplane.errors import SpecError
from controlplane.spec import load_topology, parse_spec
from controlplane.spec.pd_pools import pd_pools
from tests.unit.spec.pd_helpers import AIR_PD, H200_PD, PD_DIR, REPO, pools_of, with_pools

SHIPPED = sorted((REPO / "topologies").glob("*.yaml"))


@pytest.mark.parametrize("path", [AIR_PD, H200_PD], ids=lambda p: p.stem)
def test_examples_resolve_into_the_declared_pools(path: Path) -> None:
    data = yaml.safe_load(path.read_text())
    found = pd_pools(load_topology(path))
    assert found is not None
    for role, pool in (("prefill", found.prefill), ("decode", found.decode)):
        declared = data["disaggregation"][role]
        gpus = declared.get("gpus", data["gpus"]["count"])
        tensor = (declared.get("parallelism") or data.get("parallelism") or {}).get("tensor")
        assert pool.gpus_per_replica == gpus
        assert pool.tp == (tensor or gpus)
        assert pool.spec.replicas.min == declared["replicas"]
        assert pool.served_model_name == found.topology.served_model_name  # one name
        assert pool.spec.disaggregation is None
        assert pool.name == f"{path.stem}-{role}"


def test_the_pd_examples_ship_with_the_topologies() -> None:
    """Render, parser and plan tests glob topologies/*.yaml: the PD examples are in it."""
    pd = {p for p in SHIPPED if load_topology(p).spec.disaggregation is not None}
    assert pd == {AIR_PD, H200_PD} and PD_DIR == REPO / "topologies"


COLOCATED = [p for p in SHIPPED if p not in (AIR_PD, H200_PD)]


@pytest.mark.parametrize("path", COLOCATED[:6], ids=lambda p: p.stem)
def test_colocated_specs_serialise_without_the_section(path: Path) -> None:
    assert "disaggregation" not in load_topology(path).spec.model_dump(mode="json")


def test_a_pool_takes_the_topology_fields_it_leaves_out() -> None:
    found = pools_of(
        with_pools(AIR_PD, {}, {"gpus": "8xH200"}, max_num_seqs=16, context_length=16384)
    )
    assert (found.prefill.gpus_per_replica, found.prefill.tp, found.prefill.gpu.name) == (
        4,
        4,
        "H100",
    )
    assert (found.decode.gpus_per_replica, found.decode.tp, found.decode.gpu.name) == (8, 8, "H200")
    for pool in (found.prefill, found.decode):
        assert pool.spec.max_num_seqs == 16 and pool.context_length == 16384


def test_pool_shorthands() -> None:
    found = pools_of(with_pools(AIR_PD, {"gpus": 2}, {}))
    assert found.prefill.gpus_per_replica == 2 and found.prefill.tp == 2
    assert found.spec.network.ib_devices == ["mlx5_0"]  # `mlx5_0` as SGLang's flag spells it


@pytest.mark.parametrize(
    ("pool", "wrong", "right"),
    [({"tensr": 2}, "tensr", "tensor"), ({"replica": 2}, "replica", "replicas")],
)
def test_a_typo_in_a_pool_names_the_key_and_the_fix(
    pool: dict[str, object], wrong: str, right: str
) -> None:
    if "tensr" in pool:
        pool = {"parallelism": pool}
    with pytest.raises(SpecError) as caught:
        parse_spec(with_pools(AIR_PD, pool, {}), origin="x.yaml")
    text = str(caught.value)
    assert f"unknown field `{wrong}`" in text and f"did you mean `{right}`" in text
    assert "To fix:" in text and "x.yaml:" in text


def test_an_impossible_pool_layout_is_a_spec_error_naming_the_pool() -> None:
    text = with_pools(H200_PD, {}, {"parallelism": {"tensor": 16, "data": 16}})
    with pytest.raises(SpecError) as caught:
        pools_of(text)
    assert "in the decode pool" in str(caught.value) and "To fix:" in str(caught.value)
