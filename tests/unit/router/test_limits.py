"""What one request may cost (pure): prompt and max_tokens limits, tokens for the tpm budget."""

from __future__ import annotations

import pytest

from controlplane.router.limits import (
    BYTES_PER_TOKEN,
    KeyLimits,
    RequestLimits,
    estimate_prompt_tokens,
    request_cost,
)
from controlplane.router.prefix import prompt_bytes
from controlplane.router.validation import RequestProblem


def _chat(text: str, **extra: object) -> dict[str, object]:
    return {"model": "m", "messages": [{"role": "user", "content": text}], **extra}


def test_prompt_tokens_follow_the_prompt_bytes() -> None:
    payload = _chat("word " * 100)
    expected = -(-len(prompt_bytes(payload)) // BYTES_PER_TOKEN)
    assert estimate_prompt_tokens(payload) == expected
    assert estimate_prompt_tokens(_chat("word " * 200)) > expected


def test_cost_is_prompt_plus_max_tokens_and_the_limit_is_injected() -> None:
    payload = _chat("hi", max_tokens=50)
    prompt = estimate_prompt_tokens(payload)
    priced = KeyLimits(tpm=10_000)
    assert request_cost(payload, RequestLimits(), priced) == (prompt + 50, None)
    assert request_cost(payload, RequestLimits(), None) == (50, None)  # nothing needs the prompt
    bare = _chat("hi")
    assert request_cost(bare, RequestLimits(max_tokens=300), priced) == (prompt + 300, 300)
    key = KeyLimits(tpm=10_000, max_tokens=100)
    assert request_cost(bare, RequestLimits(max_tokens=300), key) == (prompt + 100, 100)


@pytest.mark.parametrize(
    ("payload", "limits", "key", "words"),
    [
        (_chat("hi", max_tokens=301), RequestLimits(max_tokens=300), None, "300"),
        (_chat("hi", max_tokens=0), RequestLimits(), None, "positive"),
        (_chat("hi", max_tokens="9"), RequestLimits(), None, "positive"),
        (_chat("x" * 400), RequestLimits(max_prompt_tokens=50), None, "prompt"),
        (_chat("x" * 400), RequestLimits(), KeyLimits(max_prompt_tokens=50), "prompt"),
        (_chat("hi", max_tokens=500), RequestLimits(), KeyLimits(tpm=400), "tokens per minute"),
    ],
)
def test_requests_over_a_limit_get_400(
    payload: dict[str, object], limits: RequestLimits, key: KeyLimits | None, words: str
) -> None:
    with pytest.raises(RequestProblem) as caught:
        request_cost(payload, limits, key)
    assert caught.value.status == 400 and words in caught.value.message


def test_limits_survive_json() -> None:
    import json

    limits = RequestLimits(max_body_bytes=10, max_tokens=5, client_idle_timeout=2.5)
    assert RequestLimits.from_dict(json.loads(limits.to_json())) == limits
    assert RequestLimits.from_dict({"unknown": 1}) == RequestLimits()
