"""`glmctl apply` of a topology with an overflow endpoint, through the embedded Ray cluster:
apply refuses while the key's variable is unset, then runs the router with the key (handed
over by apply, never on a command line), overflow reaches the key-checking stand-in, and the
key is in no output, log or file of the whole cycle."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from controlplane.engines.sim import SimServer
from controlplane.spec import load_topology

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(400)]
REPO = Path(__file__).resolve().parents[3]
GLMCTL = str(Path(sys.executable).with_name("glmctl"))
NAME = "ext-apply"
MODEL = "glm-4.5-air-fp8"


def topology(hosted_url: str) -> str:
    base = (REPO / "topologies" / "glm45-air-fp8-h200x1.yaml").read_text()
    return (
        f"name: {NAME}\n{base}engine: sim\nsimulation: {{time_scale: 4}}\n"
        "router:\n  overflow: {to: [hosted], saturated_at: 1}\n"
        f"external:\n  - name: hosted\n    base_url: {hosted_url}/v1\n    model: glm-hosted\n"
        "    api_key: {env: HOSTED_KEY}\n    capacity: 8\n"
    )


def test_apply_with_an_overflow_endpoint_never_shows_its_key(tmp_path: Path) -> None:
    key = "sk-hosted-" + secrets.token_hex(16)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("GLMCTL_", "RAY_ADDRESS"))}
    base.pop("HOSTED_KEY", None)
    state = tmp_path / "state"
    env = {**base, "GLMCTL_STATE_DIR": str(state)}
    outputs: dict[str, str] = {}
    hosted = SimServer.start(load_topology(REPO / "topologies" / "glm45-air-fp8-h200x1.yaml"),
                             served_model_name="glm-hosted", api_key_env="HOSTED_KEY",
                             env={"HOSTED_KEY": key})  # fmt: skip
    spec = tmp_path / f"{NAME}.yaml"
    spec.write_text(topology(hosted.url))

    def glmctl(*args: str, extra: dict[str, str] | None = None, check: bool = True) -> str:
        done = subprocess.run([GLMCTL, *args], capture_output=True, text=True, timeout=300,
                              env={**env, **(extra or {})}, cwd=tmp_path)  # fmt: skip
        outputs[f"glmctl {' '.join(args)} ({len(outputs)})"] = done.stdout + done.stderr
        assert done.returncode == 0 or not check, done.stdout + done.stderr
        return done.stdout + done.stderr

    try:
        refused = glmctl("apply", str(spec), "-y", check=False)
        assert "Traceback" not in refused and "To fix:" in refused
        assert "external endpoint `hosted` has no API key" in refused and "HOSTED_KEY" in refused
        glmctl("apply", str(spec), "-y", extra={"HOSTED_KEY": key})
        status = glmctl("status", "-o", "json")
        url = next(line for line in status.splitlines() if '"endpoint"' in line)
        url = url.split('"endpoint": "')[1].rstrip('",')
        served = drive(url, 8)
        local = [s for s in served if s != "external/hosted"]
        assert local and all(s.startswith(f"{NAME}-") for s in local)  # the engine replica
        assert "external/hosted" in served  # overflow reached the stand-in
        at_hosted = httpx.get(hosted.url + "/sim/stats", timeout=5).json()["ttft_count"]
        assert at_hosted == served.count("external/hosted")
        outputs["metrics"] = httpx.get(url + "/metrics", timeout=10).text
        assert (
            'glmctl_router_overflow_total{reason="saturated",endpoint="external/hosted"}'
            in (outputs["metrics"])
        )
        shown = glmctl("status")
        assert f"{NAME} external/hosted (overflow) {hosted.url}/v1: up" in shown
        glmctl("plan", str(spec), extra={"HOSTED_KEY": key})
        outputs["command lines (ps)"] = subprocess.run(
            ["ps", "-eo", "args"], capture_output=True, text=True
        ).stdout
    finally:
        try:
            glmctl("delete", NAME, check=False)
        finally:
            hosted.stop()
    stash = state / "secrets" / "env" / "HOSTED_KEY"
    secret_files = {stash, state / "embedded" / "redis.password", state / "embedded" / "state.json"}
    for path in state.rglob("*"):
        if path.is_file() and path not in secret_files:
            outputs[str(path)] = path.read_text(errors="replace")
    leaks = [where for where, text in outputs.items() if key in text]
    print(f"\nsearched {len(outputs)} outputs, logs and files for the external key")
    assert not leaks, f"the external endpoint's key appears in: {leaks}"
    assert not stash.exists() or stash.stat().st_mode & 0o077 == 0


def drive(url: str, count: int) -> list[str]:
    """`count` concurrent streams through the router; the endpoints that served them."""
    served: list[str] = []
    body = {"model": MODEL, "messages": [{"role": "user", "content": "story " * 40}],
            "max_tokens": 40, "ignore_eos": True, "stream": True}  # fmt: skip

    def one() -> None:
        with (
            httpx.Client(timeout=60) as client,
            client.stream("POST", url + "/v1/chat/completions", json=body) as response,
        ):
            response.read()
            assert response.status_code == 200
            served.append(response.headers["x-glmctl-endpoint"])

    threads = [threading.Thread(target=one) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)
    assert len(served) == count
    return served
