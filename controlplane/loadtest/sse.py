"""Timing of one streamed OpenAI response from its SSE events (pure: the caller gives clocks).

Definitions follow vLLM's `bench serve` (vllm/benchmarks/lib/endpoint_request_func.py) so
the numbers compare:
- TTFT: from sending the request to the first event carrying output (reasoning, content or a
  tool call). vLLM counts the first event with `choices`; its role-only first chunk leaves
  with the first token, so the two agree.
- ITL: the gap between successive output-carrying events (one event may carry several
  tokens under speculative decoding, as in vLLM's ITL).
- E2E: from sending to the last event; TPOT = (E2E - TTFT) / (output tokens - 1).
- Output tokens: `usage.completion_tokens` when the server sends it (we ask for it), else
  the count of output events. Reasoning and content tokens are the total apportioned by the
  words each carried (exact on the simulator, whose tokens are words).
A stream that ends without `[DONE]`, sends an error event or carries no output is failed,
with its cause.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

CAUSES = ("http_status", "connect", "timeout", "cut_off", "error_event", "no_output", "bad_json")


@dataclass
class RequestSample:
    """One request's measurements (seconds of the client's clock)."""

    kind: str
    start: float  # client clock at send (wall, seconds since the epoch)
    ok: bool = False
    error: str | None = None  # one of CAUSES, with detail after a colon
    ttft: float | None = None
    e2e: float | None = None
    itl: list[float] = field(default_factory=list)
    output_tokens: int = 0
    reasoning_tokens: int = 0
    content_tokens: int = 0
    tool_calls: int = 0
    prompt_tokens: int = 0
    finish_reason: str | None = None

    @property
    def tpot(self) -> float | None:
        if self.ttft is None or self.e2e is None or self.output_tokens < 2:
            return None
        return (self.e2e - self.ttft) / (self.output_tokens - 1)

    @property
    def output_tokens_per_s(self) -> float | None:
        return self.output_tokens / self.e2e if self.e2e else None

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "tpot": self.tpot}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RequestSample:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


class StreamTimer:
    """Feed it the response bytes as they arrive (`feed`), then `finish`."""

    def __init__(self, kind: str, sent_at: float, wall_start: float) -> None:
        self.sample = RequestSample(kind=kind, start=wall_start)
        self._sent = sent_at
        self._buffer = b""
        self._last: float | None = None
        self._previous: float | None = None  # time of the last output-carrying event
        self._done = False
        self._words = {"reasoning": 0, "content": 0}
        self._events = 0
        self._usage: int | None = None
        self.content_text: list[str] = []

    def feed(self, data: bytes, now: float) -> None:
        """Bytes of the body received at client time `now` (any split; lines may straddle)."""
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        for raw in lines:
            line = raw.strip()
            if line.startswith(b"data:"):
                self._event(line[5:].strip(), now)

    def _event(self, payload: bytes, now: float) -> None:
        if payload == b"[DONE]":
            self._done = True
            self._last = now
            return
        try:
            event = json.loads(payload)
        except ValueError:
            self.sample.error = self.sample.error or "bad_json"
            return
        if not isinstance(event, dict):
            return
        if event.get("error") is not None or event.get("object") == "error":
            detail = event.get("error") or event.get("message")
            self.sample.error = self.sample.error or f"error_event: {str(detail)[:200]}"
        usage = event.get("usage")
        if isinstance(usage, dict) and usage.get("completion_tokens") is not None:
            self._usage = int(usage["completion_tokens"])
            self.sample.prompt_tokens = int(usage.get("prompt_tokens") or 0)
        self._last = now
        for choice in event.get("choices") or ():
            self._choice(choice, now)

    def _choice(self, choice: dict[str, Any], now: float) -> None:
        delta = choice.get("delta") or {}
        if choice.get("finish_reason"):
            self.sample.finish_reason = str(choice["finish_reason"])
        reasoning = delta.get("reasoning_content") or delta.get("reasoning") or ""
        content = delta.get("content") or choice.get("text") or ""
        calls = delta.get("tool_calls") or []
        if not (reasoning or content or calls):
            return
        self._words["reasoning"] += len(reasoning.split())
        self._words["content"] += len(content.split())
        self.sample.tool_calls += len(calls)
        if content:
            self.content_text.append(content)
        self._events += 1
        if self.sample.ttft is None:
            self.sample.ttft = now - self._sent
        elif self._previous is not None:
            self.sample.itl.append(now - self._previous)
        self._previous = now

    def finish(self, now: float, error: str | None = None) -> RequestSample:
        """The sample; `error` is a transport failure (connect, timeout, http_status: ...)."""
        s = self.sample
        s.e2e = (self._last if self._last is not None else now) - self._sent
        total = self._usage if self._usage is not None else self._events
        s.output_tokens = total
        words = self._words["reasoning"] + self._words["content"]
        s.reasoning_tokens = round(total * self._words["reasoning"] / words) if words else 0
        s.content_tokens = total - s.reasoning_tokens if words else 0
        s.error = error or s.error
        if s.error is None and not self._done:
            s.error = "cut_off: the stream ended before [DONE]"
        if s.error is None and self._events == 0:
            s.error = "no_output: the stream carried no token"
        s.ok = s.error is None
        return s
