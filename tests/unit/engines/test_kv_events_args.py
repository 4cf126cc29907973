"""Engines publish KV events exactly when the router's policy is precise_prefix: the flags
per engine, the plan's router settings, and plans of other policies left as they were."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import yaml

from controlplane.engines import LaunchContext, build_command
from controlplane.engines.kv_events_args import (
    feed_urls,
    kv_event_args,
    kv_ports,
    plan_feed_count,
    precise_from_topology,
)
from controlplane.engines.registry import simulated_hash_scheme
from controlplane.planner import embedded_inventory, plan
from controlplane.router import kv_hash
from controlplane.router.kv_tokens import PreciseSettings
from controlplane.spec import Topology, load_topology

TOPOLOGIES = Path(__file__).resolve().parents[3] / "topologies"
SGLANG = kv_hash.SGLANG_SHA256


def precise(name: str, tmp_path: Path, **weights: int) -> Topology:
    doc = yaml.safe_load((TOPOLOGIES / f"{name}.yaml").read_text(encoding="utf-8"))
    doc.setdefault("router", {})["policy"] = "precise_prefix"
    if weights:
        doc["router"]["precise_prefix"] = weights
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return load_topology(path)


def flag(argv: tuple[str, ...] | list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_vllm_gets_events_the_routers_hash_and_block_size(tmp_path: Path) -> None:
    topo = precise("glm45-fp8-vllm", tmp_path, block_size=32)
    assert not any("precise_prefix" in w for w in topo.warnings)  # it routes for real now
    command = build_command(topo, LaunchContext())
    assert command is not None
    config = json.loads(flag(command.argv, "--kv-events-config"))
    assert config == {
        "enable_kv_cache_events": True,
        "publisher": "zmq",
        "endpoint": "tcp://*:{kv_port}",
        "replay_endpoint": "tcp://*:{kv_replay_port}",
        "topic": "kv",
    }
    assert flag(command.argv, "--prefix-caching-hash-algo") == "sha256_cbor"
    assert flag(command.argv, "--block-size") == "32"
    assert "{kv_port}" in command.unresolved()
    filled = command.resolve({"kv_port": "7000", "kv_replay_port": "7001"})
    assert "tcp://*:7000" in flag(filled.argv, "--kv-events-config")


def test_sglang_gets_the_routers_page_size_and_the_simulator_the_config(
    tmp_path: Path,
) -> None:
    topo = precise("glm45-fp8", tmp_path, block_size=32)
    sglang = build_command(topo, LaunchContext())
    sim = build_command(topo, LaunchContext(), simulate=True)
    assert sglang is not None and sim is not None
    for command in (sglang, sim):
        assert json.loads(flag(command.argv, "--kv-events-config"))["publisher"] == "zmq"
        assert "--block-size" not in command.argv
    assert flag(sglang.argv, "--page-size") == "32"  # SGLang hashes one key per page
    assert "--page-size" not in sim.argv
    assert kv_event_args(topo, "trtllm") == []
    plain = load_topology(TOPOLOGIES / "glm45-fp8.yaml")
    command = build_command(plain, LaunchContext())
    assert command is not None and "--page-size" not in command.argv  # other policies


def test_each_engine_gets_its_own_hash_scheme(tmp_path: Path) -> None:
    sglang = precise_from_topology(precise("glm45-fp8", tmp_path), simulated=False)
    assert (sglang.hash_scheme, sglang.tokenizer) == (SGLANG, "hf:zai-org/GLM-4.5-FP8")
    assert sglang.block_size == 16
    vllm = precise_from_topology(precise("glm45-fp8-vllm", tmp_path), simulated=False)
    assert vllm.hash_scheme == kv_hash.VLLM_SHA256_CBOR
    # The simulator publishes the hashes of the engine it mimics (its flavour).
    simulated = precise_from_topology(precise("glm45-fp8", tmp_path), simulated=True)
    assert simulated.hash_scheme == SGLANG
    assert simulated_hash_scheme("vllm") == kv_hash.VLLM_SHA256_CBOR
    assert simulated_hash_scheme(None) == simulated_hash_scheme("sim") == SGLANG
    assert simulated_hash_scheme("trtllm") == kv_hash.VLLM_SHA256_CBOR  # none of its own


def test_other_policies_and_ranks_above_0_get_nothing(tmp_path: Path) -> None:
    plain = load_topology(TOPOLOGIES / "glm45-fp8-vllm.yaml")
    assert kv_event_args(plain, "vllm") == []
    command = build_command(plain, LaunchContext())
    assert command is not None and "--kv-events-config" not in command.argv
    topo = precise("glm45-fp8-vllm", tmp_path)
    rank1 = build_command(topo, LaunchContext(node_rank=1, nnodes=2))
    assert rank1 is None or "--kv-events-config" not in rank1.argv


def test_the_plan_carries_router_settings_and_feed_count(tmp_path: Path) -> None:
    topo = precise("glm45-fp8-vllm", tmp_path)
    result = plan(topo, embedded_inventory(topo))
    settings = PreciseSettings.from_json(result.router.precise)
    assert settings.tokenizer == "sim"  # the embedded cluster simulates its GPUs
    assert settings.model == topo.served_model_name
    assert plan_feed_count(result) == max(1, topo.dp)
    assert "precise" in result.to_data()["router"]
    plain = load_topology(TOPOLOGIES / "glm45-fp8-vllm.yaml")
    plain_plan = plan(plain, embedded_inventory(plain))
    assert plan_feed_count(plain_plan) == 0
    assert "precise" not in plain_plan.to_data()["router"]  # digests as before


def test_kv_ports_are_free_consecutive_runs() -> None:
    values = kv_ports(3)
    pub, replay = int(values["kv_port"]), int(values["kv_replay_port"])
    assert replay == pub + 3
    for port in range(pub, pub + 6):  # every one of them can be bound right now
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))
    urls = feed_urls({"host": "10.0.0.5", **values}, 3)
    assert urls[0] == tuple(f"tcp://10.0.0.5:{pub + r}" for r in range(3))
    assert urls[1][2] == f"tcp://10.0.0.5:{replay + 2}"


@pytest.mark.parametrize("ranks", [1, 4])
def test_feed_urls_one_per_rank(ranks: int) -> None:
    events, replays = feed_urls({"host": "h", "kv_port": "100", "kv_replay_port": "200"}, ranks)
    assert len(events) == len(replays) == ranks


def test_cpu_vllm_blocks_are_a_multiple_of_32_on_both_sides(tmp_path: Path) -> None:
    topo = precise("tiny-glm45-cpu", tmp_path)  # vLLM's CPU attention takes MultipleOf(32)
    command = build_command(topo, LaunchContext())
    assert command is not None and flag(command.argv, "--block-size") == "32"
    settings = precise_from_topology(topo, simulated=False, model_path="/models/tiny")
    assert (settings.block_size, settings.tokenizer) == (32, "hf:/models/tiny")
    gpu = precise("glm45-fp8-vllm", tmp_path, block_size=48)
    assert precise_from_topology(gpu, simulated=False).block_size == 48
    assert precise_from_topology(gpu, simulated=True).block_size == 16  # the sim's
