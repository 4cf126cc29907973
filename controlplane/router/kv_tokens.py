"""Token ids of a request as the engine computes them, for `precise_prefix` (router side).

`PreciseSettings` is what a router process needs to hash prompts as its engines do: how to
tokenize (`tokenizer`), the engine's hash scheme (`kv_hash.SCHEMES`), block size and hash
seed, and the policy weights. It
travels as one JSON argument (`python -m controlplane.router --precise JSON`), built by the
planner from the topology (engines/kv_events_args.py `precise_from_topology`).

Tokenizers (`token_ids_fn`):
- `factory` set: the function it names builds them (the simulator's own parsing, chat
  rendering and tokenizer: engines/sim/router_tokens.py, so router and simulator agree by
  construction; `tokenizer` is then `sim` or `sim:PATH`);
- `hf:PATH`: a Hugging Face model folder (local path or a repository id already in the
  local HF cache; never downloaded on the request path). Completions: a string prompt is
  encoded with special tokens, a list of token ids is taken as is (vLLM 0.32
  `entrypoints/openai/completion/serving.py` default `add_special_tokens=True`); chat: the
  folder's chat template (chat_template.jinja, else tokenizer_config.json's) rendered as
  transformers' `apply_chat_template(tokenize=False, add_generation_prompt=True)` does,
  then encoded without special tokens (vLLM's chat default `add_special_tokens=False`).
  A request carrying anything the template or tokenizer cannot reproduce yields None (a
  fallback, never a false hit). SGLang 0.5.23 tokenizes the same way (`srt/managers/
  tokenizer_manager.py` calls the tokenizer with its default special tokens;
  `srt/entrypoints/openai/serving_chat.py` renders, then encodes with
  `add_special_tokens=False`);
- `""`: none; the policy falls back to the approximate index.
"""

from __future__ import annotations

import importlib
import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from controlplane.errors import UserError
from controlplane.router import kv_hash

log = logging.getLogger(__name__)
TokenIds = Callable[[dict[str, Any], bool], list[int] | None]


@dataclass(frozen=True, slots=True)
class PreciseSettings:
    """What `precise_prefix` needs in a router process (JSON on its command line)."""

    tokenizer: str = ""  # "" | "hf:PATH-or-repo" | what `factory` reads (e.g. "sim:PATH")
    # "module:function" building the token-ids function from these settings, named by
    # the engine side (engines/kv_events_args.py) for tokenizers only an engine knows,
    # such as the simulator's: the router imports it by name, never by engine.
    factory: str = ""
    model: str = ""  # the served model name (the simulator's request checks)
    context_length: int = 0
    block_size: int = kv_hash.DEFAULT_BLOCK_SIZE
    seed: str = kv_hash.DEFAULT_SEED
    prefix: float = 1.0
    queue: float = 1.0
    kv: float = 0.0
    # How the engine hashes its blocks (a `kv_hash.SCHEMES` name), named by the engine
    # side (the engine profile's `kv_hash_scheme`): the router never asks which engine.
    hash_scheme: str = kv_hash.VLLM_SHA256_CBOR

    def __post_init__(self) -> None:
        kv_hash.scheme_named(self.hash_scheme)  # ValueError for an unknown scheme

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> PreciseSettings:
        """Parse `--precise`; UserError naming the bad key or value."""
        try:
            raw = json.loads(text)
            known = {f.name for f in fields(cls)}
            if not isinstance(raw, dict) or set(raw) - known:
                raise ValueError(f"keys must be among {sorted(known)}")
            return cls(**raw)
        except (ValueError, TypeError) as exc:
            raise UserError(
                f"--precise is not valid: {exc}.", fix="pass the JSON the planner wrote."
            ) from None


def token_ids_fn(settings: PreciseSettings) -> TokenIds | None:
    """The request -> token ids function of `settings`; None when none can be had (logged)."""
    kind, _, where = settings.tokenizer.partition(":")
    try:
        if settings.factory:
            module, _, function = settings.factory.partition(":")
            build: Callable[[PreciseSettings], TokenIds] = getattr(
                importlib.import_module(module), function
            )
            return build(settings)
        if kind == "hf":
            return HfTokens.load(where)
    except (UserError, OSError, ValueError, ImportError, AttributeError) as exc:
        log.warning("precise_prefix: tokenizer %s unavailable: %s", settings.tokenizer, exc)
    return None


def _model_file(where: str, name: str) -> Path | None:
    """`name` in a local folder, or in the local HF cache of repository `where`."""
    folder = Path(where).expanduser()
    if folder.is_dir():
        path = folder / name
        return path if path.is_file() else None
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(where, name)
    return Path(found) if isinstance(found, str) else None


class HfTokens:
    """A Hugging Face tokenizer.json and chat template, loaded once."""

    def __init__(self, tokenizer: Any, template: Any) -> None:
        self.tokenizer = tokenizer
        self.template = template  # a jinja2 Template, or None: chat requests fall back

    @classmethod
    def load(cls, where: str) -> HfTokens:
        from tokenizers import Tokenizer

        path = _model_file(where, "tokenizer.json")
        if path is None:
            raise ValueError(f"no tokenizer.json for {where} (local folder or HF cache)")
        # transformers reads chat_template.jinja first, then tokenizer_config.json's entry.
        jinja = _model_file(where, "chat_template.jinja")
        config_path = _model_file(where, "tokenizer_config.json")
        config = json.loads(config_path.read_text()) if config_path else {}
        source = jinja.read_text() if jinja else config.get("chat_template")
        return cls(Tokenizer.from_file(str(path)), _template(source))

    def __call__(self, body: dict[str, Any], chat: bool) -> list[int] | None:
        try:
            return self._chat(body) if chat else self._completion(body)
        except Exception:  # a body the template cannot render: no prediction, no error
            return None

    def _completion(self, body: dict[str, Any]) -> list[int] | None:
        prompt = body.get("prompt")
        if isinstance(prompt, list) and prompt and all(isinstance(t, int) for t in prompt):
            return list(prompt)
        if not isinstance(prompt, str):
            return None
        return list(self.tokenizer.encode(prompt, add_special_tokens=True).ids)

    def _chat(self, body: dict[str, Any]) -> list[int] | None:
        messages = body.get("messages")
        if self.template is None or not isinstance(messages, list):
            return None
        plain = all(isinstance(m, dict) and isinstance(m.get("content", ""), str) for m in messages)
        if not plain:
            return None  # images or content parts: the engine's rendering differs
        kwargs = body.get("chat_template_kwargs") or {}
        text = self.template.render(
            messages=messages,
            tools=body.get("tools"),
            add_generation_prompt=True,
            **kwargs,
        )
        return list(self.tokenizer.encode(text, add_special_tokens=False).ids)


def _template(source: Any) -> Any:
    """transformers' chat-template environment (trim_blocks, lstrip_blocks, `tojson`,
    `raise_exception`), sandboxed; None without a template or without jinja2."""
    if not isinstance(source, str):
        return None
    try:
        from jinja2.sandbox import ImmutableSandboxedEnvironment
    except ImportError:
        return None

    def raise_exception(message: str) -> None:
        raise ValueError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.filters["tojson"] = lambda value, **kw: json.dumps(value, ensure_ascii=False, **kw)
    env.globals["raise_exception"] = raise_exception
    return env.from_string(source)
