"""Workloads GLM-4.5 is deployed for, as OpenAI chat request bodies (pure, seeded).

- `chat`: multi-turn agent-style chat; every user shares one long system prompt (prefix-cache
  friendly) and keeps its own history for `turns` turns.
- `summarise`: one long document to summarise; prompt lengths reach the context length.
- `tools`: chat with `tools` and `tool_choice` (auto, naming a tool in the question).
- `thinking` / `no-thinking`: single turns with `chat_template_kwargs.enable_thinking`.
- `mix`: each request drawn from the above with fixed weights.

Prompts are generated locally from a small vocabulary (no data set download). Lengths are
in words; the simulated engine counts one word as one token, real tokenizers about 1.3.
Output lengths are exact by default (`ignore_eos`, as vLLM's `bench serve` random data set).
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass, field
from typing import Any

from controlplane.errors import UserError

WORKLOADS = ("chat", "summarise", "tools", "thinking", "no-thinking", "mix")
MIX_WEIGHTS = {"chat": 0.4, "tools": 0.2, "thinking": 0.15, "no-thinking": 0.15, "summarise": 0.1}
TEMPLATE_MARGIN = 64  # tokens the chat template and role markers add to a prompt

_TEXT = (
    "the a of to and in is it for on that with as be at by this from or an are was we can"
    " cluster model token cache request latency throughput replica expert layer batch queue"
    " memory bandwidth prefix router engine node gpu decode prefill context answer question"
    " plan budget user session tool weather city report file code search result summary time"
)
_WORDS = tuple(_TEXT.split(" "))

# Default lengths per workload (prompt, output): chat and tool turns are short; a system
# prompt of 2,000 tokens is typical of agent frameworks; summarisation reads long documents.
DEFAULT_LENGTHS = {
    "chat": ("normal:256,64", "normal:192,48"),
    "tools": ("normal:128,32", "normal:96,24"),
    "thinking": ("normal:256,64", "normal:384,96"),
    "no-thinking": ("normal:256,64", "normal:192,48"),
    "summarise": ("lognormal:8192,0.6", "normal:256,64"),
}
SYSTEM_PROMPT_TOKENS = 2000

TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {"type": "object", "properties": props, "required": list(props)},
        },
    }
    for name, description, props in (
        ("get_weather", "Current weather of a city.", {"city": {"type": "string"}}),
        ("search_docs", "Search the documentation.", {"query": {"type": "string"},
                                                        "limit": {"type": "integer"}}),
        ("run_code", "Run a Python snippet.", {"code": {"type": "string"}}),
    )
]  # fmt: skip

TOOL_NAMES = tuple(str(t["function"]["name"]) for t in TOOLS)


@dataclass(frozen=True)
class LengthDist:
    """A token-length distribution: fixed, uniform, normal or lognormal, clipped to [1, cap]."""

    kind: str
    mean: float
    spread: float = 0.0  # uniform: half width; normal: std; lognormal: sigma of log
    cap: int = 1 << 20

    def sample(self, rng: random.Random) -> int:
        if self.kind == "fixed":
            value = self.mean
        elif self.kind == "uniform":
            value = rng.uniform(self.mean - self.spread, self.mean + self.spread)
        elif self.kind == "normal":
            value = rng.gauss(self.mean, self.spread)
        else:  # lognormal with median `mean`
            value = rng.lognormvariate(math.log(self.mean), self.spread)
        return max(1, min(self.cap, round(value)))


_DIST = re.compile(r"^(?:(fixed|uniform|normal|lognormal):)?([0-9.]+)(?:[,-]([0-9.]+))?$")


def parse_length(text: str, what: str = "length") -> LengthDist:
    """`512`, `fixed:512`, `uniform:256-1024`, `normal:512,128`, `lognormal:8192,0.6`."""
    match = _DIST.match(text.strip().replace(" ", ""))
    fix = (
        "write a number (512) or kind:parameters: uniform:LOW-HIGH, normal:MEAN,STD,"
        " lognormal:MEDIAN,SIGMA."
    )
    if match is None:
        raise UserError(f"{what} `{text}` is not a length distribution.", fix=fix)
    kind, first, second = match.group(1) or "fixed", float(match.group(2)), match.group(3)
    if kind != "fixed" and second is None:
        raise UserError(f"{what} `{text}`: {kind} needs two numbers.", fix=fix)
    spread = float(second) if second is not None else 0.0
    if kind == "uniform":
        if spread < first:
            raise UserError(f"{what} `{text}`: LOW is above HIGH.", fix=fix)
        return LengthDist("uniform", (first + spread) / 2, (spread - first) / 2)
    if first < 1:
        raise UserError(f"{what} `{text}`: the length must be at least 1.", fix=fix)
    return LengthDist(kind, first, spread)


@dataclass(frozen=True)
class WorkloadConfig:
    """What a user sends: the workload, its length distributions and the model's limits."""

    name: str
    model: str
    context_length: int = 32768
    prompt: LengthDist | None = None  # None: the workload's default
    output: LengthDist | None = None
    system_prompt_tokens: int = SYSTEM_PROMPT_TOKENS
    turns: int = 4
    ignore_eos: bool = True

    def __post_init__(self) -> None:
        if self.name not in WORKLOADS:
            raise UserError(
                f"unknown workload `{self.name}`.", fix=f"use one of {', '.join(WORKLOADS)}."
            )

    def lengths(self, kind: str) -> tuple[LengthDist, LengthDist]:
        prompt, output = DEFAULT_LENGTHS[kind]
        return self.prompt or parse_length(prompt), self.output or parse_length(output)


def words(rng: random.Random, count: int) -> str:
    """`count` words of generated text."""
    return " ".join(rng.choices(_WORDS, k=count))


def shared_system_prompt(tokens: int, seed: int = 0) -> str:
    """The one system prompt every user of a run shares (same seed, same text)."""
    return "You are a helpful agent. " + words(random.Random(seed * 7 + 1), max(0, tokens - 5))


@dataclass
class Session:
    """One user's state: the chat history of the current conversation."""

    rng: random.Random
    history: list[dict[str, Any]] = field(default_factory=list)
    turn: int = 0


@dataclass(frozen=True)
class PlannedRequest:
    """One request to send: its workload kind and OpenAI body."""

    kind: str
    body: dict[str, Any]
    prompt_words: int


def next_request(cfg: WorkloadConfig, session: Session, seed: int = 0) -> PlannedRequest:
    """The next request of a user (pure apart from `session`, which it advances)."""
    kind = cfg.name
    if kind == "mix":
        kind = session.rng.choices(list(MIX_WEIGHTS), weights=list(MIX_WEIGHTS.values()))[0]
    prompt_dist, output_dist = cfg.lengths(kind)
    output = min(output_dist.sample(session.rng), cfg.context_length // 2)
    room = cfg.context_length - output - TEMPLATE_MARGIN
    builder = _BUILDERS[kind]
    messages, extra = builder(cfg, session, prompt_dist, room, seed)
    body: dict[str, Any] = {
        "model": cfg.model,
        "messages": messages,
        "max_tokens": output,
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": 0.7,
        **extra,
    }
    if cfg.ignore_eos:
        body["ignore_eos"] = True
    prompt_words = sum(len(str(m.get("content") or "").split()) for m in messages)
    return PlannedRequest(kind, body, prompt_words)


def record_reply(session: Session, planned: PlannedRequest, content: str) -> None:
    """Keep the assistant's answer in the history of a multi-turn chat."""
    if planned.kind == "chat" and session.history:
        session.history.append({"role": "assistant", "content": content})


Built = tuple[list[dict[str, Any]], dict[str, Any]]


def _chat(cfg: WorkloadConfig, s: Session, dist: LengthDist, room: int, seed: int) -> Built:
    system_tokens = min(cfg.system_prompt_tokens, room // 2)  # small contexts: a shorter one
    system = {"role": "system", "content": shared_system_prompt(system_tokens, seed)}
    question = {"role": "user", "content": words(s.rng, dist.sample(s.rng))}
    used = sum(len(str(m["content"]).split()) for m in s.history) + system_tokens
    if s.turn >= cfg.turns or used + len(question["content"].split()) > room:
        s.history, s.turn = [], 0  # a new conversation
    s.turn += 1
    s.history.append(question)
    budget = max(1, room - system_tokens)
    if len(question["content"].split()) > budget:  # a system prompt near the context
        question["content"] = words(s.rng, budget)
    return [system, *s.history], {}


def _summarise(cfg: WorkloadConfig, s: Session, dist: LengthDist, room: int, _: int) -> Built:
    length = max(1, min(dist.sample(s.rng), room - 8))
    text = "Summarise the following document in five bullet points. " + words(s.rng, length)
    return [{"role": "user", "content": text}], {"chat_template_kwargs": {"enable_thinking": False}}


def _tools(cfg: WorkloadConfig, s: Session, dist: LengthDist, room: int, _: int) -> Built:
    tool = s.rng.choice(TOOL_NAMES)
    length = max(1, min(dist.sample(s.rng), room - 400))
    text = f"Use {tool} to help with this: " + words(s.rng, length)
    return [{"role": "user", "content": text}], {"tools": TOOLS, "tool_choice": "auto"}


def _single(thinking: bool) -> Any:
    def build(cfg: WorkloadConfig, s: Session, dist: LengthDist, room: int, _: int) -> Built:
        length = max(1, min(dist.sample(s.rng), room))
        extra = {"chat_template_kwargs": {"enable_thinking": thinking}}
        return [{"role": "user", "content": words(s.rng, length)}], extra

    return build


_BUILDERS = {
    "chat": _chat,
    "summarise": _summarise,
    "tools": _tools,
    "thinking": _single(True),
    "no-thinking": _single(False),
}


class Arrivals:
    """Open-loop arrival times: a Poisson process (burstiness 1) or gamma inter-arrivals.

    As vLLM's `bench serve`: gaps are Gamma(shape=burstiness, scale=1/(rate x burstiness)),
    so the mean rate is `rate` at any burstiness; below 1 is burstier, above 1 steadier.
    """

    def __init__(self, rate: float, burstiness: float = 1.0, seed: int = 0, start: float = 0.0):
        if rate <= 0 or burstiness <= 0:
            raise UserError(
                f"rate {rate} / burstiness {burstiness} must be positive.",
                fix="pass --rate above 0 and --burstiness above 0 (1 is Poisson).",
            )
        self.rate, self.burstiness = rate, burstiness
        self._rng = random.Random(seed)
        self._next = start

    def next(self) -> float:
        """The next arrival time (same clock as `start`)."""
        gap = self._rng.gammavariate(self.burstiness, 1.0 / (self.rate * self.burstiness))
        self._next += gap
        return self._next
