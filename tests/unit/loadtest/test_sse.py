"""SSE timing: TTFT, every inter-token gap, TPOT, token split, failure causes."""

from __future__ import annotations

import json

import pytest

from controlplane.loadtest.sse import StreamTimer


def _event(delta: dict[str, object] | None = None, finish: str | None = None) -> bytes:
    choice = {"index": 0, "delta": delta or {}, "finish_reason": finish}
    return b"data: " + json.dumps({"choices": [choice]}).encode() + b"\n\n"


def _usage(completion: int, prompt: int = 10) -> bytes:
    usage = {"prompt_tokens": prompt, "completion_tokens": completion}
    return b"data: " + json.dumps({"choices": [], "usage": usage}).encode() + b"\n\n"


def _stream(timer: StreamTimer, parts: list[tuple[float, bytes]]) -> None:
    for now, data in parts:
        timer.feed(data, now)


def test_timing_follows_bench_serve_definitions() -> None:
    timer = StreamTimer("chat", sent_at=100.0, wall_start=0.0)
    _stream(timer, [
        # vLLM's first chunk: the role, with the first token in the same step.
        (100.25, _event({"role": "assistant", "content": ""})
                 + _event({"reasoning_content": "a b"})),
        (100.30, _event({"reasoning_content": " c"})),
        (100.40, _event({"content": " d e f"})),
        (100.45, _event({}, finish="stop") + _usage(6)),
        (100.46, b"data: [DONE]\n\n"),
    ])  # fmt: skip
    s = timer.finish(100.5)
    assert s.ok and s.error is None and s.finish_reason == "stop"
    assert s.ttft == pytest.approx(0.25)
    assert s.itl == pytest.approx([0.05, 0.10])  # only output-carrying events
    assert s.e2e == pytest.approx(0.46)
    assert s.output_tokens == 6 and s.prompt_tokens == 10
    assert s.tpot == pytest.approx((0.46 - 0.25) / 5)
    assert (s.reasoning_tokens, s.content_tokens) == (3, 3)


def test_lines_split_across_reads() -> None:
    data = _event({"content": "x"}) + _event({"content": " y"}) + _usage(2) + b"data: [DONE]\n\n"
    timer = StreamTimer("chat", 0.0, 0.0)
    for i in range(0, len(data), 7):  # 7-byte reads cut every line somewhere
        timer.feed(data[i : i + 7], 1.0 + i / 1000)
    s = timer.finish(2.0)
    assert s.ok and s.output_tokens == 2 and len(s.itl) == 1


def test_without_usage_counts_output_events() -> None:
    timer = StreamTimer("chat", 0.0, 0.0)
    _stream(timer, [(0.1, _event({"content": "x"})), (0.2, _event({"content": "y"})),
                    (0.3, b"data: [DONE]\n\n")])  # fmt: skip
    assert timer.finish(0.3).output_tokens == 2


def test_tool_call_counts_as_output() -> None:
    call = {"index": 0, "id": "c", "function": {"name": "get_weather", "arguments": "{}"}}
    timer = StreamTimer("tools", 0.0, 0.0)
    _stream(timer, [(0.1, _event({"tool_calls": [call]}, None)), (0.2, _usage(5)),
                    (0.2, b"data: [DONE]\n\n")])  # fmt: skip
    s = timer.finish(0.2)
    assert s.ok and s.tool_calls == 1 and s.ttft == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("parts", "transport", "cause"),
    [
        ([(0.1, _event({"content": "x"}))], None, "cut_off"),
        ([(0.1, b'data: {"error": {"message": "engine died"}}\n\n'), (0.2, b"data: [DONE]\n\n")],
         None, "error_event"),
        ([(0.1, _usage(0)), (0.2, b"data: [DONE]\n\n")], None, "no_output"),
        ([], "connect: refused", "connect"),
        ([(0.1, b"data: {not json\n\n")], None, "bad_json"),
    ],
)  # fmt: skip
def test_failures_carry_their_cause(
    parts: list[tuple[float, bytes]], transport: str | None, cause: str
) -> None:
    timer = StreamTimer("chat", 0.0, 0.0)
    _stream(timer, parts)
    s = timer.finish(1.0, transport)
    assert not s.ok and s.error is not None and s.error.split(":")[0] == cause


def test_sample_round_trips_through_json() -> None:
    timer = StreamTimer("chat", 0.0, 5.0)
    _stream(timer, [(0.1, _event({"content": "x"})), (0.2, _event({"content": "y"})),
                    (0.3, _usage(2) + b"data: [DONE]\n\n")])  # fmt: skip
    s = timer.finish(0.3)
    from controlplane.loadtest.sse import RequestSample

    again = RequestSample.from_json(json.loads(json.dumps(s.to_json())))
    assert again == s and again.tpot == s.tpot
