"""precise_prefix's request-path glue: feeds from the registry, runs folded per endpoint,
fallbacks counted, settings parsed, and prompts tokenized as the engine would."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import Whitespace

from controlplane.engines.sim.router_tokens import FACTORY
from controlplane.errors import UserError
from controlplane.router import kv_hash
from controlplane.router.kv_route import PreciseRouting, endpoint_runs, feeds_of
from controlplane.router.kv_tokens import HfTokens, PreciseSettings, token_ids_fn
from controlplane.router.kv_wire import BlockRemoved, BlockStored, EventBatch
from controlplane.router.policies import Tuning
from controlplane.router.registry import EndpointInfo

NOBODY = "tcp://127.0.0.1:9"  # connects lazily; nothing is sent before close()
SIM = PreciseSettings(tokenizer="sim", factory=FACTORY, model="m", context_length=4096)


def info(name: str, ranks: int = 1, engine_id: str = "a") -> EndpointInfo:
    urls = tuple(f"{NOBODY}{r}" for r in range(ranks))
    return EndpointInfo(name, f"http://{name}", "m", kv_events=urls, kv_replay=urls,
                        engine_id=engine_id)  # fmt: skip


def chat(words: int) -> dict[str, object]:
    text = " ".join(f"w{i}" for i in range(words))
    return {"model": "m", "messages": [{"role": "user", "content": text}]}


def test_feeds_are_one_per_rank_and_fold_back_to_their_endpoint() -> None:
    one, two = feeds_of(info("a")), feeds_of(info("b", ranks=2))
    assert [f.endpoint_id for f in one] == ["a"]
    assert [f.endpoint_id for f in two] == ["b#dp0", "b#dp1"]
    assert feeds_of(EndpointInfo("c", "http://c", "m")) == []
    owners = {"a": "a", "b#dp0": "b", "b#dp1": "b"}
    assert endpoint_runs({"a": 3, "b#dp0": 1, "b#dp1": 5, "gone": 9}, owners) == {"a": 3, "b": 5}


async def test_sync_watches_registered_feeds_and_matches_the_holder() -> None:
    routing = PreciseRouting(SIM)
    try:
        a, b = info("a"), info("b", ranks=2)
        routing.sync({"a": a, "b": b})
        body = chat(40)  # 40 words: 2 full blocks of 16
        ids = routing.lookup.token_ids(body, True) if routing.lookup.token_ids else None
        assert ids is not None and len(ids) >= 32
        chain = kv_hash.block_keys(ids)
        routing.subscriber.index.apply(
            "b#dp1", EventBatch(0.0, (BlockStored(tuple(chain), None, (), 16),))
        )
        match = routing.match(body, True, [a, b])
        assert match is not None and match.runs == {"b": len(chain)}
        assert match.blocks == len(chain) and match.evicted == frozenset()
        removed = EventBatch(0.0, (BlockRemoved(tuple(chain)),))
        routing.subscriber.index.apply("b#dp1", removed)
        match = routing.match(body, True, [a, b])
        assert match is not None and (match.runs, match.evicted) == ({}, {"b"})
        routing.sync({"a": a})  # b deregistered: its blocks are forgotten
        assert routing.subscriber.index.blocks_of("b#dp1") == 0
        assert routing.match(body, True, [a]) is not None
    finally:
        await routing.close()


async def test_fallbacks_are_counted_by_reason() -> None:
    routing = PreciseRouting(SIM)
    nothing = PreciseRouting(PreciseSettings(tokenizer=""))
    try:
        routing.sync({"a": info("a")})
        plain = EndpointInfo("p", "http://p", "m")
        assert routing.match(chat(40), True, [info("a"), plain]) is None
        assert routing.match({"model": "m"}, True, [info("a")]) is None  # no messages
        assert nothing.match(chat(40), True, [info("a")]) is None
        assert routing.fallbacks == {"no_feed": 1, "unhashable": 1}
        assert nothing.fallbacks == {"no_tokenizer": 1}
        text = routing.metrics_text()
        assert 'glmctl_router_kv_fallbacks_total{reason="no_feed"} 1' in text
        assert "glmctl_router_kv_index_blocks" in text
        assert "glmctl_router_kv_feeds 1" in text
    finally:
        await routing.close()
        await nothing.close()


async def test_an_engine_hashing_other_block_sizes_falls_back_instead_of_never_matching() -> None:
    routing = PreciseRouting(SIM)  # hashes blocks of 16 tokens
    try:
        routing.sync({"a": info("a")})
        index = routing.subscriber.index
        index.apply("a", EventBatch(0.0, (BlockStored((1, 2), None, (), SIM.block_size),)))
        assert routing.match(chat(40), True, [info("a")]) is not None
        index.apply("a", EventBatch(1.0, (BlockStored((3,), 2, (), 64),)))  # SGLang's own 64
        assert routing.match(chat(40), True, [info("a")]) is None
        assert routing.fallbacks == {"block_size": 1}
        index.clear("a")  # a restarted engine: its next events say again
        assert routing.match(chat(40), True, [info("a")]) is not None
    finally:
        await routing.close()


def test_settings_round_trip_and_bad_json_says_what_to_fix() -> None:
    settings = PreciseSettings(tokenizer="hf:/m", prefix=2.0, queue=0.5, kv=0.0)
    assert PreciseSettings.from_json(settings.to_json()) == settings
    tuned = PreciseRouting(settings).tuning(Tuning())
    assert (tuned.prefix_weight, tuned.queue_weight, tuned.kv_weight) == (2.0, 0.5, 0.0)
    for bad in ("{", "[]", '{"nope": 1}', '{"hash_scheme": "md5"}'):
        with pytest.raises(UserError, match="--precise"):
            PreciseSettings.from_json(bad)


def test_the_lookup_hashes_with_the_settings_scheme() -> None:
    settings = PreciseSettings(tokenizer="", hash_scheme=kv_hash.SGLANG_SHA256)
    assert PreciseSettings.from_json(settings.to_json()).hash_scheme == kv_hash.SGLANG_SHA256
    chains = PreciseRouting(settings).lookup.chains
    ids = list(range(40))
    assert chains.keys(ids) == kv_hash.block_keys(ids, scheme=kv_hash.SGLANG_SHA256)


def write_model(folder: Path, template: str | None) -> Path:
    vocab = {"[UNK]": 0, "<bos>": 1, "hello": 2, "world": 3, "user": 4, "says": 5, "|": 6}
    tokenizer = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = Whitespace()
    folder.mkdir()
    tokenizer.save(str(folder / "tokenizer.json"))
    config = {"chat_template": template} if template else {}
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    return folder


def test_hf_tokens_encode_completions_and_render_chat(tmp_path: Path) -> None:
    template = "{% for m in messages %}{{ m['role'] }} says {{ m['content'] }} |{% endfor %}"
    folder = write_model(tmp_path / "model", template)
    tokens = token_ids_fn(PreciseSettings(tokenizer=f"hf:{folder}"))
    assert isinstance(tokens, HfTokens)
    assert tokens({"prompt": "hello world"}, False) == [2, 3]
    assert tokens({"prompt": [7, 8, 9]}, False) == [7, 8, 9]  # token ids pass as they are
    assert tokens({"prompt": 5}, False) is None
    body = {"messages": [{"role": "user", "content": "hello world"}]}
    assert tokens(body, True) == [4, 5, 2, 3, 6]
    parts = {"messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}]}
    assert tokens(parts, True) is None  # content parts: the engine's rendering may differ


def test_hf_tokens_without_template_or_folder(tmp_path: Path) -> None:
    folder = write_model(tmp_path / "bare", None)
    tokens = token_ids_fn(PreciseSettings(tokenizer=f"hf:{folder}"))
    assert tokens is not None and tokens({"messages": []}, True) is None
    assert token_ids_fn(PreciseSettings(tokenizer=f"hf:{tmp_path / 'missing'}")) is None


def test_chat_template_jinja_comes_before_tokenizer_config(tmp_path: Path) -> None:
    folder = write_model(tmp_path / "model", "{{ 'world' }}")
    (folder / "chat_template.jinja").write_text("{{ 'hello' }}\n")
    tokens = token_ids_fn(PreciseSettings(tokenizer=f"hf:{folder}"))
    assert tokens is not None and tokens({"messages": []}, True) == [2]
