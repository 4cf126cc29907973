"""The control plane's overhead on a real engine: vLLM on the CPU, by hand versus glmctl.

    python -m ops.benchmarks.vllm_cpu_overhead [--tokens 256] [--rounds 3]

Serves the tiny GLM-4.5 model (topologies/tiny-glm45-cpu.yaml) both ways in one run, on
the same machine:
1. by hand: the same vLLM argv glmctl plans (builder output, launcher stripped), started
   directly from the cached venv;
2. under glmctl, while the first idles: `glmctl apply -y` on a private embedded Ray
   cluster (router on a free port), then `glmctl delete`.
Both stay up while the load runs, target after target, round after round, so drift on this
shared machine hits both alike. Reported: start time (process start, or `apply`, to a served
request; glmctl's includes starting the embedded Ray cluster and the router), memory (PSS of
the engine's process tree; for glmctl also Ray, Redis and the router), tokens/s for 1 and 8
concurrent requests of `--tokens` tokens (`ignore_eos`, best of `--rounds`) and the best
time to first token (best of the rounds' medians). Under glmctl the load runs through the
router and directly against the engine, so the router's share is visible.
Ratios are glmctl / by hand.
Needs the cached vLLM venv (`pytest -m engines` builds it, or the first `glmctl apply`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from controlplane.engines import LaunchContext, build_command
from controlplane.engines.venv import engine_argv, ensure_engine_venv, split_launch, venv_root
from controlplane.local.ports import free_port
from controlplane.local.tiny_model import ensure_tiny_model
from controlplane.spec import load_topology
from controlplane.spec.models import EngineKind

REPO = Path(__file__).resolve().parents[2]
TOPOLOGY = REPO / "topologies" / "tiny-glm45-cpu.yaml"
MODEL = "glm-4.5-tiny"
GLMCTL = [sys.executable, "-c", "from controlplane.cli.main import run; run()"]
START_TIMEOUT_S = 600


@dataclass
class Result:
    label: str
    start_s: float = 0.0
    engine_pss_mb: float = 0.0
    other_pss_mb: float = 0.0
    tps: dict[str, float] = field(default_factory=dict)
    ttft_ms: dict[str, float] = field(default_factory=dict)


# ----- measuring -----------------------------------------------------------------------------
def _post(url: str, body: dict[str, Any], timeout: float = 300) -> dict[str, Any]:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.load(response)  # type: ignore[no-any-return]


def tokens_per_s(base: str, tokens: int, concurrency: int, rounds: int) -> float:
    body = {"model": MODEL, "prompt": "Hello there, how are you", "max_tokens": tokens}
    body["ignore_eos"] = True
    best = 0.0
    for _ in range(rounds):
        began = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            answers = list(
                pool.map(lambda _: _post(base + "/v1/completions", body), range(concurrency))
            )
        made = sum(a["usage"]["completion_tokens"] for a in answers)
        best = max(best, made / (time.perf_counter() - began))
    return best


def ttft_ms(base: str, samples: int = 5) -> float:
    """Median time to the first streamed token (one request at a time)."""
    body = {"model": MODEL, "prompt": "Hi", "max_tokens": 4, "stream": True, "ignore_eos": True}
    times = []
    for _ in range(samples):
        request = urllib.request.Request(
            base + "/v1/completions",
            json.dumps(body).encode(),
            {"content-type": "application/json"},
        )
        began = time.perf_counter()
        with urllib.request.urlopen(request, timeout=60) as response:
            for line in response:
                if line.startswith(b"data: {") and b'"text":""' not in line:
                    times.append((time.perf_counter() - began) * 1000)
                    break
            response.read()
    return statistics.median(times)


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def tree(pid: int) -> set[int]:
    children, found, todo = _children(), {pid}, [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def pss_mb(pids: set[int]) -> float:
    """Proportional set size of `pids` (shared pages split between their users), MiB."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def wait_served(base: str, deadline: float) -> None:
    body = {"model": MODEL, "prompt": "up", "max_tokens": 1}
    while time.monotonic() < deadline:
        try:
            _post(base + "/v1/completions", body, timeout=5)
            return
        except OSError:
            time.sleep(0.25)
    raise TimeoutError(f"{base} did not serve in time")


# ----- the two ways to run it ------------------------------------------------------------------
@dataclass
class Running:
    """A started deployment: where to send load, and how to stop it."""

    result: Result
    targets: dict[str, str]  # label -> base URL
    stop: Any


def by_hand() -> Running:
    topology = load_topology(TOPOLOGY)
    venv = ensure_engine_venv(EngineKind.VLLM, topology.spec.engine.version or "0.32.0")
    model = ensure_tiny_model(python=venv.python)
    port = free_port("127.0.0.1")
    command = build_command(topology, LaunchContext())
    assert command is not None
    resolved = command.resolve({"host": "127.0.0.1", "port": str(port)})
    argv = engine_argv(venv, split_launch(list(resolved.argv))[1], model)
    cache = str(venv_root().parent / "vllm-cache")
    env = {**os.environ, **resolved.env, "VLLM_CACHE_ROOT": cache}
    result = Result("by hand")
    began = time.monotonic()
    process = subprocess.Popen(
        argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )

    def stop() -> None:
        os.killpg(process.pid, 15)
        process.wait(timeout=60)

    base = f"http://127.0.0.1:{port}"
    try:
        wait_served(base, began + START_TIMEOUT_S)
    except TimeoutError:
        stop()
        raise
    result.start_s = time.monotonic() - began
    result.engine_pss_mb = pss_mb(tree(process.pid))
    return Running(result, {"engine": base}, stop)


def under_glmctl(tmp: Path) -> Running:
    result = Result("glmctl")
    spec = yaml.safe_load(TOPOLOGY.read_text())
    port = free_port("127.0.0.1")
    spec["router"] = {**spec.get("router", {}), "port": port}
    topology = tmp / TOPOLOGY.name
    topology.write_text(yaml.safe_dump(spec))
    env = {**os.environ, "GLMCTL_STATE_DIR": str(tmp / "state")}
    env.pop("RAY_ADDRESS", None)

    def stop() -> None:
        subprocess.run([*GLMCTL, "delete", TOPOLOGY.stem], env=env, capture_output=True)

    began = time.monotonic()
    applied = subprocess.run(
        [*GLMCTL, "apply", "-y", str(topology)], env=env, capture_output=True, text=True
    )
    if applied.returncode != 0:
        stop()
        raise RuntimeError(applied.stdout[-2000:] + applied.stderr[-2000:])
    router = f"http://127.0.0.1:{port}"
    wait_served(router, began + START_TIMEOUT_S)
    result.start_s = time.monotonic() - began
    state = json.loads((tmp / "state/embedded/state.json").read_text())
    everything = tree(int(state["pid"]))
    api = [p for p in everything if "vllm.entrypoints.openai.api_server" in cmdline(p)]
    engine = tree(api[0])
    result.engine_pss_mb = pss_mb(engine)
    result.other_pss_mb = pss_mb(everything - engine)
    engine_url = _engine_url(state["redis_url"], TOPOLOGY.stem)
    return Running(result, {"engine": engine_url, "router": router}, stop)


def measure(runs: list[Running], tokens: int, rounds: int) -> None:
    """Load every target in turn, round after round (drift on a shared machine hits all)."""
    for run in runs:
        for base in run.targets.values():
            _post(base + "/v1/completions", {"model": MODEL, "prompt": "warm", "max_tokens": 4})
    for _ in range(rounds):
        for run in runs:
            for label, base in run.targets.items():
                for concurrency in (1, 8):
                    key = f"{label} x{concurrency}"
                    tps = tokens_per_s(base, tokens, concurrency, 1)
                    run.result.tps[key] = max(run.result.tps.get(key, 0.0), tps)
                ttft = ttft_ms(base)
                run.result.ttft_ms[label] = min(run.result.ttft_ms.get(label, ttft), ttft)


def _engine_url(redis_url: str, name: str) -> str:
    from controlplane.store.redis import router_namespace, sync_client

    client = sync_client(redis_url, decode_responses=True)
    try:
        endpoints: dict[str, str] = client.hgetall(f"{router_namespace(name)}:endpoints")
    finally:
        client.close()
    return str(json.loads(next(iter(endpoints.values())))["url"])


def report(hand: Result, ctl: Result) -> str:
    def ratio(a: float, b: float) -> str:
        return f"{a / b:.2f}x" if b else "-"

    lines = [
        f"{'':34}{'by hand':>12}{'glmctl':>12}{'glmctl/hand':>13}",
        f"{'start to first answer (s)':34}{hand.start_s:12.1f}{ctl.start_s:12.1f}"
        f"{ratio(ctl.start_s, hand.start_s):>13}",
        f"{'engine memory, PSS (MiB)':34}{hand.engine_pss_mb:12.0f}{ctl.engine_pss_mb:12.0f}"
        f"{ratio(ctl.engine_pss_mb, hand.engine_pss_mb):>13}",
        f"{'+ Ray, Redis, router (MiB)':34}{'':>12}{ctl.other_pss_mb:12.0f}",
    ]
    for key in ("x1", "x8"):
        base = hand.tps[f"engine {key}"]
        for path in ("engine", "router"):
            value = ctl.tps[f"{path} {key}"]
            label = f"tokens/s {key} ({'direct' if path == 'engine' else 'via router'})"
            lines.append(f"{label:34}{base:12.0f}{value:12.0f}{ratio(value, base):>13}")
    for path in ("engine", "router"):
        hand_ttft, value = hand.ttft_ms["engine"], ctl.ttft_ms[path]
        label = f"TTFT ms ({'direct' if path == 'engine' else 'via router'})"
        lines.append(f"{label:34}{hand_ttft:12.1f}{value:12.1f}{ratio(value, hand_ttft):>13}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    hand = by_hand()
    try:
        with tempfile.TemporaryDirectory(prefix="glmctl-bench-") as tmp:
            ctl = under_glmctl(Path(tmp))
            try:
                measure([hand, ctl], args.tokens, args.rounds)
            finally:
                ctl.stop()
    finally:
        hand.stop()
    print(report(hand.result, ctl.result))


if __name__ == "__main__":
    main()
