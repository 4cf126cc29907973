"""Every policy routes as specified, through real router processes and simulated engines."""

from __future__ import annotations

import itertools
import json
import time
import uuid
from collections import Counter
from collections.abc import Callable

import httpx
import openai
import pytest
import redis

from controlplane.autoscale.drain import mark_all_draining
from controlplane.local.redis_server import LocalRedis
from controlplane.spec import Topology
from tests.integration.router.conftest import Cluster
from tests.integration.router.helpers import chat_body, held_streams, served_by

pytestmark = pytest.mark.integration
Factory = Callable[[LocalRedis, Topology], Cluster]
QUICK = {"max_tokens": 4}
LONG = {"max_tokens": 500, "ignore_eos": True, "stream": True}


def route(client: httpx.Client, url: str, body: dict, policy: str, **headers: str) -> str:
    response = client.post(
        url + "/v1/chat/completions", json=body, headers={"x-glmctl-policy": policy, **headers}
    )
    assert response.status_code == 200, response.text
    return served_by(response)


def test_openai_client_unmodified_streaming_and_not(cluster: Cluster) -> None:
    client = openai.OpenAI(base_url=cluster.routers[0].url + "/v1", api_key="unused")
    assert [m.id for m in client.models.list()] == [cluster.model]
    reply = client.chat.completions.create(
        model=cluster.model, messages=[{"role": "user", "content": "hello"}], max_tokens=8
    )
    assert reply.choices[0].finish_reason in {"stop", "length"}
    stream = client.chat.completions.create(
        model=cluster.model,
        messages=[{"role": "user", "content": "hello"}],
        max_tokens=12,
        stream=True,
        extra_body={"chat_template_kwargs": {"enable_thinking": False}, "ignore_eos": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(text.split()) == 12  # sim: one word per token, thinking off passed through
    completion = client.completions.create(model=cluster.model, prompt="once upon", max_tokens=3)
    assert completion.choices[0].text


def test_round_robin_cycles_through_all_endpoints(cluster: Cluster) -> None:
    url = cluster.routers[0].url
    with httpx.Client(timeout=30) as client:  # one kept-alive connection: one worker
        picks = [route(client, url, chat_body(cluster.model, "hi", **QUICK), "round_robin")
                 for _ in range(12)]  # fmt: skip
    assert Counter(picks) == Counter({"e0": 4, "e1": 4, "e2": 4})
    assert len(set(picks[:3])) == 3


@pytest.mark.parametrize("policy", ["least_load", "power_of_two"])
def test_load_policies_avoid_the_busy_endpoint(cluster: Cluster, policy: str) -> None:
    url = cluster.routers[0].url
    body = chat_body(cluster.model, "pin me", **LONG)
    headers = {"x-glmctl-policy": "session", "x-session-id": f"busy-{policy}"}
    httpx.post(url + "/v1/chat/completions", json=chat_body(cluster.model, "bind", **QUICK),
               headers=headers, timeout=30).raise_for_status()  # fmt: skip
    time.sleep(0.3)  # written back: every worker sees the binding
    with held_streams(url, body, 5, headers) as busy, httpx.Client(timeout=30) as client:
        assert len(set(busy)) == 1
        time.sleep(0.5)  # the other worker sees the counts after its next refresh
        picks = [route(client, url, chat_body(cluster.model, "q", **QUICK), policy)
                 for _ in range(10)]  # fmt: skip
    assert busy[0] not in picks
    assert len(set(picks)) == 2


def wait_for_session_binding(cluster: Cluster, timeout: float = 10.0) -> None:
    """Wait until a session binding is in Redis, where every router worker reads it."""
    import redis

    client = redis.Redis.from_url(cluster.redis.url)
    deadline = time.monotonic() + timeout
    try:
        while not any(client.scan_iter(match="*:sess:*", count=100)):
            assert time.monotonic() < deadline, "the session binding never reached Redis"
            time.sleep(0.05)
    finally:
        client.close()


def test_session_sticks_and_sessions_spread(cluster: Cluster) -> None:
    url = cluster.routers[0].url
    body = chat_body(cluster.model, "hi", **QUICK)
    with httpx.Client(timeout=30) as client:
        bound = {route(client, url, body, "session", **{"x-session-id": "s-1"}) for _ in range(6)}
        wait_for_session_binding(cluster)  # written back off the request path
        for _ in range(4):  # new connections: either worker
            with httpx.Client(timeout=30) as fresh:
                bound.add(route(fresh, url, body, "session", **{"x-session-id": "s-1"}))
        spread = {
            route(client, url, chat_body(cluster.model, "x", user=f"u{i}", **QUICK), "session")
            for i in range(9)
        }
    assert len(bound) == 1
    assert len(spread) >= 2


def conversation_turns(
    cluster: Cluster, urls: list[str], conversations: int, turns: int
) -> list[list[str]]:
    """Multi-turn chats (each turn resends the history, turn t goes to router t mod
    len(urls)); the endpoints that served each conversation's turns."""
    served: list[list[str]] = [[] for _ in range(conversations)]
    tag = uuid.uuid4().hex  # fresh prompts: nothing cached from earlier calls
    histories = [
        [{"role": "system", "content": f"conversation {c} {tag} " + "context words " * 200}]
        for c in range(conversations)
    ]
    with httpx.Client(timeout=30) as client:
        for turn in range(turns):
            url = urls[turn % len(urls)]
            for c, history in enumerate(histories):
                history.append({"role": "user", "content": "next question " * 20})
                body = {"model": cluster.model, "messages": history, "max_tokens": 16}
                response = client.post(
                    url + "/v1/chat/completions",
                    json=body,
                    headers={"x-glmctl-policy": "prefix_affinity"},
                )
                assert response.status_code == 200
                served[c].append(served_by(response))
                answer = response.json()["choices"][0]["message"]["content"] or "ok"
                history.append({"role": "assistant", "content": answer})
    return served


def prefix_hit_rate(served: list[list[str]]) -> float:
    """Of all follow-up turns, the share served where the previous turn was."""
    follow = [(a, b) for turns in served for a, b in itertools.pairwise(turns)]
    return sum(a == b for a, b in follow) / len(follow)


def test_prefix_affinity_keeps_conversations_on_their_endpoint(cluster: Cluster) -> None:
    served = conversation_turns(cluster, [cluster.routers[0].url], conversations=6, turns=3)
    assert prefix_hit_rate(served) >= 0.9
    assert len({turns[0] for turns in served}) >= 2  # new conversations still spread


def test_bad_requests_get_400_with_a_reason(cluster: Cluster) -> None:
    url = cluster.routers[0].url + "/v1/chat/completions"
    cases = [
        (b"{oops", "JSON"),
        (b'{"model": "%s"}' % cluster.model.encode(), "messages"),
    ]
    with httpx.Client(timeout=30) as client:
        for body, fragment in cases:
            response = client.post(url, content=body, headers={"content-type": "application/json"})
            assert response.status_code == 400
            assert fragment in response.json()["error"]["message"]
        unknown = client.post(url, json=chat_body(cluster.model, "x"),
                              headers={"x-glmctl-policy": "random"})  # fmt: skip
        assert unknown.status_code == 400 and "round_robin" in unknown.text
        assert client.get(cluster.routers[0].url + "/nope").status_code == 404


def test_an_unknown_model_is_404_model_not_found_as_openai_answers(cluster: Cluster) -> None:
    with httpx.Client(timeout=30) as client:
        response = client.post(cluster.routers[0].url + "/v1/chat/completions",
                               json=chat_body("nope", "x"))  # fmt: skip
    assert response.status_code == 404
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("invalid_request_error", "model_not_found")
    assert "`nope`" in error["message"] and cluster.model in error["message"]
    openai_client = openai.OpenAI(base_url=cluster.routers[0].url + "/v1", api_key="unused")
    with pytest.raises(openai.NotFoundError) as raised:
        openai_client.chat.completions.create(
            model="nope", messages=[{"role": "user", "content": "x"}], max_tokens=2
        )
    assert raised.value.code == "model_not_found"


def test_a_known_model_with_every_endpoint_draining_is_503_retry_after(
    redis_server: LocalRedis, topo: Topology, cluster_factory: Factory
) -> None:
    cluster = cluster_factory(redis_server, topo)
    cluster.engine("only", namespace="drained")
    url = cluster.router("round_robin", namespace="drained") + "/v1/chat/completions"
    body = chat_body(cluster.model, "x", **QUICK)
    with httpx.Client(timeout=30) as client:
        assert client.post(url, json=body).status_code == 200
        with redis.Redis.from_url(redis_server.url) as store:
            assert mark_all_draining(store, "drained") == 1
        deadline = time.monotonic() + 5.0
        while (answer := client.post(url, json=body)).status_code == 200:
            assert time.monotonic() < deadline, "the router kept routing to a draining endpoint"
            time.sleep(0.05)
    assert answer.status_code == 503 and answer.headers["retry-after"] == "1"
    assert answer.json()["error"]["type"] == "service_unavailable"


def _worker_decisions(redis_url: str) -> dict[str, float]:
    """Each router worker's published round_robin decision count (its Redis export)."""
    counts: dict[str, float] = {}
    with redis.Redis.from_url(redis_url) as store:
        for key in store.scan_iter("glmctl:rmetrics:*"):
            export = json.loads(store.get(key) or b"{}")
            counts[key.decode()] = sum(
                value
                for name, labels, value in export.get("counters", [])
                if name == "glmctl_router_decisions_total" and ["policy", "round_robin"] in labels
            )
    return counts


def _scraped(url: str) -> tuple[float, float]:
    """(round_robin decisions, answered chat requests) `/metrics` reports over every worker."""
    lines = httpx.get(url + "/metrics", timeout=10).text.splitlines()

    def total(prefix: str, *parts: str) -> float:
        return sum(float(line.rsplit(" ", 1)[1]) for line in lines
                   if line.startswith(prefix) and all(p in line for p in parts))  # fmt: skip

    decisions = total('glmctl_router_decisions_total{policy="round_robin"')
    return decisions, total("glmctl_router_requests_total{", "chat", 'status="200"')


def test_metrics_count_requests_and_decisions_across_workers(
    cluster: Cluster, shared_redis: LocalRedis
) -> None:
    url, sent = cluster.routers[0].url, 40
    time.sleep(2.5)  # workers publish their metrics every 2 s
    before, (decided, answered) = _worker_decisions(shared_redis.url), _scraped(url)
    assert len(before) == 2, before  # the fixture's two workers each publish an export
    for _ in range(sent):  # a new connection per request: the kernel spreads them over workers
        route(httpx.Client(timeout=30), url, chat_body(cluster.model, "m", **QUICK), "round_robin")
    time.sleep(2.5)
    after = _worker_decisions(shared_redis.url)
    per_worker = {key: after[key] - before.get(key, 0.0) for key in after}
    assert sum(per_worker.values()) == sent, per_worker
    assert all(count > 0 for count in per_worker.values()), per_worker  # both workers served
    decided_after, answered_after = _scraped(url)  # /metrics sums every worker's export
    assert (decided_after - decided, answered_after - answered) == (sent, sent)
