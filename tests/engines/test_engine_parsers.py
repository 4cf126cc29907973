"""Generated SGLang and vLLM command lines, checked by the engines' own argument parsers.

For every shipped topology, both engines' command lines are built with glmctl's builders
(the topology's own engine, and the other one from the same topology with `engine.kind`
switched), for every node rank, and handed to the real parsers in the cached engine
venvs: one subprocess per engine for all commands, so the import cost is paid once.
vLLM gets the deep check too (`create_engine_config` against a config-only folder of the
topology's model). Known-bad commands prove each checker can say no.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from controlplane.engines import LaunchContext, build_command
from controlplane.engines.venv import EngineVenv, split_launch
from controlplane.planner.capacity import capacity_figures
from controlplane.planner.plan import drain_seconds
from controlplane.spec import Topology, load_topology, parse_spec, resolve
from controlplane.spec.models import EngineKind
from tests.conftest import TOPOLOGIES
from tests.engines.conftest import config_only_model, run_checker

# The first test pays for building the engine venvs on a cold cache (minutes).
pytestmark = [pytest.mark.engines, pytest.mark.slow, pytest.mark.timeout(1500)]

ENGINES = (EngineKind.VLLM, EngineKind.SGLANG)
SERVER_MODULE = {
    EngineKind.VLLM: "vllm.entrypoints.openai.api_server",
    EngineKind.SGLANG: "sglang.launch_server",
}
# Values for the run-time placeholders of a launch command (`LaunchCommand.resolve`).
RUNTIME_VALUES = {
    "host": "127.0.0.1",
    "port": "8000",
    "dist_host": "127.0.0.1",
    "dist_port": "29500",
    "python": "python",
    "bootstrap_port": "8998",
}
# Shipped topologies, and local-checkpoint ones kept with this tier (a `model_config` path
# is machine-specific, so they are not rendered into deployments/).
LOCAL_TOPOLOGIES = Path(__file__).resolve().parent / "topologies"
TOPOLOGY_FILES = [
    p
    for p in sorted(TOPOLOGIES.glob("*.yaml")) + sorted(LOCAL_TOPOLOGIES.glob("*.yaml"))
    if "kind: trtllm" not in p.read_text()  # checked in tests/unit/engines/test_trtllm_parsers.py
    and "\ndisaggregation:" not in p.read_text()  # PD plans: tests/engines/test_pd_parsers.py
]
CASES = [(path, engine) for path in TOPOLOGY_FILES for engine in ENGINES]


def topology_for_engine(path: Path, engine: EngineKind) -> Topology:
    """The topology as shipped, or with `engine.kind` switched (all other keys kept)."""
    topology = load_topology(path)
    if topology.engine is engine:
        return topology
    data = yaml.safe_load(path.read_text())
    engine_spec = data.get("engine") or {}
    if isinstance(engine_spec, str):
        engine_spec = {}
    data["engine"] = {**engine_spec, "kind": engine.value, "version": None}
    spec = parse_spec(yaml.safe_dump(data), origin=str(path), default_name=path.stem)
    local = topology.model if spec.model is None else None  # a model_config, as loaded
    return resolve(spec, local, origin=str(path))


def engine_argv(topology: Topology, model_dir: Path) -> list[tuple[int, list[str]]]:
    """(rank, argv after `python -m MODULE`) of every node rank that starts a process."""
    mem_fraction = capacity_figures(topology).mem_fraction
    commands = []
    for rank in range(topology.nodes):
        context = LaunchContext(
            rank,
            topology.nodes,
            mem_fraction,
            model_path=str(model_dir),
            shutdown_timeout_s=drain_seconds(topology),  # as the planner sets it
        )
        command = build_command(topology, context)
        if command is None:
            continue
        assert not command.resolve(RUNTIME_VALUES).unresolved()
        # A CPU target runs through glmctl's venv launcher; check the engine's own part.
        _, argv = split_launch(list(command.resolve(RUNTIME_VALUES).argv))
        assert argv[1:3] == ["-m", SERVER_MODULE[topology.engine]], argv[:3]
        commands.append((rank, argv[3:]))
    return commands


def case_id(path: Path, engine: EngineKind) -> str:
    return f"{path.stem}:{engine.value}"


@pytest.fixture(scope="module")
def commands(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Every case's commands: {engine: [{"id", "argv"}]}, ids `topology:engine:rN`."""
    root = tmp_path_factory.mktemp("config-only-models")
    batches: dict[EngineKind, list[dict[str, Any]]] = {e: [] for e in ENGINES}
    for path, engine in CASES:
        topology = topology_for_engine(path, engine)
        model_dir = config_only_model(topology.model, tiny_model_dir, root)
        for rank, argv in engine_argv(topology, model_dir):
            batches[engine].append({"id": f"{case_id(path, engine)}:r{rank}", "argv": argv})
    return {"batches": batches, "negative_base": batches[EngineKind.VLLM][0]["argv"]}


@pytest.fixture(scope="module")
def vllm_results(vllm_venv: EngineVenv, commands: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return run_checker(vllm_venv, "vllm_args.py", commands["batches"][EngineKind.VLLM])


@pytest.fixture(scope="module")
def sglang_results(sglang_venv: EngineVenv, commands: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return run_checker(sglang_venv, "sglang_args.py", commands["batches"][EngineKind.SGLANG])


@pytest.mark.parametrize(("path", "engine"), CASES, ids=[case_id(p, e) for p, e in CASES])
def test_engine_accepts_generated_command(
    path: Path,
    engine: EngineKind,
    request: pytest.FixtureRequest,
) -> None:
    fixture = "vllm_results" if engine is EngineKind.VLLM else "sglang_results"
    results: dict[str, dict[str, Any]] = request.getfixturevalue(fixture)
    prefix = case_id(path, engine) + ":"
    mine = {k: v for k, v in results.items() if k.startswith(prefix)}
    assert mine, f"no command was built for {prefix}"
    failures = [f"{k} [{v['stage']}] {v['error']}" for k, v in mine.items() if not v["ok"]]
    if failures and engine is EngineKind.VLLM and _vision_without_torchvision(path, mine):
        pytest.xfail(VISION_XFAIL)
    assert not failures, "\n".join(failures)


# vLLM's GLM-4V model module imports transformers' Glm4vImageProcessor, which imports
# torchvision; the CPU venv removes PyPI's CUDA torchvision (it breaks CPU torch:
# reference/real-engines-on-cpu.md), so the deep config check cannot inspect the class. The
# flags and parser names of these commands are still checked (stages parse and parsers).
VISION_XFAIL = "vLLM cannot inspect Glm4vMoeForConditionalGeneration without torchvision"


def _vision_without_torchvision(path: Path, results: dict[str, dict[str, Any]]) -> bool:
    if not load_topology(path).model.accepts_images:
        return False
    return all(
        r["ok"] or (r["stage"] == "config" and "failed to be inspected" in r["error"])
        for r in results.values()
    )


def _with(argv: list[str], flag: str, value: str | None) -> list[str]:
    """argv with `flag`'s value replaced (or the flag appended, bare when value is None)."""
    out = list(argv)
    if flag in out and value is not None:
        out[out.index(flag) + 1] = value
        return out
    return [*out, flag] if value is None else [*out, flag, value]


def test_vllm_checker_rejects_bad_commands(vllm_venv: EngineVenv, commands: dict[str, Any]) -> None:
    base = commands["negative_base"]
    awq = next(
        c["argv"]
        for c in commands["batches"][EngineKind.VLLM]
        if c["id"].startswith("chatglm2-6b-awq-int4-l40sx1:vllm:")
    )
    bad = {
        "tp-7-for-96-heads": ("config", _with(base, "--tensor-parallel-size", "7")),
        "unknown-flag": ("parse", _with(base, "--enable-ep-moe", None)),
        "bad-spec-method": (
            "config",
            _with(base, "--speculative-config", '{"method":"bogus","num_speculative_tokens":1}'),
        ),
        "context-over-model": ("config", _with(base, "--max-model-len", "999999999")),
        "unknown-tool-parser": ("parsers", _with(base, "--tool-call-parser", "glm99")),
        # vLLM 0.32 takes any string for --quantization (plugins register more) and rejects
        # an unknown method when it builds the config.
        "unknown-quantization": ("config", _with(base, "--quantization", "int4")),
        # The AWQ checkpoint's config says awq: another method is caught by the config builder.
        "quantization-not-the-checkpoints": ("config", _with(awq, "--quantization", "gptq")),
    }
    results = run_checker(
        vllm_venv, "vllm_args.py", [{"id": k, "argv": argv} for k, (_, argv) in bad.items()]
    )
    assert {k: (r["ok"], r["stage"]) for k, r in results.items()} == {
        k: (False, stage) for k, (stage, _) in bad.items()
    }


def test_sglang_checker_rejects_bad_commands(
    sglang_venv: EngineVenv, commands: dict[str, Any]
) -> None:
    base = commands["batches"][EngineKind.SGLANG][0]["argv"]
    bad = {
        "removed-flag-enable-ep-moe": ("parse", _with(base, "--enable-ep-moe", None)),
        "bad-kv-dtype": ("parse", _with(base, "--kv-cache-dtype", "fp9")),
        "bad-tp-type": ("parse", _with(base, "--tp-size", "four")),
        "unknown-tool-parser": ("parse", _with(base, "--tool-call-parser", "glm99")),
        "bad-spec-algorithm": ("names", _with(base, "--speculative-algorithm", "BOGUS")),
        # vLLM's online int8 shorthand is not an SGLang `--quantization` choice.
        "vllm-only-quantization": (
            "parse",
            _with(base, "--quantization", "int8_per_channel_weight_only"),
        ),
    }
    results = run_checker(
        sglang_venv, "sglang_args.py", [{"id": k, "argv": argv} for k, (_, argv) in bad.items()]
    )
    assert {k: (r["ok"], r["stage"]) for k, r in results.items()} == {
        k: (False, stage) for k, (stage, _) in bad.items()
    }
