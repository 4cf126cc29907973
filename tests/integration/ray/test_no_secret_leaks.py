"""No secret in any output: a full `glmctl` cycle (keys, plan, render, apply, requests with
good and bad keys, status, metrics, delete) in a fresh state dir, then every output, log
and rendered file is searched for the Redis password and the API key secret.

The one place a secret may appear is the stdout of `glmctl keys create` (shown once).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(400)]
REPO = Path(__file__).resolve().parents[3]
TOPOLOGY = REPO / "topologies" / "glm45-air-fp8-h200x1.yaml"
NAME = "glm45-air-fp8-h200x1"
GLMCTL = str(Path(sys.executable).with_name("glmctl"))


def test_full_cycle_never_prints_a_secret(tmp_path: Path) -> None:
    state = tmp_path / "state"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GLMCTL_", "RAY_ADDRESS"))}
    env["GLMCTL_STATE_DIR"] = str(state)
    outputs: dict[str, str] = {}

    def glmctl(*args: str, check: bool = True) -> str:
        done = subprocess.run([GLMCTL, *args], capture_output=True, text=True, env=env,
                              timeout=300, cwd=tmp_path)  # fmt: skip
        outputs[" ".join(args)] = done.stdout + done.stderr
        assert done.returncode == 0 or not check, done.stdout + done.stderr
        return done.stdout

    try:
        glmctl("plan", str(TOPOLOGY))
        glmctl("render", str(TOPOLOGY), "--target", "ray", "--out", str(tmp_path / "rendered"))
        glmctl("apply", str(TOPOLOGY), "-y")
        secret = glmctl("keys", "create", NAME, "--name", "leaktest", "--rpm", "100").strip()
        create_output = outputs.pop(f"keys create {NAME} --name leaktest --rpm 100")
        assert secret.startswith("sk-glmctl-") and secret in create_output
        password = (state / "embedded" / "redis.password").read_text().strip()
        assert len(password) == 64
        status = glmctl("status", "-o", "json")
        router = next(line for line in status.splitlines() if '"endpoint"' in line)
        url = router.split('"endpoint": "')[1].rstrip('",')
        body = {"model": "glm-4.5-air-fp8", "messages": [{"role": "user", "content": "hi"}],
                "max_tokens": 4}  # fmt: skip
        with httpx.Client(base_url=url, timeout=60) as client:
            answers = [
                client.post("/v1/chat/completions", json=body),
                client.post("/v1/chat/completions", json=body,
                            headers={"authorization": f"Bearer {secret}"}),
                client.post("/v1/chat/completions", json=body,
                            headers={"authorization": f"Bearer {secret}x"}),
                client.get("/metrics"),
                client.get("/v1/models", headers={"authorization": f"Bearer {secret}"}),
            ]  # fmt: skip
        assert [a.status_code for a in answers] == [401, 200, 401, 200, 200]
        outputs |= {f"HTTP {a.request.url.path} {i}": a.text for i, a in enumerate(answers)}
        glmctl("status")
        glmctl("keys", "list", NAME)
        glmctl("keys", "list", NAME, "-o", "json")
        glmctl("router", "endpoints", "--redis-url", "redis://127.0.0.1:1/0", check=False)
        folders = (state, tmp_path / "rendered")
        files = [path for folder in folders for path in folder.rglob("*") if path.is_file()]
        secret_files = {state / "embedded" / "redis.password", state / "embedded" / "state.json"}
        for path in files:
            if path not in secret_files:
                outputs[str(path)] = path.read_text(errors="replace")
        ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
        outputs["command lines (ps)"] = ps
    finally:
        glmctl("delete", NAME, check=False)
    leaks = [where for where, text in outputs.items() if secret in text or password in text]
    print(f"\nsearched {len(outputs)} outputs, logs and files"
          f" ({sum(len(t) for t in outputs.values())} characters) for 2 secrets")  # fmt: skip
    assert not leaks, f"a secret appears in: {leaks}"
    for path in secret_files:
        assert not path.exists() or path.stat().st_mode & 0o077 == 0
