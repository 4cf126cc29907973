"""Prefill/decode disaggregation with real vLLM on the CPU, through a real router.

Two vLLM 0.32 servers run the tiny GLM-4.5-architecture checkpoint with the commands of
the plan of `topologies/tiny-glm45-cpu-pd.yaml` (this tier's folder): the prefill pool's
and the decode pool's rank 0, KV handed over by vLLM's disk-based ExampleConnector in the
test's own `shared_storage_path`. Both are registered in a real Redis with their PD roles
(as tests/integration/router/test_pd.py does for the simulator) behind one router process.

Per request (completions and chat, streamed and not), read from vLLM's own counters: the
prefill server ran it (`request_success_total`, its prompt tokens), and the decode server
loaded the prompt's KV from the prefill instead of computing it
(`external_prefix_cache_hits_total` grows by the prompt tokens ExampleConnector injects:
all but the last, rounded down to whole KV blocks, example_connector.py
`align_to_block_size`). Every prompt is fresh: a prefix the decode already holds would be
served from its local cache and load nothing. Random weights give meaningless text.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from controlplane.engines import LaunchCommand
from controlplane.engines.venv import EngineVenv
from controlplane.local.ports import free_port
from controlplane.local.redis_server import LocalRedis
from controlplane.render.ray_serve import reference_plan
from controlplane.router.registry import EndpointInfo, register_info
from controlplane.router.server import RouterProcesses
from controlplane.spec import load_topology
from tests.engines.vllm_servers import stop_group, wait_healthy

pytestmark = [pytest.mark.engines, pytest.mark.slow, pytest.mark.timeout(1200)]

TOPOLOGY = Path(__file__).resolve().parent / "topologies" / "tiny-glm45-cpu-pd.yaml"
MODEL = "glm-4.5-tiny"
NS = "pdcpu"
ROLES = ("prefill", "decode")
NO_THINKING = {"chat_template_kwargs": {"enable_thinking": False}}


@dataclass
class PdStack:
    router: str
    engines: dict[str, str]  # role -> base URL
    storage: Path


def plan_commands(folder: Path) -> dict[str, LaunchCommand]:
    """Rank 0's command of each pool, from the plan, with the test's shared folder."""
    doc = yaml.safe_load(TOPOLOGY.read_text())
    doc["disaggregation"]["transfer"]["shared_storage_path"] = str(folder / "kv")
    path = folder / TOPOLOGY.name  # same file name, so the same deployment name
    path.write_text(yaml.safe_dump(doc))
    plan = reference_plan(load_topology(path))
    commands = {}
    for group in plan.groups:
        assert group.pd in ROLES and not group.simulated, group.name
        (rank,) = group.ranks
        commands[group.pd] = LaunchCommand(tuple(rank.argv), dict(rank.env))
    return commands


def start_engine(
    command: LaunchCommand, role: str, folder: Path
) -> tuple[subprocess.Popen[bytes], str]:
    """The plan's command with the rank worker's values filled in, in its own session
    (glmctl's venv launcher execs vLLM, whose engine core joins that process group)."""
    port = free_port()
    values = {"host": "127.0.0.1", "port": str(port), "python": sys.executable,
              "bootstrap_port": str(free_port())}  # fmt: skip
    resolved = command.resolve(values)
    assert not resolved.unresolved(), resolved.unresolved()
    env = {**os.environ, **resolved.env}
    with (folder / f"{role}.log").open("wb") as out:
        process = subprocess.Popen(list(resolved.argv), stdout=out, stderr=subprocess.STDOUT,
                                   env=env, start_new_session=True)  # fmt: skip
    return process, f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def stack(
    vllm_venv: EngineVenv, tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PdStack]:
    """Both pools' vLLM servers, Redis with their PD registrations, one router process."""
    folder = tmp_path_factory.mktemp("pd-vllm-cpu")
    commands = plan_commands(folder)
    config = json.loads(commands["decode"].argv[commands["decode"].argv.index(
        "--kv-transfer-config") + 1])  # fmt: skip
    assert config["kv_connector"] == "ExampleConnector"
    processes: dict[str, subprocess.Popen[bytes]] = {}
    urls: dict[str, str] = {}
    redis: LocalRedis | None = None
    router: RouterProcesses | None = None
    try:
        for role in ROLES:
            processes[role], urls[role] = start_engine(commands[role], role, folder)
        for role in ROLES:
            wait_healthy(processes[role], urls[role], folder / f"{role}.log")
        redis = LocalRedis.start()
        for role in ROLES:
            register_info(redis.url, EndpointInfo(role, urls[role], MODEL, "g", "vllm", pd=role),
                          NS)  # fmt: skip
        router = RouterProcesses.start(redis.url, policy="least_load", namespace=NS,
                                       scrape_interval=0.3)  # fmt: skip
        yield PdStack(router.url, urls, folder / "kv")
    finally:
        if router is not None:
            router.stop()
        if redis is not None:
            redis.stop()
        for process in processes.values():
            stop_group(process)


def fresh_text(words: int = 45) -> str:
    """About 300 tokens of the tiny tokenizer that no earlier prompt shares a block with."""
    tag = uuid.uuid4().hex[:6]
    return " ".join(f"{tag}{i}" for i in range(words))


def counters(url: str) -> dict[str, float]:
    """vLLM's counters (summed over labels) and its KV block size, from `/metrics`."""
    found: dict[str, float] = {}
    for line in httpx.get(url + "/metrics", timeout=10, trust_env=False).text.splitlines():
        if line.startswith("#") or not line.startswith("vllm:"):
            continue
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name == "vllm:cache_config_info":
            found["block_size"] = float(line.split('block_size="', 1)[1].split('"', 1)[0])
        elif name.endswith("_total"):  # not the `_created` timestamps beside them
            value = float(line.rsplit(" ", 1)[1])
            found[name] = found.get(name, 0.0) + value
            if 'source="external_kv_transfer"' in line:
                found["external_kv_transfer"] = value
    return found


def send(stack: PdStack, route: str, body: dict[str, Any]) -> tuple[httpx.Headers, str, int]:
    """(headers, text, prompt tokens) of one request through the router."""
    with httpx.Client(base_url=stack.router, timeout=300, trust_env=False) as client:
        if not body.get("stream"):
            answer = client.post(f"/v1/{route}", json=body)
            assert answer.status_code == 200, answer.text
            data = answer.json()
            choice = data["choices"][0]
            text = choice["text"] if route == "completions" else choice["message"]["content"]
            return answer.headers, text, data["usage"]["prompt_tokens"]
        with client.stream("POST", f"/v1/{route}", json=body) as response:
            assert response.status_code == 200, response.read()
            assert response.headers["content-type"].startswith("text/event-stream")
            events = [line[len("data: "):] for line in response.iter_lines()
                      if line.startswith("data: ")]  # fmt: skip
            headers = response.headers
    assert events[-1] == "[DONE]", events[-3:]
    chunks = [json.loads(e) for e in events[:-1]]
    usage = chunks[-1]["usage"]
    parts = [c["choices"][0].get("text") or c["choices"][0].get("delta", {}).get("content") or ""
             for c in chunks if c["choices"]]  # fmt: skip
    return headers, "".join(parts), usage["prompt_tokens"]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("route", ["completions", "chat/completions"])
def test_request_prefills_on_one_server_and_decodes_on_the_other(
    stack: PdStack, route: str, stream: bool
) -> None:
    body: dict[str, Any] = {"model": MODEL, "max_tokens": 8, "ignore_eos": True}
    if route == "completions":
        body["prompt"] = fresh_text()
    else:
        body.update(NO_THINKING, messages=[{"role": "user", "content": fresh_text()}])
    if stream:
        body.update(stream=True, stream_options={"include_usage": True})
    before = {role: counters(url) for role, url in stack.engines.items()}
    started = time.monotonic()
    headers, text, prompt_tokens = send(stack, route, body)
    print(f"[pd-vllm-cpu] {route} stream={stream}: {time.monotonic() - started:.1f} s")
    assert text
    assert headers["x-glmctl-endpoint"] == "decode"
    assert headers["x-glmctl-prefill-endpoint"] == "prefill"
    block = int(before["decode"]["block_size"])
    injected = (prompt_tokens - 1) // block * block  # example_connector.py, align_to_block_size
    assert injected >= block, f"a {prompt_tokens}-token prompt fills no {block}-token block"
    deadline = time.monotonic() + 10  # counters follow the answer by one engine step
    while True:
        after = {role: counters(url) for role, url in stack.engines.items()}
        delta = {role: {k: v - before[role].get(k, 0.0) for k, v in after[role].items()}
                 for role in ROLES}  # fmt: skip
        settled = delta["prefill"].get("vllm:request_success_total") == 1 and delta["decode"].get(
            "vllm:request_success_total") == 1  # fmt: skip
        if settled or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    prefill, decode = delta["prefill"], delta["decode"]
    assert prefill["vllm:request_success_total"] == 1  # P ran it: one token, its prompt
    assert prefill["vllm:prompt_tokens_total"] == prompt_tokens
    assert prefill["vllm:generation_tokens_total"] == 1
    assert decode["vllm:request_success_total"] == 1
    assert decode["vllm:generation_tokens_total"] == 8
    # D loaded the prompt's KV from P's files instead of computing it.
    assert decode["vllm:external_prefix_cache_hits_total"] == injected
    assert decode["external_kv_transfer"] == injected
    assert decode.get("vllm:prefix_cache_hits_total", 0.0) == 0  # nothing from its own cache
    assert any(stack.storage.iterdir()), "the prefill wrote no KV files"
