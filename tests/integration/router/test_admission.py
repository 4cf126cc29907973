"""Admission control: full queues and spent rate limits answer 429 with Retry-After; keys 401."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest

from controlplane.local.redis_server import LocalRedis
from controlplane.router.registry import add_api_key
from controlplane.spec import Topology
from tests.integration.router.conftest import Cluster
from tests.integration.router.helpers import chat_body, held_streams, router_outcomes

pytestmark = pytest.mark.integration
Factory = Callable[[LocalRedis, Topology], Cluster]


def test_full_endpoint_queue_answers_429(
    redis_server: LocalRedis, topo: Topology, cluster_factory: Factory
) -> None:
    cluster = cluster_factory(redis_server, topo)
    cluster.engine("only")
    url = cluster.router("least_load", max_queue_per_endpoint=2)
    long_body = chat_body(cluster.model, "hold", max_tokens=250, ignore_eos=True, stream=True)
    with held_streams(url, long_body, 2):
        response = httpx.post(
            url + "/v1/chat/completions", json=chat_body(cluster.model, "x"), timeout=30
        )
    assert response.status_code == 429
    assert int(response.headers["retry-after"]) >= 1
    assert router_outcomes(url, "overloaded").get("overloaded") == 1  # spends the SLO budget
    time.sleep(0.7)  # the engine's own running count is re-scraped every 0.3 s
    after = httpx.post(url + "/v1/chat/completions", json=chat_body(cluster.model, "x"), timeout=30)
    assert after.status_code == 200


def test_api_keys_and_rate_limit(
    redis_server: LocalRedis, topo: Topology, cluster_factory: Factory
) -> None:
    cluster = cluster_factory(redis_server, topo)
    cluster.engine("only", namespace="keys")
    add_api_key(redis_server.url, "sk-good", "team", rate_per_s=0.5, burst=2, namespace="keys")
    url = cluster.router("round_robin", namespace="keys")
    time.sleep(0.3)
    body = chat_body(cluster.model, "x", max_tokens=2)
    with httpx.Client(base_url=url, timeout=30) as client:
        assert client.post("/v1/chat/completions", json=body).status_code == 401
        wrong = {"authorization": "Bearer sk-bad"}
        assert client.post("/v1/chat/completions", json=body, headers=wrong).status_code == 401
        good = {"authorization": "Bearer sk-good"}
        codes = [client.post("/v1/chat/completions", json=body, headers=good) for _ in range(3)]
    assert [r.status_code for r in codes] == [200, 200, 429]
    assert int(codes[-1].headers["retry-after"]) >= 1
    assert codes[-1].json()["error"]["type"] == "rate_limit_exceeded"
    outcomes = router_outcomes(url, "rate_limited")  # the client's own limit: not the SLO's
    assert (outcomes.get("rate_limited"), outcomes.get("client_error")) == (1, 2)
    assert "overloaded" not in outcomes
