"""The KV-event flags a precise_prefix topology gets (engines/kv_events_args.py), checked by
SGLang's and vLLM's own argument parsers in the cached engine venvs (as
tests/engines/test_engine_parsers.py does for every shipped topology), with the KV port
placeholders filled as the rank worker fills them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from controlplane.capacity import capacity_report
from controlplane.engines import LaunchContext, build_command
from controlplane.engines.venv import EngineVenv, split_launch
from controlplane.spec import load_topology
from controlplane.spec.models import EngineKind
from tests.conftest import TOPOLOGIES
from tests.engines.conftest import config_only_model, run_checker
from tests.engines.test_engine_parsers import RUNTIME_VALUES

pytestmark = [pytest.mark.engines, pytest.mark.slow, pytest.mark.timeout(900)]

CASES = {EngineKind.VLLM: "glm45-fp8-vllm", EngineKind.SGLANG: "glm45-fp8"}
VALUES = {**RUNTIME_VALUES, "kv_port": "7000", "kv_replay_port": "7008"}


def precise_argv(engine: EngineKind, tiny_model_dir: Path, root: Path) -> list[str]:
    doc = yaml.safe_load((TOPOLOGIES / f"{CASES[engine]}.yaml").read_text())
    doc["router"] = {**doc.get("router", {}), "policy": "precise_prefix"}
    path = root / f"{CASES[engine]}.yaml"
    path.write_text(yaml.safe_dump(doc))
    topology = load_topology(path)
    model = config_only_model(topology.model, tiny_model_dir, root / "models")
    context = LaunchContext(0, topology.nodes, capacity_report(topology).engine_mem_fraction,
                            model_path=str(model))  # fmt: skip
    command = build_command(topology, context)
    assert command is not None and "--kv-events-config" in command.argv
    resolved = command.resolve(VALUES)
    assert not resolved.unresolved()
    _, argv = split_launch(list(resolved.argv))
    return argv[3:]


@pytest.mark.parametrize("engine", list(CASES), ids=lambda e: e.value)
def test_engines_accept_the_kv_event_flags(
    engine: EngineKind,
    tiny_model_dir: Path,
    vllm_venv: EngineVenv,
    sglang_venv: EngineVenv,
    tmp_path: Path,
) -> None:
    argv = precise_argv(engine, tiny_model_dir, tmp_path)
    venv, script = (
        (vllm_venv, "vllm_args.py")
        if engine is EngineKind.VLLM
        else (sglang_venv, "sglang_args.py")
    )
    bad = list(argv)
    bad[bad.index("--kv-events-config") + 1] = '{"enable_kv_cache_events": true, "port": 1}'
    batch: list[dict[str, Any]] = [{"id": "ok", "argv": argv}, {"id": "bad", "argv": bad}]
    results = run_checker(venv, script, batch)
    assert results["ok"]["ok"], results["ok"]
    if engine is EngineKind.VLLM:  # vLLM's config class refuses unknown keys; SGLang's CLI
        assert not results["bad"]["ok"]  # only stores the JSON (checked at engine start)
