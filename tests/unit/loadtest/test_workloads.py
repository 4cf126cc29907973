"""Workloads: length distributions, request bodies per workload, open-loop arrivals."""

from __future__ import annotations

import random
import statistics

import pytest

from controlplane.errors import UserError
from controlplane.loadtest.workloads import (
    TOOLS,
    Arrivals,
    LengthDist,
    Session,
    WorkloadConfig,
    next_request,
    parse_length,
    record_reply,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("512", LengthDist("fixed", 512)),
        ("fixed:64", LengthDist("fixed", 64)),
        ("uniform:256-1024", LengthDist("uniform", 640, 384)),
        ("normal:512,128", LengthDist("normal", 512, 128)),
        ("lognormal:8192,0.6", LengthDist("lognormal", 8192, 0.6)),
    ],
)
def test_parse_length(text: str, expected: LengthDist) -> None:
    assert parse_length(text) == expected


@pytest.mark.parametrize("text", ["", "abc", "normal:512", "uniform:900-100", "0", "poisson:3,1"])
def test_parse_length_rejects_with_a_fix(text: str) -> None:
    with pytest.raises(UserError, match="To fix"):
        parse_length(text)


def test_samples_follow_the_distribution() -> None:
    rng = random.Random(1)
    uniform = [parse_length("uniform:100-200").sample(rng) for _ in range(4000)]
    assert min(uniform) >= 100 and max(uniform) <= 200
    normal = [parse_length("normal:500,50").sample(rng) for _ in range(4000)]
    assert statistics.mean(normal) == pytest.approx(500, rel=0.02)
    assert statistics.stdev(normal) == pytest.approx(50, rel=0.1)
    lognormal = [parse_length("lognormal:1000,0.5").sample(rng) for _ in range(4000)]
    assert statistics.median(lognormal) == pytest.approx(1000, rel=0.05)


def _config(name: str, **kw: object) -> WorkloadConfig:
    return WorkloadConfig(name=name, model="glm-4.5-fp8", **kw)  # type: ignore[arg-type]


def test_chat_shares_one_system_prompt_and_keeps_history() -> None:
    cfg = _config("chat", turns=3)
    a, b = Session(random.Random(1)), Session(random.Random(2))
    first_a, first_b = next_request(cfg, a), next_request(cfg, b)
    system_a = first_a.body["messages"][0]
    assert system_a["role"] == "system" and system_a == first_b.body["messages"][0]
    assert len(system_a["content"].split()) == cfg.system_prompt_tokens
    record_reply(a, first_a, "an answer")
    second = next_request(cfg, a)
    roles = [m["role"] for m in second.body["messages"]]
    assert roles == ["system", "user", "assistant", "user"]
    record_reply(a, second, "more")
    third = next_request(cfg, a)
    assert len(third.body["messages"]) == 6
    record_reply(a, third, "still more")
    fourth = next_request(cfg, a)  # turns=3: a new conversation starts
    assert [m["role"] for m in fourth.body["messages"]] == ["system", "user"]


def test_bodies_stream_with_usage_and_exact_lengths() -> None:
    body = next_request(_config("no-thinking"), Session(random.Random(0))).body
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["ignore_eos"] is True and body["max_tokens"] >= 1
    assert body["chat_template_kwargs"] == {"enable_thinking": False}
    thinking = next_request(_config("thinking"), Session(random.Random(0))).body
    assert thinking["chat_template_kwargs"] == {"enable_thinking": True}


def test_tools_workload_names_a_tool() -> None:
    planned = next_request(_config("tools"), Session(random.Random(3)))
    assert planned.body["tools"] == TOOLS and planned.body["tool_choice"] == "auto"
    names = {t["function"]["name"] for t in TOOLS}
    assert any(name in planned.body["messages"][-1]["content"] for name in names)


def test_summarise_stays_inside_the_context() -> None:
    cfg = _config("summarise", context_length=4096, prompt=parse_length("lognormal:8000,0.3"))
    session = Session(random.Random(5))
    for _ in range(50):
        planned = next_request(cfg, session)
        assert planned.prompt_words + planned.body["max_tokens"] <= cfg.context_length


def test_mix_draws_every_workload() -> None:
    session = Session(random.Random(7))
    kinds = {next_request(_config("mix"), session).kind for _ in range(200)}
    assert kinds == {"chat", "tools", "thinking", "no-thinking", "summarise"}


def test_unknown_workload_is_a_user_error() -> None:
    with pytest.raises(UserError, match="unknown workload"):
        _config("agentic")


@pytest.mark.parametrize("burstiness", [0.5, 1.0, 4.0])
def test_arrivals_keep_the_rate_and_set_the_spread(burstiness: float) -> None:
    arrivals = Arrivals(rate=20.0, burstiness=burstiness, seed=3)
    times = [arrivals.next() for _ in range(20000)]
    gaps = [b - a for a, b in zip([0.0, *times], times, strict=False)]
    assert len(times) / times[-1] == pytest.approx(20.0, rel=0.03)
    # Gamma(k) gaps: squared coefficient of variation 1/k (1 for Poisson).
    cv2 = statistics.pvariance(gaps) / statistics.mean(gaps) ** 2
    assert cv2 == pytest.approx(1 / burstiness, rel=0.1)


def test_arrivals_reject_a_zero_rate() -> None:
    with pytest.raises(UserError, match="To fix"):
        Arrivals(rate=0.0)


@pytest.mark.parametrize("name", ["chat", "tools", "thinking", "no-thinking", "summarise", "mix"])
def test_every_workload_fits_a_small_context(name: str) -> None:
    cfg = _config(name, context_length=1024)
    session = Session(random.Random(11))
    for _ in range(30):
        planned = next_request(cfg, session)
        record_reply(session, planned, "reply " * 40)
        assert planned.prompt_words + planned.body["max_tokens"] <= cfg.context_length
