"""The simulator's tokenization for a router's `precise_prefix` (router/kv_tokens.py).

The planner names `token_ids_fn` in the router's settings (`PreciseSettings.factory`), so a
router hashes prompts with exactly the parsing, chat rendering and tokenizer the simulated
engines use, without router/ importing the simulator.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from controlplane.engines.sim.requests import ApiError, Limits, parse_request
from controlplane.engines.sim.tokenizer import text_rules

if TYPE_CHECKING:
    from controlplane.router.kv_tokens import PreciseSettings, TokenIds

FACTORY = f"{__name__}:token_ids_fn"


def token_ids_fn(settings: PreciseSettings) -> TokenIds:
    """Request -> the simulator's prompt token ids (None for a request it would refuse);
    `settings.tokenizer` is `sim` or `sim:PATH` (the topology's `simulation.tokenizer`)."""
    _, _, path = settings.tokenizer.partition(":")
    text = text_rules(path or None)
    limits = Limits(settings.model, settings.context_length, 0, text)

    def token_ids(body: dict[str, Any], chat: bool) -> list[int] | None:
        try:
            words = parse_request(body, chat, limits, 0).prompt_words
        except ApiError:
            return None
        return text.token_ids(words)

    return token_ids
