"""OpenAI request bodies -> validated requests with their planned outputs (pure).

What the simulated GLM-4.5 answers is decided here, up front and deterministically; the
scheduler only paces it. Rules a client can rely on:
- Output length: `max_tokens` when `ignore_eos` is true (vLLM/SGLang extension), else a
  natural length drawn from the seed in [NATURAL_MIN, NATURAL_MAX], capped by
  `max_tokens` (finish_reason "length") or by the context left.
- Thinking (chat only) is on unless `chat_template_kwargs.enable_thinking` is false: the
  first REASONING_SHARE of the output is `reasoning_content`, the rest `content`.
- Tools: a tool call is made when `tools` are given and `tool_choice` is "required" or
  names a function, or is "auto" (the default) and the last user message mentions a
  tool's name (first mentioned wins). The call replaces `content`; finish_reason
  "tool_calls". Arguments fill every schema property with a deterministic value.
- Text: seeded by (server seed, `seed`) or, at temperature 0, by the prompt alone;
  otherwise by the server's own request counter. `stop` strings cut the text before them.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Any

from controlplane.catalog import image_input
from controlplane.catalog.vision import VisionEncoder
from controlplane.engines.sim import tokens
from controlplane.engines.sim.tokenizer import WORDS, TextRules

NATURAL_MIN, NATURAL_MAX = 32, 384
REASONING_SHARE = 0.5


class ApiError(Exception):
    """An error answered with the engine's JSON error body (vLLM's shape)."""

    def __init__(self, status: int, message: str, kind: str = "BadRequestError") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str


@dataclass(slots=True)
class Choice:
    """One planned output: token words in order reasoning, content, then a tool call."""

    reasoning: list[str]
    content: list[str]
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_tokens: int = 0
    finish_reason: str = "stop"

    @property
    def total_tokens(self) -> int:
        return len(self.reasoning) + len(self.content) + self.tool_tokens


@dataclass(slots=True)
class Request:
    chat: bool
    model: str
    stream: bool
    include_usage: bool
    prompt_words: list[str]
    choices: list[Choice]

    @property
    def prompt_tokens(self) -> int:
        return len(self.prompt_words)

    @property
    def completion_tokens(self) -> int:
        return sum(c.total_tokens for c in self.choices)


@dataclass(frozen=True, slots=True)
class Limits:
    served_model_name: str
    context_length: int
    seed: int
    text: TextRules = WORDS  # how text becomes tokens (whitespace words by default)
    vision: VisionEncoder | None = None  # a vision-language model's tower: images accepted


def parse_request(body: Any, chat: bool, limits: Limits, counter: int) -> Request:
    """Validate an OpenAI body and plan its output; raises ApiError like the engines."""
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object.")
    model = body.get("model") or limits.served_model_name
    if model != limits.served_model_name:
        raise ApiError(404, f"The model `{model}` does not exist.", "NotFoundError")
    prompt_text = _prompt_text(body, chat)
    words = limits.text.prompt_tokens(prompt_text) + _image_words(body, chat, limits)
    n = _int_field(body, "n", 1, minimum=1)
    max_tokens = _max_tokens(body, chat)
    budget = _check_context(len(words), max_tokens, limits.context_length)
    temperature = body.get("temperature")
    temperature = 1.0 if temperature is None else temperature
    if not isinstance(temperature, int | float) or temperature < 0:
        raise ApiError(400, f"temperature must be non-negative, got {temperature}.")
    seed = body.get("seed")
    stream_options = body.get("stream_options") or {}
    base = _base_seed(prompt_text, limits.seed, seed, temperature, counter)
    planner = _Planner(body, chat, budget, limits.text)
    # Greedy decoding (temperature 0) gives every choice the same text, as the engines do.
    choices = [planner.plan(random.Random(base + (i if temperature else 0))) for i in range(n)]
    return Request(
        chat=chat,
        model=model,
        stream=bool(body.get("stream", False)),
        include_usage=bool(
            isinstance(stream_options, dict) and stream_options.get("include_usage")
        ),
        prompt_words=words,
        choices=choices,
    )


def _prompt_text(body: dict[str, Any], chat: bool) -> str:
    if chat:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise ApiError(400, "`messages` must be a non-empty list.")
        if not all(isinstance(m, dict) for m in messages):
            raise ApiError(400, "each message must be an object with `role` and `content`.")
        return tokens.render_chat(messages, body.get("tools"))
    prompt = body.get("prompt")
    if isinstance(prompt, list) and prompt and all(isinstance(p, int) for p in prompt):
        return " ".join(str(p) for p in prompt)  # token ids: one word each
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        return prompt[0]
    if not isinstance(prompt, str):
        raise ApiError(400, "`prompt` must be a string, a list of one string, or token ids.")
    return prompt


def _image_words(body: dict[str, Any], chat: bool, limits: Limits) -> list[str]:
    """The prompt's image tokens (prefilled like text: vision-token prefill), or ApiError
    when the model has no vision tower or a part is malformed, as the engines answer."""
    parts = list(image_input.image_parts(body)) if chat else []
    if not parts:
        return []
    if limits.vision is None:
        raise ApiError(
            400,
            f"{limits.served_model_name} is not a multimodal model: remove the `image_url`"
            " parts or serve a vision model (glm-4.5v, glm-4.6v).",
        )
    for part in parts:
        problem = image_input.part_problem(part)
        if problem is not None:
            raise ApiError(400, problem + ".")
    return image_input.image_words(body, limits.vision)


def _int_field(body: dict[str, Any], name: str, default: int, minimum: int) -> int:
    value = body.get(name, default)
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool):
        raise ApiError(400, f"`{name}` must be an integer, got {value!r}.")
    if value < minimum:
        raise ApiError(400, f"{name} must be at least {minimum}, got {value}.")
    return value


def _max_tokens(body: dict[str, Any], chat: bool) -> int | None:
    key = (
        "max_completion_tokens"
        if chat and body.get("max_completion_tokens") is not None
        else "max_tokens"
    )
    if body.get(key) is None:
        return None
    return _int_field(body, key, 0, minimum=1)


def _check_context(prompt: int, max_tokens: int | None, context: int) -> int:
    """Tokens the output may use; raises vLLM's 400 when the request cannot fit."""
    if prompt >= context:
        raise ApiError(
            400,
            f"This model's maximum context length is {context} tokens. However, your request"
            f" has {prompt} input tokens. Please reduce the length of the input messages.",
        )
    if max_tokens is not None and prompt + max_tokens > context:
        raise ApiError(
            400,
            f"'max_tokens' or 'max_completion_tokens' is too large: {max_tokens}. This model's"
            f" maximum context length is {context} tokens and your request has {prompt} input"
            f" tokens ({max_tokens} > {context} - {prompt}).",
        )
    return max_tokens if max_tokens is not None else context - prompt


def _base_seed(text: str, server_seed: int, seed: Any, temperature: float, counter: int) -> int:
    if temperature == 0:
        return tokens.text_seed(text, server_seed)
    if isinstance(seed, int):
        return tokens.text_seed(text, server_seed * 1_000_003 + seed)
    return tokens.text_seed(text, server_seed) + counter * 7919


class _Planner:
    """Plans one choice's output from the request's settings."""

    def __init__(self, body: dict[str, Any], chat: bool, budget: int, text: TextRules) -> None:
        self.budget = budget
        self.text = text
        self.ignore_eos = bool(body.get("ignore_eos", False))
        kwargs = body.get("chat_template_kwargs") or {}
        self.thinking = chat and kwargs.get("enable_thinking", True) is not False
        self.tool = _pick_tool(body) if chat else None
        stop = body.get("stop")
        self.stop = [stop] if isinstance(stop, str) else [s for s in stop or () if s]

    def plan(self, rng: random.Random) -> Choice:
        natural = self.budget if self.ignore_eos else rng.randint(NATURAL_MIN, NATURAL_MAX)
        length = min(natural, self.budget)
        reasoning_n = int(length * REASONING_SHARE) if self.thinking else 0
        if self.tool is not None:
            call = _tool_call(self.tool, rng)
            tool_tokens = self.text.count(f"{call.name} {call.arguments}")
            if reasoning_n + tool_tokens <= self.budget:
                words = self.text.generate(rng, reasoning_n)
                return Choice(words, [], [call], tool_tokens, "tool_calls")
            length = self.budget
        words = self.text.generate(rng, length)
        finish = "length" if natural >= self.budget else "stop"
        words, stopped = _apply_stop(words, self.stop)
        if stopped:
            finish = "stop"
        reasoning_n = min(reasoning_n, len(words))
        return Choice(words[:reasoning_n], words[reasoning_n:], finish_reason=finish)


def _apply_stop(words: list[str], stops: list[str]) -> tuple[list[str], bool]:
    if not stops:
        return words, False
    text = " ".join(words)
    cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=-1)
    if cut < 0:
        return words, False
    return text[:cut].split(), True


def _pick_tool(body: dict[str, Any]) -> dict[str, Any] | None:
    tools = [t.get("function", t) for t in body.get("tools") or () if isinstance(t, dict)]
    if not tools:
        return None
    choice = body.get("tool_choice", "auto")
    if choice == "none":
        return None
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        named = [t for t in tools if t.get("name") == name]
        if not named:
            raise ApiError(400, f"tool_choice names `{name}`, which is not in `tools`.")
        return named[0]
    last_user: dict[str, Any] = next(
        (m for m in reversed(body.get("messages") or ()) if m.get("role") == "user"), {}
    )
    text = tokens.content_text(last_user.get("content")).lower()
    mentioned = [t for t in tools if str(t.get("name", "")).lower() in text]
    if mentioned:
        return mentioned[0]
    return tools[0] if choice == "required" else None


def _tool_call(tool: dict[str, Any], rng: random.Random) -> ToolCall:
    schema = tool.get("parameters") or {}
    props = schema.get("properties") or {}
    args = {key: _fake_value(prop, rng) for key, prop in props.items()}
    call_id = f"call_{rng.getrandbits(64):016x}"
    return ToolCall(call_id, str(tool.get("name", "tool")), json.dumps(args))


def _fake_value(prop: Any, rng: random.Random) -> Any:
    if not isinstance(prop, dict):
        return None
    if prop.get("enum"):
        return prop["enum"][0]
    kind = prop.get("type", "string")
    if kind == "integer":
        return rng.randint(1, 100)
    if kind == "number":
        return round(rng.uniform(0, 100), 2)
    if kind == "boolean":
        return True
    if kind == "array":
        return []
    if kind == "object":
        return {}
    return rng.choice(tokens.VOCABULARY)
