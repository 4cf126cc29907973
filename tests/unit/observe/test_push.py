"""`glmctl dashboards push` against a local HTTP server answering like Grafana's dashboard API
(no Grafana can be installed here), and `--dry-run`."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from controlplane.local.ports import free_port
from controlplane.observe.dashboards import render_dashboards
from tests.unit.cli.helpers import CliResult

TOKEN = "glsa_test_token"


class FakeGrafana:
    """Stores dashboards by uid like POST /api/dashboards/db does; 401 on a wrong token."""

    def __init__(self) -> None:
        self.saved: dict[str, dict[str, Any]] = {}
        self.versions: dict[str, int] = {}
        self.requests: list[tuple[str, str, dict[str, Any]]] = []

    def handler(self) -> type[BaseHTTPRequestHandler]:
        grafana = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                grafana.requests.append((self.path, self.headers.get("authorization", ""), body))
                if self.headers.get("authorization") != f"Bearer {TOKEN}":
                    return self._answer(401, {"message": "invalid API key"})
                if self.path != "/api/dashboards/db":
                    return self._answer(404, {"message": "not found"})
                uid = body["dashboard"]["uid"]
                if uid in grafana.saved and not body.get("overwrite"):
                    return self._answer(412, {"status": "version-mismatch"})
                grafana.saved[uid] = body["dashboard"]
                grafana.versions[uid] = grafana.versions.get(uid, 0) + 1
                version = grafana.versions[uid]
                self._answer(200, {"status": "success", "uid": uid, "version": version,
                                   "url": f"/d/{uid}/x"})  # fmt: skip

            def _answer(self, code: int, data: dict[str, Any]) -> None:
                raw = json.dumps(data).encode()
                self.send_response(code)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args: Any) -> None:
                pass

        return Handler


@pytest.fixture
def grafana() -> Iterator[tuple[FakeGrafana, str]]:
    fake = FakeGrafana()
    server = ThreadingHTTPServer(("127.0.0.1", 0), fake.handler())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield fake, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def test_push_saves_every_dashboard_and_is_idempotent_by_uid(
    grafana: tuple[FakeGrafana, str], glmctl: Callable[..., CliResult]
) -> None:
    fake, url = grafana
    for _ in range(2):
        result = glmctl("dashboards", "push", "--grafana-url", url, "--token", TOKEN)
        assert result.code == 0, result.text
    boards = render_dashboards()
    assert set(fake.saved) == {b["uid"] for b in boards.values()}
    assert set(fake.versions.values()) == {2}  # the second push replaced, not duplicated
    assert all(body["overwrite"] and "id" not in body["dashboard"] for _, _, body in fake.requests)
    assert fake.saved["glmctl-fleet"]["panels"] == boards["fleet-overview.json"]["panels"]
    assert "pushed fleet-overview.json: success" in result.out


def test_wrong_token_is_a_user_error(
    grafana: tuple[FakeGrafana, str], glmctl: Callable[..., CliResult]
) -> None:
    _, url = grafana
    result = glmctl("dashboards", "push", "--grafana-url", url, "--token", "wrong")
    assert result.code == 2
    assert "refused the token" in result.err and "To fix" in result.err
    assert "Traceback" not in result.text


def test_wrong_url_is_a_user_error(glmctl: Callable[..., CliResult]) -> None:
    result = glmctl("dashboards", "push", "--grafana-url", f"http://127.0.0.1:{free_port()}")
    assert result.code == 2
    assert "cannot push" in result.err and "--grafana-url" in result.err


def test_dry_run_prints_what_would_be_sent_and_sends_nothing(
    grafana: tuple[FakeGrafana, str], glmctl: Callable[..., CliResult]
) -> None:
    fake, url = grafana
    result = glmctl("dashboards", "push", "--grafana-url", url, "--dry-run", "--folder", "ops")
    assert result.code == 0, result.text
    requests = [json.loads(line) for line in result.out.splitlines()]
    assert [r["url"] for r in requests] == [f"{url}/api/dashboards/db"] * len(render_dashboards())
    assert {r["body"]["dashboard"]["uid"] for r in requests} == set(
        b["uid"] for b in render_dashboards().values()
    )
    assert all(r["body"]["folderUid"] == "ops" for r in requests)
    assert fake.requests == []


def test_no_url_says_how_to_give_one(
    glmctl: Callable[..., CliResult], monkeypatch: pytest.MonkeyPatch
) -> None:
    from controlplane.settings import get_settings

    monkeypatch.delenv("GLMCTL_GRAFANA_URL", raising=False)
    get_settings.cache_clear()
    result = glmctl("dashboards", "push")
    assert result.code == 2 and "GLMCTL_GRAFANA_URL" in result.err


def test_render_writes_every_dashboard(glmctl: Callable[..., CliResult], tmp_path: Any) -> None:
    result = glmctl(
        "dashboards", "render", "--out", tmp_path / "d", "--provisioning", tmp_path / "g"
    )
    assert result.code == 0, result.text
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == sorted(render_dashboards())
    assert (tmp_path / "g" / "datasources" / "glmctl.yaml").exists()
