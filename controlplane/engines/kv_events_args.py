"""The engine flags that make a replica publish KV events, when the router asks for them.

Pure. A topology with `router.policy: precise_prefix` gets, on rank 0's command:
- vLLM 0.32 (`vllm/config/kv_events.py` KVEventsConfig, `vllm/engine/arg_utils.py`):
  `--kv-events-config '{"enable_kv_cache_events":true,"publisher":"zmq",
  "endpoint":"tcp://*:{kv_port}","replay_endpoint":"tcp://*:{kv_replay_port}","topic":"kv"}'`
  plus `--prefix-caching-hash-algo sha256_cbor` and `--block-size B`, so the hashes the
  router computes (router/kv_hash.py) are the engine's (0.32's default algorithm, `sha256`,
  pickles: no other process can reproduce it). vLLM binds wildcard endpoints and connects
  to the rest (`ZmqEventPublisher._is_bind_endpoint`): the PUB endpoint must be `*` to be
  bound; each DP rank binds both ports plus its rank (`offset_endpoint_port`).
- SGLang 0.5.23 (`sglang/srt/arg_groups/fields/observability.py` kv_events_config, same
  JSON keys, `sglang/srt/disaggregation/kv_events.py`): the same config plus `--page-size
  B`: SGLang publishes one hash per page (default 1 token), a sha256 chain over the page's
  token ids that router/kv_hash.py reproduces (`sglang_sha256`) at the router's block
  size. Each attention-DP rank (or DP rank) publishes on port + rank. Some attention
  backends move the page size (`srt/arg_groups/overrides.py`: FlashMLA, DSA and HPC-Ops
  use 64); the router then matches nothing and falls back, never a wrong hit.
- The simulator: the same `--kv-events-config` (engines/sim/kv_events.py); it publishes the
  hashes of the engine it mimics (registry.py `simulated_hash_scheme`).
Which scheme the router uses is the engine profile's `kv_hash_scheme` (engines/registry.py).
`{kv_port}` and `{kv_replay_port}` are placeholders the rank worker fills with the first
of `ranks` consecutive free ports each (`kv_ports`), as it fills `{port}`. The replica then
registers one feed per rank (`feed_urls`) with the router's registry.
Other policies: nothing changes (their plans and renders stay byte-identical).
"""

from __future__ import annotations

import json
import socket
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from controlplane.engines.base import KV_PORT, KV_REPLAY_PORT, LaunchCommand
from controlplane.router import kv_hash
from controlplane.spec.models import EngineKind
from controlplane.spec.router import RouterPolicy

if TYPE_CHECKING:
    from controlplane.planner.models import DeploymentPlan, EngineGroupPlan
    from controlplane.router.kv_tokens import PreciseSettings
    from controlplane.spec import Topology

TOPIC = "kv"
HASH_ALGO = "sha256_cbor"  # vLLM 0.32 PrefixCachingHashAlgo: the one router/kv_hash.py computes
DEFAULT_BLOCK_SIZE = 16
CPU_BLOCK_MULTIPLE = 32


def publishes(topology: Topology) -> bool:
    """True when the router needs this topology's engines' KV events."""
    return topology.spec.router.policy is RouterPolicy.PRECISE_PREFIX


def feed_count(topology: Topology) -> int:
    """KV feeds one replica publishes: one per (attention-)DP rank, one for the simulator."""
    return max(1, topology.dp)


def kv_block_size(topology: Topology) -> int:
    """The KV block size engines and router hash with: `router.precise_prefix.block_size`
    (16 by default), rounded up to a multiple of 32 for vLLM's CPU build, whose attention
    backend takes no other (vllm/v1/attention/backends/cpu_attn.py: `MultipleOf(32)`;
    vLLM 0.32 refuses 16 with "No common block size")."""
    from controlplane.local.cpu import targets_cpu

    weights = topology.spec.router.precise_prefix
    block = weights.block_size if weights else DEFAULT_BLOCK_SIZE
    if targets_cpu(topology) and block % CPU_BLOCK_MULTIPLE:
        block += CPU_BLOCK_MULTIPLE - block % CPU_BLOCK_MULTIPLE
    return block


def events_config() -> str:
    """vLLM's / SGLang's `--kv-events-config` JSON, with the port placeholders."""
    config = {
        "enable_kv_cache_events": True,
        "publisher": "zmq",
        "endpoint": f"tcp://*:{KV_PORT}",
        "replay_endpoint": f"tcp://*:{KV_REPLAY_PORT}",
        "topic": TOPIC,
    }
    return json.dumps(config, separators=(",", ":"))


def kv_event_args(topology: Topology, engine: EngineKind | str) -> list[str]:
    """The flags `engine` (vllm | sglang | sim) needs to publish for precise_prefix; []
    for any other policy or engine."""
    if not publishes(topology):
        return []
    kind = EngineKind(engine)
    args = ["--kv-events-config", events_config()]
    block = str(kv_block_size(topology))
    if kind is EngineKind.VLLM:
        return [*args, "--prefix-caching-hash-algo", HASH_ALGO, "--block-size", block]
    if kind is EngineKind.SGLANG:
        return [*args, "--page-size", block]
    if kind is EngineKind.SIM:
        return args
    return []


def with_kv_events(
    command: LaunchCommand | None, topology: Topology, engine: EngineKind | str, node_rank: int
) -> LaunchCommand | None:
    """`command` with `kv_event_args` appended on rank 0 (unchanged otherwise)."""
    args = kv_event_args(topology, engine) if command is not None and node_rank == 0 else []
    if command is None or not args:
        return command
    return replace(command, argv=(*command.argv, *args))


# Where the KV-event ports are picked (inclusive): a NetworkPolicy opens this range from
# the routers to the engines' pods (render/k8s/network.py), as the ports are chosen at run time.
KV_PORT_RANGE = (20_000, 59_999)


def kv_ports(ranks: int, host: str = "127.0.0.1", tries: int = 200) -> dict[str, str]:
    """`{kv_port, kv_replay_port}`: the first of `ranks` consecutive free ports each (the
    engine adds its rank to both); one run of 2 x ranks ports checked free on `host`."""
    import random

    low, high = KV_PORT_RANGE
    for _ in range(tries):
        base = random.randrange(low, high + 1 - 2 * ranks)
        if all(_free(host, base + i) for i in range(2 * ranks)):
            return {"kv_port": str(base), "kv_replay_port": str(base + ranks)}
    raise RuntimeError(f"no {2 * ranks} consecutive free ports on {host} for KV events")


def _free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def plan_feed_count(plan: DeploymentPlan, group: EngineGroupPlan | None = None) -> int:
    """KV feeds each replica of `group` (default: the plan's first) publishes (0: none)."""
    group = group or plan.group
    rank0 = group.ranks[0].argv if group.ranks else ()
    if not any(KV_PORT in arg for arg in rank0):
        return 0
    return max(1, int(plan.spec.get("parallelism", {}).get("data", 1)))


def feed_urls(values: dict[str, Any], ranks: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The connect URLs (PUB, replay) of a replica's feeds from its filled-in `values`."""
    host, pub, replay = values["host"], int(values["kv_port"]), int(values["kv_replay_port"])
    return (
        tuple(f"tcp://{host}:{pub + r}" for r in range(ranks)),
        tuple(f"tcp://{host}:{replay + r}" for r in range(ranks)),
    )


def precise_from_topology(
    topo: Topology, simulated: bool, model_path: str | None = None
) -> PreciseSettings:
    """The router settings of a topology whose policy is precise_prefix (`simulated`: the
    simulator runs in place of the engine)."""
    from controlplane.engines.registry import profile_for, simulated_hash_scheme
    from controlplane.engines.sim.router_tokens import FACTORY
    from controlplane.engines.sim.tokens import BLOCK_TOKENS  # the simulator's blocks
    from controlplane.router.kv_tokens import PreciseSettings

    spec = topo.spec
    weights = spec.router.precise_prefix
    factory = ""
    if simulated:
        path = spec.simulation.tokenizer
        tokenizer, factory = (f"sim:{path}" if path else "sim"), FACTORY
        scheme = simulated_hash_scheme(spec.simulation.flavor)
    else:  # no scheme: the engine's hashes cannot be reproduced, no prompt matches them
        scheme = profile_for(topo.engine).kv_hash_scheme
        tokenizer = f"hf:{model_path or topo.model.hf_repo}" if scheme else ""
    return PreciseSettings(
        tokenizer=tokenizer,
        factory=factory,
        model=topo.served_model_name,
        context_length=topo.context_length,
        block_size=BLOCK_TOKENS if simulated else kv_block_size(topo),
        prefix=weights.prefix if weights else 1.0,
        queue=weights.queue if weights else 1.0,
        kv=weights.kv if weights else 1.0,
        hash_scheme=scheme or kv_hash.VLLM_SHA256_CBOR,
    )


def precise_settings(topo: Topology, simulated: bool) -> str:
    """The router's `--precise` JSON for a precise_prefix topology; "" for other policies."""
    if topo.spec.router.policy is not RouterPolicy.PRECISE_PREFIX:
        return ""
    return precise_from_topology(topo, simulated).to_json()
