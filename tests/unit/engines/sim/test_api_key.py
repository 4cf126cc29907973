"""The simulator standing in for a hosted API: with a key, /v1/ routes need
`Authorization: Bearer <key>` (401 otherwise); health and metrics stay open."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from controlplane.engines.sim.__main__ import main
from controlplane.engines.sim.server import SimOptions, build_app
from controlplane.spec import load_topology

TOPOLOGY = Path(__file__).resolve().parents[4] / "topologies" / "glm45-air-fp8-h200x1.yaml"


async def get(app: Any, path: str, authorization: bytes | None = None) -> tuple[int, bytes]:
    headers = [(b"authorization", authorization)] if authorization else []
    scope = {"type": "http", "method": "GET", "path": path, "headers": headers}
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    await app.stop()
    return sent[0]["status"], sent[-1].get("body", b"")


async def test_v1_routes_need_the_key_and_health_does_not() -> None:
    app = build_app(load_topology(TOPOLOGY), SimOptions(api_key="sk-test"))
    status, body = await get(app, "/v1/models")
    assert status == 401 and orjson.loads(body)["type"] == "invalid_api_key"
    assert (await get(app, "/v1/models", b"Bearer sk-wrong"))[0] == 401
    assert (await get(app, "/v1/models", b"Bearer sk-test"))[0] == 200
    assert (await get(app, "/health"))[0] == 200
    assert (await get(build_app(load_topology(TOPOLOGY), SimOptions()), "/v1/models"))[0] == 200


def test_an_unset_key_variable_is_a_user_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    code = main(["--topology", str(TOPOLOGY), "--api-key-env", "NO_SUCH_KEY_VAR"])
    err = capsys.readouterr().err
    assert code == 2 and "NO_SUCH_KEY_VAR, which is not set" in err and "To fix:" in err
