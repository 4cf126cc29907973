"""Request validation: 400 with a message that names the problem; 404 `model_not_found`
for a model no endpoint is registered for, in OpenAI's error shape."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from controlplane.router.responses import send_error
from controlplane.router.validation import RequestProblem, validate

SERVED = {"glm-4.5": []}


@pytest.mark.parametrize(
    ("body", "route", "fragment"),
    [
        (b"{not json", "chat", "not valid JSON"),
        (b"[1, 2]", "chat", "JSON object"),
        (b'{"messages": [{"role": "user", "content": "x"}]}', "chat", "missing `model`"),
        (b'{"model": "glm-4.5"}', "chat", "missing `messages`"),
        (b'{"model": "glm-4.5", "messages": []}', "chat", "missing `messages`"),
        (b'{"model": "glm-4.5", "messages": ["hi"]}', "chat", "role"),
        (b'{"model": "glm-4.5"}', "completions", "missing `prompt`"),
        (b'{"model": "glm-4.5", "prompt": "x", "stream": "yes"}', "completions", "stream"),
    ],
)
def test_bad_requests_are_400_with_a_reason(body: bytes, route: str, fragment: str) -> None:
    with pytest.raises(RequestProblem) as info:
        validate(body, route, SERVED)
    assert info.value.status == 400
    assert fragment in info.value.message


def test_glm_fields_pass_through_validation() -> None:
    body = (
        b'{"model": "glm-4.5", "messages": [{"role": "user", "content": "x"}], "stream": true,'
        b' "tools": [], "chat_template_kwargs": {"enable_thinking": false}}'
    )
    payload = validate(body, "chat", SERVED)
    assert payload["chat_template_kwargs"] == {"enable_thinking": False}


@pytest.mark.parametrize(
    ("served", "fragment"),
    [(SERVED, "served: glm-4.5"), ({}, "none is registered yet")],
)
def test_an_unknown_model_is_404_model_not_found(served: dict[str, Any], fragment: str) -> None:
    body = b'{"model": "gpt-9", "messages": [{"role": "user", "content": "x"}]}'
    with pytest.raises(RequestProblem) as info:
        validate(body, "chat", served)
    problem = info.value
    assert (problem.status, problem.kind, problem.code) == (
        404,
        "invalid_request_error",
        "model_not_found",
    )
    assert "`gpt-9`" in problem.message and fragment in problem.message


def test_the_deployments_own_model_with_no_replica_yet_is_503_to_retry() -> None:
    # Starting, or a one-replica update between versions: the model exists, come back soon.
    body = b'{"model": "glm-4.5", "messages": [{"role": "user", "content": "x"}]}'
    with pytest.raises(RequestProblem) as info:
        validate(body, "chat", {}, expected=("glm-4.5",))
    problem = info.value
    assert (problem.status, problem.kind, problem.retry_after) == (503, "service_unavailable", 1.0)
    with pytest.raises(RequestProblem) as other:  # another model is still unknown
        validate(body.replace(b"glm-4.5", b"gpt-9"), "chat", {}, expected=("glm-4.5",))
    assert other.value.status == 404


def _answer(**error: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The response start and the parsed JSON body `send_error` writes."""
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(send_error(send, **error))
    return sent[0], orjson.loads(sent[1]["body"])


def test_a_problem_code_goes_into_the_openai_error_body() -> None:
    start, body = _answer(
        status=404, message="model `gpt-9` is not served here", code="model_not_found"
    )
    assert start["status"] == 404
    assert body == {
        "error": {
            "message": "model `gpt-9` is not served here",
            "type": "invalid_request_error",
            "code": "model_not_found",
        }
    }


def test_without_a_code_the_status_is_the_code_and_retry_after_is_sent() -> None:
    start, body = _answer(status=503, message="x", kind="service_unavailable", retry_after=1.0)
    assert body["error"] == {"message": "x", "type": "service_unavailable", "code": 503}
    assert (b"retry-after", b"1") in start["headers"]
