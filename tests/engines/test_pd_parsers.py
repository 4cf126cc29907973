"""PD plans' launch commands, checked by SGLang's and vLLM's own argument parsers.

Every shipped PD topology (topologies/*.yaml with `disaggregation:`), each pool, every
node rank, for SGLang (the topologies' own engine) and vLLM (engine switched, the
transfer left to vLLM's default NixlConnector): the commands of the topology's plan
(planner/pd_plan.py, on the reference cluster of `glmctl render`), with only the model
swapped for a config-only folder, parsed in the cached engine venvs as
tests/engines/test_engine_parsers.py does for colocated topologies. Known-bad PD flags
prove each checker can say no.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from controlplane.engines import LaunchCommand
from controlplane.engines.venv import EngineVenv, split_launch
from controlplane.planner.models import DeploymentPlan
from controlplane.render.ray_serve import reference_plan
from controlplane.spec import parse_spec, resolve
from controlplane.spec.models import EngineKind
from controlplane.spec.pd_pools import ROLES, PdPools, pd_pools
from tests.engines.conftest import config_only_model, run_checker
from tests.engines.test_engine_parsers import RUNTIME_VALUES, SERVER_MODULE

pytestmark = [pytest.mark.engines, pytest.mark.slow, pytest.mark.timeout(1500)]

PD_TOPOLOGIES = [
    p
    for p in sorted((Path(__file__).resolve().parents[2] / "topologies").glob("*.yaml"))
    if "\ndisaggregation:" in p.read_text()
]
ENGINES = (EngineKind.SGLANG, EngineKind.VLLM)


def pools_for(path: Path, engine: EngineKind) -> PdPools:
    data = yaml.safe_load(path.read_text())
    if engine.value != data.get("engine", "sglang"):
        data["engine"] = engine.value
        data["disaggregation"].pop("transfer", None)  # the engine's own default backend
    topology = resolve(parse_spec(yaml.safe_dump(data), str(path), default_name=path.stem))
    pools = pd_pools(topology)
    assert pools is not None
    return pools


def pool_argv(
    plan: DeploymentPlan, role: str, repo: str, model_dir: Path
) -> list[tuple[int, list[str]]]:
    """(rank, argv after `python -m MODULE`) of each node rank of the plan's `role` group,
    the model `repo` swapped for `model_dir` (the parsers' deep check reads its config)."""
    (group,) = [g for g in plan.groups if g.pd == role]
    assert not group.simulated  # the reference cluster has real GPUs: real commands
    commands = []
    for rank in group.ranks:
        if not rank.argv:
            continue
        argv = [str(model_dir) if a == repo else a for a in rank.argv]
        resolved = LaunchCommand(tuple(argv), rank.env).resolve(RUNTIME_VALUES)
        assert not resolved.unresolved(), resolved.unresolved()
        _, argv = split_launch(list(resolved.argv))
        assert argv[1:3] == ["-m", SERVER_MODULE[EngineKind(group.engine)]], argv[:3]
        commands.append((rank.rank, argv[3:]))
    return commands


@pytest.fixture(scope="module")
def batches(
    tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[EngineKind, list[dict[str, Any]]]:
    root = tmp_path_factory.mktemp("pd-config-only-models")
    found: dict[EngineKind, list[dict[str, Any]]] = {e: [] for e in ENGINES}
    for path in PD_TOPOLOGIES:
        for engine in ENGINES:
            pools = pools_for(path, engine)
            model_dir = config_only_model(pools.topology.model, tiny_model_dir, root)
            plan = reference_plan(pools.topology)
            for role in ROLES:
                for rank, argv in pool_argv(plan, role, pools.topology.model.hf_repo, model_dir):
                    found[engine].append(
                        {"id": f"{path.stem}:{engine.value}:{role}:r{rank}", "argv": argv}
                    )
    return found


@pytest.mark.parametrize("engine", ENGINES, ids=lambda e: e.value)
def test_engines_accept_the_pd_commands(
    engine: EngineKind,
    batches: dict[EngineKind, list[dict[str, Any]]],
    vllm_venv: EngineVenv,
    sglang_venv: EngineVenv,
) -> None:
    venv, script = (
        (vllm_venv, "vllm_args.py")
        if engine is EngineKind.VLLM
        else (sglang_venv, "sglang_args.py")
    )
    batch = batches[engine]
    assert {c["id"].split(":")[2] for c in batch} == set(ROLES)
    results = run_checker(venv, script, batch)
    failures = [f"{k} [{v['stage']}] {v['error']}" for k, v in results.items() if not v["ok"]]
    assert not failures, "\n".join(failures)


def _replace(argv: list[str], flag: str, value: str) -> list[str]:
    out = list(argv)
    out[out.index(flag) + 1] = value
    return out


def test_the_checkers_refuse_bad_pd_flags(
    batches: dict[EngineKind, list[dict[str, Any]]], vllm_venv: EngineVenv, sglang_venv: EngineVenv
) -> None:
    sglang = batches[EngineKind.SGLANG][0]["argv"]
    vllm = batches[EngineKind.VLLM][0]["argv"]
    sglang_bad = {
        "backend-not-offered": _replace(sglang, "--disaggregation-transfer-backend", "rdma"),
        "mode-both": _replace(sglang, "--disaggregation-mode", "both"),
    }
    vllm_bad = {
        "kv-role-unknown": _replace(
            vllm, "--kv-transfer-config", '{"kv_connector":"NixlConnector","kv_role":"kv_prefill"}'
        ),
        "failure-policy-unknown": _replace(
            vllm,
            "--kv-transfer-config",
            '{"kv_connector":"NixlConnector","kv_role":"kv_both","kv_load_failure_policy":"retry"}',
        ),
    }
    for venv, script, bad in (
        (sglang_venv, "sglang_args.py", sglang_bad),
        (vllm_venv, "vllm_args.py", vllm_bad),
    ):
        results = run_checker(venv, script, [{"id": k, "argv": v} for k, v in bad.items()])
        assert {k: r["ok"] for k, r in results.items()} == dict.fromkeys(bad, False), results
