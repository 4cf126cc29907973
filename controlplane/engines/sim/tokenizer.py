"""How the simulator turns text into tokens: whitespace words (default) or a tokenizer.json.

The default needs nothing: one token is one whitespace-separated word (`tokens.py`). With
`simulation.tokenizer: PATH` in the topology, prompts are counted (and prefix-cache blocks
hashed) with that Hugging Face `tokenizer.json`, so a benchmark client that builds prompts of
N tokens with the same tokenizer (`vllm bench serve --tokenizer DIR`) and the engine agree;
generated text uses only words that are one token each in it after a space, so a client
that retokenizes the output counts what `usage` says (give or take the first word, which has
no space before it). That path needs the
`tokenizers` package (`pip install 'glmctl[tokenizer]'`), imported only then.
"""

from __future__ import annotations

import random
import zlib
from pathlib import Path
from typing import Any, Protocol

from controlplane.engines.sim import tokens
from controlplane.errors import UserError

MIN_VOCABULARY = 16  # fewer single-token words than this and output text would repeat badly


class TextRules(Protocol):
    """Token counting and text generation of one simulator."""

    def prompt_tokens(self, text: str) -> list[str]: ...

    def count(self, text: str) -> int: ...

    def generate(self, rng: random.Random, count: int) -> list[str]: ...

    def token_ids(self, prompt_tokens: list[str]) -> list[int]: ...


class WordRules:
    """One token per whitespace-separated word (the dependency-free default)."""

    def prompt_tokens(self, text: str) -> list[str]:
        return tokens.prompt_words(text)

    def count(self, text: str) -> int:
        return tokens.count_tokens(text)

    def generate(self, rng: random.Random, count: int) -> list[str]:
        return tokens.generate_words(rng, count)

    def token_ids(self, prompt_tokens: list[str]) -> list[int]:
        """Stable ids for words (crc32: the same in every process), for KV-event hashes."""
        return [zlib.crc32(word.encode()) for word in prompt_tokens]


WORDS = WordRules()


class TokenizerRules:
    """Counts with a `tokenizers.Tokenizer`; generates words that are one token each."""

    def __init__(self, tokenizer: Any, source: str) -> None:
        self._tokenizer = tokenizer
        vocabulary = [w for w in tokens.VOCABULARY if self._single(" " + w)]
        if len(vocabulary) < MIN_VOCABULARY:
            vocabulary = _single_token_words(tokenizer)
        if len(vocabulary) < MIN_VOCABULARY:
            raise UserError(
                f"the tokenizer {source} has fewer than {MIN_VOCABULARY} plain words that are"
                " one token each, so the simulator cannot write text it counts exactly.",
                fix="point simulation.tokenizer at the model's own tokenizer.json.",
            )
        stream_rng = random.Random(0x5EED)
        self._stream = stream_rng.choices(vocabulary, k=1 << 15)

    def _single(self, text: str) -> bool:
        return _one_token(self._tokenizer, text)

    def prompt_tokens(self, text: str) -> list[str]:
        return list(self._tokenizer.encode(text, add_special_tokens=False).tokens)

    def count(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def token_ids(self, prompt_tokens: list[str]) -> list[int]:
        """The tokenizer's ids of `prompt_tokens()`'s pieces (what the engine hashes)."""
        return [self._tokenizer.token_to_id(piece) for piece in prompt_tokens]

    def generate(self, rng: random.Random, count: int) -> list[str]:
        if count <= 0:
            return []
        stream = self._stream
        start = rng.randrange(len(stream) // 2)
        words = stream[start : start + count]
        while len(words) < count:
            words += stream[: count - len(words)]
        return words


def _single_token_words(tokenizer: Any) -> list[str]:
    """Lower-case ASCII words of the vocabulary that encode to one token after a space."""
    words = set()
    for piece in tokenizer.get_vocab():
        word = piece.lstrip("\u0120\u2581 ")  # byte-level and sentencepiece space marks
        plain = word.isascii() and word.isalpha() and word.islower() and len(word) > 2
        if plain and _one_token(tokenizer, " " + word):
            words.add(word)
    return sorted(words)


def _one_token(tokenizer: Any, text: str) -> bool:
    """`text` is one token that decodes back to itself (not an unknown-token stand-in)."""
    ids = tokenizer.encode(text, add_special_tokens=False).ids
    return len(ids) == 1 and tokenizer.decode(ids).strip() == text.strip()


def text_rules(tokenizer_path: str | None) -> TextRules:
    """The rules for a topology's `simulation.tokenizer` (None: whitespace words)."""
    if tokenizer_path is None:
        return WORDS
    path = Path(tokenizer_path).expanduser()
    if path.is_dir():
        path = path / "tokenizer.json"
    if not path.is_file():
        raise UserError(
            f"simulation.tokenizer: no tokenizer file at {path}.",
            fix="give the path of a Hugging Face tokenizer.json (or the folder holding it).",
        )
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise UserError(
            "simulation.tokenizer needs the `tokenizers` package.",
            fix="pip install 'glmctl[tokenizer]', or remove simulation.tokenizer to count words.",
        ) from None
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as exc:  # the Rust side raises its own Exception types
        raise UserError(
            f"simulation.tokenizer: cannot read {path}: {exc}.",
            fix="give a tokenizer.json written by Hugging Face tokenizers.",
        ) from None
    return TokenizerRules(tokenizer, str(path))
