"""precise_prefix against real vLLM on the CPU: the tiny GLM-4.5-architecture model with
the KV-event flags the planner gives a precise_prefix topology (`kv_events_args.py`).

One vLLM engine and one simulator behind a real router process and Redis. An observer
subscriber on the same feed (ZMQ PUB fans out) shows that the router's tokenization and
hashes (`kv_tokens.HfTokens`, `kv_hash`) name the blocks vLLM announces, for completions
and chat; that evicted blocks leave the index (vLLM's own prefix-cache counter agrees);
and the router sends a prompt vLLM holds to vLLM. Expected block counts come from vLLM's
own `usage.prompt_tokens`. Event endpoints are ipc:// sockets in the test's folder (vLLM
binds those), so nothing listens beyond loopback.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from controlplane.engines.kv_events_args import kv_event_args, precise_from_topology
from controlplane.engines.sim import SimServer
from controlplane.engines.venv import EngineVenv
from controlplane.local.ports import free_port
from controlplane.local.redis_server import LocalRedis
from controlplane.router import kv_hash
from controlplane.router.kv_subscriber import KvFeed, KvSubscriber
from controlplane.router.kv_tokens import HfTokens, PreciseSettings
from controlplane.router.registry import EndpointInfo, register_info
from controlplane.router.server import RouterProcesses
from controlplane.spec import Topology, load_topology
from tests.conftest import TOPOLOGIES
from tests.engines.vllm_servers import stop_group, wait_healthy

pytestmark = [pytest.mark.engines, pytest.mark.slow, pytest.mark.timeout(1200)]

MODEL = "glm-4.5-tiny"
BLOCKS = 24  # vLLM's whole KV pool (--num-gpu-blocks-override): a few prompts evict
NS = "kvroute"


def precise_topology(tmp_path: Path) -> Topology:
    doc = yaml.safe_load((TOPOLOGIES / "tiny-glm45-cpu.yaml").read_text())
    doc["router"] = {"policy": "precise_prefix", "replicas": 1}
    path = tmp_path / "tiny-precise.yaml"
    path.write_text(yaml.safe_dump(doc))
    return load_topology(path)


def event_flags(topo: Topology, folder: Path) -> tuple[list[str], KvFeed]:
    """The planner's vLLM flags, with the TCP endpoints swapped for ipc sockets."""
    flags = kv_event_args(topo, "vllm")
    config = json.loads(flags[1])
    config["endpoint"], config["replay_endpoint"] = f"ipc://{folder}/pub", f"ipc://{folder}/rep"
    flags[1] = json.dumps(config)
    return flags, KvFeed("vllm", config["endpoint"], config["replay_endpoint"], "vllm-1")


def start_vllm(venv: EngineVenv, model: Path, flags: list[str], folder: Path) -> tuple[
    subprocess.Popen[bytes], str
]:  # fmt: skip
    port = free_port()
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1",
           "VLLM_CACHE_ROOT": str(folder / "cache")}  # fmt: skip
    argv = [str(venv.python), "-m", "vllm.entrypoints.openai.api_server", "--model", str(model),
            "--served-model-name", MODEL, "--host", "127.0.0.1", "--port", str(port),
            "--enforce-eager", "--distributed-executor-backend", "uni", "--max-model-len", "512",
            "--dtype", "bfloat16", "--max-num-seqs", "4",
            "--num-gpu-blocks-override", str(BLOCKS), *flags]  # fmt: skip
    with (folder / "vllm.log").open("wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env,
                                   start_new_session=True)  # fmt: skip
    return process, f"http://127.0.0.1:{port}"


class Stack:
    """vLLM, a simulator, Redis and one router process, all on loopback."""

    def __init__(self, url: str, feed: KvFeed, router: str, settings: PreciseSettings) -> None:
        self.url, self.feed, self.router = url, feed, router
        self.block = settings.block_size  # 32: vLLM's CPU attention takes no 16
        self.tokens = HfTokens.load(settings.tokenizer.removeprefix("hf:"))

    def send(self, base: str, route: str, body: dict[str, Any]) -> httpx.Response:
        reply = httpx.post(f"{base}/v1/{route}", json=body, timeout=120, trust_env=False)
        reply.raise_for_status()
        return reply

    def chain(self, body: dict[str, Any], chat: bool) -> list[int]:
        ids = self.tokens(body, chat)
        assert ids is not None
        return kv_hash.block_keys(ids, self.block)


@pytest.fixture(scope="module")
def stack(
    vllm_venv: EngineVenv, tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("kvroute-vllm")
    topo = precise_topology(folder)
    flags, feed = event_flags(topo, folder)
    process, url = start_vllm(vllm_venv, tiny_model_dir, flags, folder)
    redis = LocalRedis.start()
    started: list[Any] = []
    try:
        wait_healthy(process, url, folder / "vllm.log")
        info = EndpointInfo("vllm", url, MODEL, "g", "vllm", kv_events=(feed.publisher,),
                            kv_replay=(feed.replay or "",), engine_id=feed.engine_id)  # fmt: skip
        register_info(redis.url, info, NS)
        sim_events = {"enable_kv_cache_events": True, "endpoint": f"ipc://{folder}/sim-pub",
                      "replay_endpoint": f"ipc://{folder}/sim-rep"}  # fmt: skip
        sim = SimServer.start(topo, flavor="vllm", time_scale=50.0,
                              kv_events_config=json.dumps(sim_events))  # fmt: skip
        started.append(sim)
        register_info(redis.url, EndpointInfo(
            "sim", sim.url, MODEL, "g", "vllm", kv_events=(sim_events["endpoint"],),
            kv_replay=(sim_events["replay_endpoint"],), engine_id="sim-1"), NS)  # fmt: skip
        settings = precise_from_topology(topo, False, str(tiny_model_dir))
        router = RouterProcesses.start(redis.url, policy="precise_prefix", namespace=NS,
                                       precise=settings.to_json(), scrape_interval=0.3)  # fmt: skip
        started.append(router)
        yield Stack(url, feed, router.url, settings)
    finally:
        for thing in reversed(started):
            thing.stop()
        redis.stop()
        stop_group(process)


def text(tag: str, words: int = 30) -> str:  # about 200 tiny-tokenizer tokens
    return " ".join(f"{tag}{i}" for i in range(words))


def prefix_hits(url: str) -> float:
    for line in httpx.get(url + "/metrics", timeout=10).text.splitlines():
        if line.startswith("vllm:prefix_cache_hits_total"):
            return float(line.split()[-1])
    raise AssertionError("no vllm:prefix_cache_hits_total in vLLM's /metrics")


async def until(check: Callable[[], bool], timeout: float = 20.0) -> None:
    import asyncio

    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def test_index_learns_vllm_blocks_for_completions_and_chat_and_forgets_evicted(
    stack: Stack,
) -> None:
    observer = KvSubscriber()
    observer.watch(stack.feed)
    try:
        await observer.wait_synced("vllm", timeout=10)
        first = {"model": MODEL, "prompt": text("alpha"), "max_tokens": 2}
        reply = stack.send(stack.url, "completions", first).json()
        blocks = reply["usage"]["prompt_tokens"] // stack.block
        keys = stack.chain(first, False)
        assert blocks >= 3 and len(keys) == blocks
        await until(lambda: observer.index.runs(keys).get("vllm") == blocks)
        chat = {"model": MODEL, "messages": [{"role": "user", "content": text("chat")}],
                "max_tokens": 2, "chat_template_kwargs": {"enable_thinking": False}}  # fmt: skip
        reply = stack.send(stack.url, "chat/completions", chat).json()
        chat_keys = stack.chain(chat, True)
        assert len(chat_keys) == reply["usage"]["prompt_tokens"] // stack.block
        await until(lambda: observer.index.runs(chat_keys).get("vllm") == len(chat_keys))
        for n in range(BLOCKS // blocks + 2):  # other prompts fill the pool: `alpha` goes
            stack.send(stack.url, "completions", {**first, "prompt": text(f"fill{n}")})
        await until(lambda: "vllm" not in observer.index.runs(keys))
        before = prefix_hits(stack.url)
        stack.send(stack.url, "completions", first)  # vLLM agrees: nothing of it was left
        assert prefix_hits(stack.url) == before
        await until(lambda: observer.index.runs(keys).get("vllm") == blocks)
        assert observer.stats.resyncs == 0 and observer.stats.bad_frames == 0
    finally:
        await observer.close()


def test_router_sends_a_prefix_vllm_holds_to_vllm(stack: Stack) -> None:
    held = {"model": MODEL, "prompt": text("held"), "max_tokens": 2}
    stack.send(stack.url, "completions", held)  # straight to vLLM: the router never saw it
    key = 'glmctl_router_kv_index_blocks{endpoint="vllm"}'
    deadline = time.monotonic() + 20
    while True:
        metrics = httpx.get(stack.router + "/metrics", timeout=10).text
        if any(
            line.startswith(key) and float(line.split()[-1]) > 0 for line in metrics.splitlines()
        ):
            break
        assert time.monotonic() < deadline, "the router never indexed vLLM's blocks"
        time.sleep(0.1)
    for _ in range(4):  # both engines idle: only the cached prefix tells them apart
        for variant in ("", " and one more question"):
            body = {**held, "prompt": held["prompt"] + variant}
            reply = stack.send(stack.router, "completions", body)
            assert reply.headers["x-glmctl-endpoint"] == "vllm"
    assert 'glmctl_router_kv_fallbacks_total{reason="no_tokenizer"} 0' in metrics
