"""External endpoints in the router, the pure parts: who may be chosen (overflow), how a
request is rewritten for the endpoint, where its key comes from, probe backoff, metrics."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from controlplane.errors import UserError
from controlplane.router.__main__ import parse_args
from controlplane.router.collector import backoff_s
from controlplane.router.config import RouterConfig
from controlplane.router.external import (
    ExternalEndpoint,
    env_stash,
    resolve_key,
    secret_env_name,
    stash_env_key,
)
from controlplane.router.external_route import ExternalRoute
from controlplane.router.metrics import endpoint_info
from controlplane.router.overflow import FAILOVER, SATURATED, select
from controlplane.router.policies import EndpointView
from controlplane.router.proxy import UpstreamFailed
from controlplane.router.upstream import Target

HOSTED = ExternalEndpoint("hosted", "https://api.example/v4", "glm-4.5-air-fp8", "glm-4.5-air",
                          role="overflow", capacity=3, key_env="HOSTED_KEY")  # fmt: skip


def view(endpoint_id: str, load: int, role: str = "pool", capacity: int = 0) -> EndpointView:
    kind = "external" if endpoint_id.startswith("external/") else "engine"
    return EndpointView(endpoint_id, "http://x", "m", load, kind=kind, role=role,
                        capacity=capacity)  # fmt: skip


def ids(endpoints: tuple[EndpointView, ...]) -> list[str]:
    return [e.endpoint_id for e in endpoints]


# -- overflow selection -------------------------------------------------------------------
def test_local_replicas_below_saturation_keep_the_traffic() -> None:
    chosen = select([view("a", 1), view("b", 2), view("external/h", 0, "overflow", 3)], 64, 2)
    assert ids(chosen.endpoints) == ["a"] and chosen.overflow == ""


def test_overflow_only_when_every_local_replica_is_saturated() -> None:
    chosen = select([view("a", 2), view("b", 5), view("external/h", 1, "overflow", 3)], 64, 2)
    assert ids(chosen.endpoints) == ["external/h"] and chosen.overflow == SATURATED


def test_no_healthy_local_replica_is_a_failover() -> None:
    chosen = select([view("external/h", 0, "overflow", 3)], 64, 2)
    assert ids(chosen.endpoints) == ["external/h"] and chosen.overflow == FAILOVER


def test_a_full_overflow_endpoint_leaves_requests_queueing_locally() -> None:
    chosen = select([view("a", 9), view("external/h", 3, "overflow", 3)], 64, 2)
    assert ids(chosen.endpoints) == ["a"] and chosen.overflow == ""
    assert select([view("a", 64), view("external/h", 3, "overflow", 3)], 64, 2).endpoints == ()


def test_pool_externals_share_traffic_up_to_their_capacity() -> None:
    endpoints = [view("a", 1), view("external/p", 4, "pool", 5)]
    assert ids(select(endpoints, 64, 2).endpoints) == ["a", "external/p"]
    endpoints = [view("a", 1), view("external/p", 5, "pool", 5)]
    assert ids(select(endpoints, 64, 2).endpoints) == ["a"]


def test_without_overflow_the_queue_limit_is_the_only_limit() -> None:
    assert ids(select([view("a", 63), view("b", 64)], 64).endpoints) == ["a"]


# -- the request as the external endpoint gets it ----------------------------------------
def test_the_route_rewrites_the_model_and_sends_its_own_key() -> None:
    route = ExternalRoute(HOSTED, "sk-hosted-1")
    body = orjson.dumps({"model": "glm-4.5-air-fp8", "messages": [], "tools": [{"x": 1}]})
    sent = orjson.loads(route.body(body))
    assert sent == {"model": "glm-4.5-air", "messages": [], "tools": [{"x": 1}]}
    assert route.url("chat") == "https://api.example/v4/chat/completions"
    assert route.url("completions") == "https://api.example/v4/completions"
    assert route.health_url == "https://api.example/v4/models"
    assert route.header == b"authorization: Bearer sk-hosted-1\r\n"
    assert "sk-hosted-1" not in repr(route)


def test_failures_name_the_reference_for_operators_only() -> None:
    route = ExternalRoute(HOSTED, "sk-hosted-1")
    operator, client = route.explain(UpstreamFailed("HTTP 401", 401))
    assert "rejected the API key glmctl sent (HTTP 401)" in client and "HOSTED_KEY" not in client
    assert operator.endswith("(env HOSTED_KEY)")
    assert "rate limiting (HTTP 429)" in route.explain(UpstreamFailed("HTTP 429", 429))[1]
    assert "did not answer" in route.explain(UpstreamFailed("refused"))[1]


def test_an_upstream_target_carries_extra_headers_and_https() -> None:
    target = Target("https://api.example/v4/chat/completions", b"authorization: Bearer k\r\n")
    assert target.key == ("api.example", 443) and target.tls
    assert target.head.startswith(b"POST /v4/chat/completions HTTP/1.1\r\nhost: api.example\r\n")
    assert target.head.endswith(b"authorization: Bearer k\r\ncontent-length: ")
    assert not Target("http://127.0.0.1:9/x").tls


# -- where keys come from -----------------------------------------------------------------
def test_an_env_key_from_the_environment_or_the_apply_stash(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HOSTED_KEY", "from-env")
    assert resolve_key(HOSTED, tmp_path) == "from-env"
    stash_env_key(tmp_path, "HOSTED_KEY", "from-apply")
    assert env_stash(tmp_path, "HOSTED_KEY").stat().st_mode & 0o077 == 0
    assert resolve_key(HOSTED, tmp_path) == "from-apply"  # apply's copy is the fresher one


def test_a_secret_key_from_its_variable_or_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    endpoint = ExternalEndpoint("z", "https://a/v1", "m", "m", key_secret="zhipu/api-key")
    (tmp_path / "zhipu").mkdir()
    (tmp_path / "zhipu" / "api-key").write_text("from-file\n")
    assert resolve_key(endpoint, tmp_path) == "from-file"
    assert secret_env_name("zhipu/api-key") == "GLMCTL_SECRET_ZHIPU_API_KEY"
    monkeypatch.setenv("GLMCTL_SECRET_ZHIPU_API_KEY", "from-k8s")
    assert resolve_key(endpoint, tmp_path) == "from-k8s"
    assert resolve_key(ExternalEndpoint("n", "http://a/v1", "m", "m"), tmp_path) is None


def test_a_missing_key_names_the_reference_and_how_to_fix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("HOSTED_KEY", raising=False)
    with pytest.raises(UserError) as caught:
        resolve_key(HOSTED, tmp_path)
    text = str(caught.value)
    assert "`hosted` has no API key" in text and "HOSTED_KEY is not set" in text
    assert "To fix:" in text


# -- config, probes, metrics --------------------------------------------------------------
def test_externals_survive_the_command_line_without_their_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HOSTED_KEY", "sk-never-on-a-command-line")
    config = RouterConfig("redis://127.0.0.1:1/0", external=(HOSTED,), overflow_at=8)
    args = config.cli_args()
    parsed, _ = parse_args(args)
    assert parsed == config
    assert "sk-never-on-a-command-line" not in " ".join(args)
    assert "--external" not in RouterConfig("redis://127.0.0.1:1/0").cli_args()


def test_probes_of_a_down_endpoint_back_off() -> None:
    waits = [backoff_s(n, 1.0) for n in range(1, 8)]
    assert waits == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]


def test_the_endpoint_gauge_marks_external_endpoints() -> None:
    infos = [HOSTED.info(), ExternalEndpoint("p", "http://a/v1", "m", "m").info()]
    text = endpoint_info(infos, lambda endpoint_id: endpoint_id == "external/hosted")
    assert (
        'glmctl_router_endpoint_up{endpoint="external/hosted",kind="external",role="overflow"} 1'
        in text
    )
    assert 'glmctl_router_endpoint_up{endpoint="external/p",kind="external",role="pool"} 0' in text
