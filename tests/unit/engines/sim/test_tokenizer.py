"""The simulator's optional tokenizer.json: counts agree with `tokenizers`; errors say the fix."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from controlplane.engines.sim import tokens
from controlplane.engines.sim.requests import Limits, parse_request
from controlplane.engines.sim.tokenizer import WORDS, TokenizerRules, text_rules
from controlplane.errors import UserError
from controlplane.local.tiny_writer import write_tokenizer

tokenizers = pytest.importorskip("tokenizers")  # in glmctl[tokenizer] and the dev extra


@pytest.fixture(scope="module")
def tiny_tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny GLM-4.5 model's byte-level BPE tokenizer (vocabulary 1,024)."""
    out = tmp_path_factory.mktemp("tiny-tokenizer")
    write_tokenizer(out, 1024)
    return out / "tokenizer.json"


def test_default_counts_words() -> None:
    assert text_rules(None) is WORDS
    assert WORDS.count("one two  three") == 3 == len(WORDS.prompt_tokens("one two three"))


def test_prompt_counts_match_the_tokenizer(tiny_tokenizer: Path) -> None:
    rules = text_rules(str(tiny_tokenizer))
    reference = tokenizers.Tokenizer.from_file(str(tiny_tokenizer))
    text = "[gMASK]<sop><|user|> the model serves tokens, from a cache of keys!<|assistant|>"
    expected = reference.encode(text, add_special_tokens=False)
    assert rules.count(text) == len(expected.ids) != WORDS.count(text)
    assert rules.prompt_tokens(text) == expected.tokens


def test_generated_words_are_one_token_each_after_a_space(tiny_tokenizer: Path) -> None:
    rules = text_rules(str(tiny_tokenizer.parent))  # the folder works too
    words = rules.generate(random.Random(5), 300)
    assert len(words) == 300
    assert rules.count(" " + " ".join(words)) == 300


def test_requests_are_counted_with_the_tokenizer(tiny_tokenizer: Path) -> None:
    rules = text_rules(str(tiny_tokenizer))
    limits = Limits("glm", 4096, 0, text=rules)
    body = {"model": "glm", "messages": [{"role": "user", "content": "hello there, model"}],
            "max_tokens": 40, "ignore_eos": True}  # fmt: skip
    request = parse_request(body, chat=True, limits=limits, counter=0)
    prompt = tokens.render_chat(body["messages"], None)  # type: ignore[arg-type]
    assert request.prompt_tokens == rules.count(prompt)
    assert request.completion_tokens == 40


def test_missing_file_and_unusable_tokenizer_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no tokenizer file") as missing:
        text_rules(str(tmp_path / "nope.json"))
    assert "To fix" in str(missing.value)
    bad = tmp_path / "tokenizer.json"
    bad.write_text("{not json")
    with pytest.raises(UserError, match="cannot read"):
        text_rules(str(bad))
    # A character-level vocabulary has no multi-letter words: no text it could count exactly.
    chars = tokenizers.Tokenizer(tokenizers.models.WordLevel({"a": 0, "b": 1, "[UNK]": 2},
                                                             unk_token="[UNK]"))  # fmt: skip
    with pytest.raises(UserError, match="fewer than"):
        TokenizerRules(chars, "chars")
