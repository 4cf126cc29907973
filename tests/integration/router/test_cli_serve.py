"""`glmctl router serve` and `glmctl router add-key` against a real Redis."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from controlplane.local.ports import free_port, wait_port
from controlplane.local.redis_server import LocalRedis
from controlplane.router.registry import register_endpoint

pytestmark = pytest.mark.integration
GLMCTL = Path(sys.executable).parent / "glmctl"


def test_serve_answers_and_keys_gate_requests(redis_server: LocalRedis) -> None:
    port = free_port()
    process = subprocess.Popen(
        [str(GLMCTL), "router", "serve", "--redis-url", redis_server.url, "--port", str(port),
         "--workers", "2", "--policy", "least_load"],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert wait_port(port, timeout=20)
        url = f"http://127.0.0.1:{port}"
        assert httpx.get(url + "/health", timeout=5).json()["status"] == "ok"
        register_endpoint(redis_server.url, "dead", "http://127.0.0.1:1", "m")
        made = subprocess.run(
            [str(GLMCTL), "router", "add-key", "team", "--redis-url", redis_server.url],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        key = made.stdout.strip()
        assert key.startswith("sk-glmctl-")
        time.sleep(0.5)  # routers refresh keys and endpoints every 0.1 s
        body = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
        chat = url + "/v1/chat/completions"
        assert httpx.post(chat, json=body, timeout=10).status_code == 401
        keyed = httpx.post(chat, json=body, headers={"authorization": f"Bearer {key}"}, timeout=10)
        assert keyed.status_code in {502, 503}  # admitted; the only endpoint is down
        assert httpx.get(url + "/v1/models").status_code == 401  # the model list needs a key
        models = httpx.get(url + "/v1/models", headers={"authorization": f"Bearer {key}"})
        assert [m["id"] for m in models.json()["data"]] == ["m"]
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)
