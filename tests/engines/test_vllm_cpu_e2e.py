"""Real vLLM on the CPU under glmctl: apply, serve through the router, observe, delete.

`glmctl apply topologies/tiny-glm45-cpu.yaml` on the embedded Ray (its own state folder and
a free router port), then requests through the router: completions and chat, streaming and
not; MTP speculative decoding active (vLLM's `spec_decode` counters move); the glm45 tool
and reasoning parsers loaded; the router's load snapshot in Redis read from vLLM's real
`/metrics`; `glmctl delete` stops the engine and the embedded cluster with no process left.
Random weights give meaningless text: assertions are on status, token counts and framing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from controlplane.engines.venv import EngineVenv
from controlplane.local.ports import free_port
from tests.conftest import TOPOLOGIES

pytestmark = [pytest.mark.engines, pytest.mark.slow, pytest.mark.timeout(1500)]

TOPOLOGY = TOPOLOGIES / "tiny-glm45-cpu.yaml"
GLMCTL = [sys.executable, "-c", "from controlplane.cli.main import run; run()"]
APPLY_TIMEOUT_S = 600
MODEL = "glm-4.5-tiny"
NO_THINKING = {"chat_template_kwargs": {"enable_thinking": False}}


@dataclass
class Deployment:
    name: str
    router_url: str
    redis_url: str
    keeper_pid: int
    env: dict[str, str]

    @property
    def namespace(self) -> str:
        return f"glmctl-{self.name}"


def glmctl(
    args: list[str], env: dict[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    """Run the `glmctl` CLI of this interpreter in a child process."""
    return subprocess.run(
        [*GLMCTL, *args], env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def deployment(
    vllm_venv: EngineVenv, tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    """The tiny topology applied on a private embedded cluster; deleted afterwards."""
    root = tmp_path_factory.mktemp("tiny-e2e")
    spec = yaml.safe_load(TOPOLOGY.read_text())
    port = free_port("127.0.0.1")
    spec["router"] = {**spec.get("router", {}), "port": port}
    topology = root / TOPOLOGY.name  # same file name, so the same deployment name
    topology.write_text(yaml.safe_dump(spec))
    env = {**os.environ, "GLMCTL_STATE_DIR": str(root / "state")}
    env.pop("RAY_ADDRESS", None)
    env.pop("GLMCTL_REDIS_URL", None)
    name = TOPOLOGY.stem
    applied = glmctl(["apply", "-y", str(topology)], env, APPLY_TIMEOUT_S)
    state_file = root / "state" / "embedded" / "state.json"
    try:
        assert applied.returncode == 0, applied.stdout[-3000:] + applied.stderr[-3000:]
        state = json.loads(state_file.read_text())
        yield Deployment(name, f"http://127.0.0.1:{port}", state["redis_url"], state["pid"], env)
    finally:
        glmctl(["delete", name], env, 180)


def _redis_hash(dep: Deployment, key: str) -> dict[str, Any]:
    import redis

    client = redis.Redis.from_url(dep.redis_url, decode_responses=True)
    try:
        raw: dict[str, str] = client.hgetall(f"{dep.namespace}:{key}")  # type: ignore[assignment]
    finally:
        client.close()
    return {k: json.loads(v) for k, v in raw.items()}


def _engine_url(dep: Deployment) -> str:
    endpoints = _redis_hash(dep, "endpoints")
    assert len(endpoints) == 1, endpoints
    return str(next(iter(endpoints.values()))["url"])


def _sse_events(response: httpx.Response) -> list[Any]:
    events: list[Any] = []
    for line in response.iter_lines():
        if line.startswith("data: "):
            data = line[len("data: ") :]
            events.append(data if data == "[DONE]" else json.loads(data))
    return events


def _metric(text: str, name: str) -> float:
    """Sum of a metric's samples in Prometheus text (0 when absent)."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and line[len(name)] in " {":
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_completions_through_router(deployment: Deployment) -> None:
    body = {"model": MODEL, "prompt": "Hello there", "max_tokens": 12, "ignore_eos": True}
    with httpx.Client(base_url=deployment.router_url, timeout=60) as client:
        answer = client.post("/v1/completions", json=body)
        assert answer.status_code == 200, answer.text
        assert answer.json()["usage"]["completion_tokens"] == 12
        stream = {**body, "stream": True, "stream_options": {"include_usage": True}}
        with client.stream("POST", "/v1/completions", json=stream) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            events = _sse_events(response)
    assert events[-1] == "[DONE]"
    assert events[-2]["usage"]["completion_tokens"] == 12
    assert sum(1 for e in events[:-2] if e["choices"]) >= 2


def test_chat_through_router(deployment: Deployment) -> None:
    messages = [{"role": "user", "content": "What is GLM-4.5?"}]
    body = {"model": MODEL, "messages": messages, "max_tokens": 10, "ignore_eos": True}
    with httpx.Client(base_url=deployment.router_url, timeout=60) as client:
        answer = client.post("/v1/chat/completions", json={**body, **NO_THINKING})
        assert answer.status_code == 200, answer.text
        data = answer.json()
        assert data["usage"]["completion_tokens"] == 10
        assert data["choices"][0]["message"]["role"] == "assistant"
        stream = {**body, **NO_THINKING, "stream": True, "stream_options": {"include_usage": True}}
        with client.stream("POST", "/v1/chat/completions", json=stream) as response:
            assert response.status_code == 200
            events = _sse_events(response)
    assert events[-1] == "[DONE]" and events[-2]["usage"]["completion_tokens"] == 10
    deltas = [e["choices"][0]["delta"] for e in events[:-2] if e["choices"]]
    assert deltas[0].get("role") == "assistant"
    assert events[-3]["choices"][0]["finish_reason"] == "length"


def test_glm45_reasoning_and_tool_parsers_loaded(deployment: Deployment) -> None:
    messages = [{"role": "user", "content": "Weather in Beijing?"}]
    body = {"model": MODEL, "messages": messages, "max_tokens": 8, "ignore_eos": True}
    tool = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
    with httpx.Client(base_url=deployment.router_url, timeout=60) as client:
        thinking = client.post("/v1/chat/completions", json=body).json()
        plain = client.post("/v1/chat/completions", json={**body, **NO_THINKING}).json()
        tools = client.post(
            "/v1/chat/completions", json={**body, "tools": [tool], "tool_choice": "auto"}
        )
    # The glm45 reasoning parser moves text before `</think>` into `reasoning`: with
    # thinking on (the template opens no `<think></think>`) all of it is reasoning ...
    assert thinking["usage"]["completion_tokens_details"]["reasoning_tokens"] == 8
    assert thinking["choices"][0]["message"].get("reasoning")
    # ... and with thinking off none of it is.
    assert plain["usage"]["completion_tokens_details"]["reasoning_tokens"] == 0
    # `tool_choice: auto` is refused (400) unless a tool parser is loaded; the glm45 tool
    # parser then reads the (random) output and finds no call in it.
    assert tools.status_code == 200, tools.text
    assert not tools.json()["choices"][0]["message"].get("tool_calls")
    log = _engine_log(deployment)
    assert "'tool_call_parser': 'glm45'" in log and "'reasoning_parser': 'glm45'" in log
    assert '"auto" tool choice has been enabled' in log


def _engine_log(dep: Deployment) -> str:
    """Rank 0's engine log, which the worker writes under the state folder."""
    logs = sorted((Path(dep.env["GLMCTL_STATE_DIR"]) / "logs").glob(f"{dep.name}-*-rank0.log"))
    assert logs, "no engine log"
    return logs[-1].read_text(errors="replace")


def test_mtp_speculative_decoding_active(deployment: Deployment) -> None:
    metrics = httpx.get(_engine_url(deployment) + "/metrics", timeout=10).text
    drafts = _metric(metrics, "vllm:spec_decode_num_drafts_total")
    body = {"model": MODEL, "prompt": "count", "max_tokens": 16, "ignore_eos": True}
    assert httpx.post(deployment.router_url + "/v1/completions", json=body, timeout=60).is_success
    after = httpx.get(_engine_url(deployment) + "/metrics", timeout=10).text
    # One token drafted per step: at least one draft per generated token but the first.
    assert _metric(after, "vllm:spec_decode_num_drafts_total") - drafts >= 15 / 2
    assert _metric(after, "vllm:spec_decode_num_draft_tokens_total") > 0


def test_router_load_snapshot_from_real_metrics(deployment: Deployment) -> None:
    body = {"model": MODEL, "prompt": "load", "max_tokens": 400, "ignore_eos": True}
    results: list[int] = []
    seen = threading.Event()
    deadline = time.monotonic() + 60

    def client() -> None:  # one request in flight until the snapshot saw load
        while not seen.is_set() and time.monotonic() < deadline:
            answer = httpx.post(deployment.router_url + "/v1/completions", json=body, timeout=120)
            results.append(answer.status_code)

    # Keep 8 requests running until a scrape lands while they run: a batch of 8 x 400 tokens
    # of the tiny model can finish within one 1 s scrape interval. (A flood like this once
    # made the engine's /health answer late and one late probe took the only replica out:
    # 503s. The router now waits for 3 late probes in a row, router/collector.py.)
    threads = [threading.Thread(target=client) for _ in range(8)]
    for thread in threads:
        thread.start()
    busiest = 0
    while any(t.is_alive() for t in threads) and time.monotonic() < deadline:
        (load,) = _redis_hash(deployment, "load").values()
        busiest = max(busiest, int(load["running"]))
        if busiest >= 1:
            seen.set()
        time.sleep(0.2)
    seen.set()
    for thread in threads:
        thread.join(timeout=120)
    assert results and set(results) == {200}, results
    assert busiest >= 1, "the router's snapshot never saw vLLM's running requests"
    engine = httpx.get(_engine_url(deployment) + "/metrics", timeout=10).text
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the next scrape sees the engine idle again
        (load,) = _redis_hash(deployment, "load").values()
        if load["running"] == 0 and load["prefix_queries"] >= 8:
            break
        time.sleep(0.5)
    assert load["running"] == 0 and load["waiting"] == 0
    assert 0 < load["prefix_queries"] <= _metric(engine, "vllm:prefix_cache_queries_total")


def test_locustfile_runs_against_real_vllm(deployment: Deployment, tmp_path: Path) -> None:
    """`glmctl loadtest` (the same locustfile) against real vLLM through the router."""
    out = tmp_path / "loadtest"
    result = glmctl(["loadtest", deployment.name, "--workload", "no-thinking", "--users", "2",
                     "--prompt-tokens", "24", "--output-tokens", "16", "--duration", "60s",
                     "--max-requests", "6", "--slo", "ttft_p99=60s,itl_p99=10s,availability=0.5",
                     "--out", str(out)], deployment.env, 300)  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["summary"]["completed"] == 6
    assert summary["summary"]["total_output_tokens"] == 6 * 16  # usage from vLLM, ignore_eos
    assert summary["summary"]["ttft_s"]["p50"] > 0 and summary["summary"]["itl_s"]["count"] > 0
    checks = {c["name"]: c for c in summary["cross_check"] if c["source"] != "simulator accounting"}
    assert checks["output_tokens"]["passed"], checks  # vllm:generation_tokens_total moved by 96
    assert (out / "locust.html").is_file() and (out / "ttft_cdf.png").is_file()


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def _descendants(pid: int) -> set[int]:
    tree, found, todo = _children(), set(), [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.add(pid)
    return alive


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def test_delete_stops_engine_without_orphans(deployment: Deployment) -> None:
    tree = _descendants(deployment.keeper_pid) | {deployment.keeper_pid}
    engines = {p for p in tree if "vllm.entrypoints.openai.api_server" in _cmdline(p)}
    assert engines, "no vLLM process under the embedded cluster"
    engine_tree = set().union(*(_descendants(p) for p in engines)) | engines
    deleted = glmctl(["delete", deployment.name], deployment.env, 180)
    assert deleted.returncode == 0, deleted.stdout + deleted.stderr
    deadline = time.monotonic() + 30
    while _alive(tree | engine_tree) and time.monotonic() < deadline:
        time.sleep(0.5)
    left = _alive(tree | engine_tree)
    assert not left, {p: _cmdline(p)[:120] for p in left}
    again = glmctl(["delete", deployment.name], deployment.env, 120)
    assert again.returncode == 0, again.stdout + again.stderr  # delete is idempotent
