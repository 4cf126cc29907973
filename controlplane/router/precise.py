"""What `precise_prefix` needs on the request path: a prompt's block hashes and runs.

The router computes the hashes the engine computes (`kv_hash`: the engine's scheme, such
as vLLM's sha256_cbor chain or SGLang's sha256 page chain, over token ids at its block
size) from the token ids of the request, and asks the event index (`kv_index`) how many
leading blocks each endpoint holds. Token ids come from a `TokenIdsFn` the deployment
supplies (`kv_tokens.token_ids_fn`): for the simulator, its own parsing and tokenizer
(`engines/sim/kv_events.sim_token_ids`), so both sides tokenize the same way; for a real
engine, the model's tokenizer and chat template. Without one the function returns None and
the policy falls back to the approximate index, reason `approx_*`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from controlplane.router import kv_hash
from controlplane.router.kv_index import KvIndex
from controlplane.router.policies import Tuning
from controlplane.spec.router import RouterSpec

# Token ids of a request body (chat: True for /v1/chat/completions); None when no tokenizer
# for the model is available or the body is not one the engine would accept.
TokenIdsFn = Callable[[dict[str, Any], bool], list[int] | None]


@dataclass(frozen=True, slots=True)
class PrefixMatch:
    runs: Mapping[str, int]  # endpoint -> leading blocks it holds (absent: none)
    blocks: int  # the prompt's full blocks
    evicted: frozenset[str] = frozenset()  # endpoints that evicted the first block


@dataclass
class PreciseLookup:
    """Prompt -> per-endpoint cached runs, against one event index."""

    index: KvIndex
    token_ids: TokenIdsFn | None
    block_size: int = kv_hash.DEFAULT_BLOCK_SIZE
    seed: str = kv_hash.DEFAULT_SEED
    hash_scheme: str = kv_hash.VLLM_SHA256_CBOR

    def __post_init__(self) -> None:
        self.chains = kv_hash.ChainCache(self.block_size, self.seed, scheme=self.hash_scheme)

    def match(self, body: dict[str, Any], chat: bool) -> PrefixMatch | None:
        """None when the prompt cannot be hashed as the engine would (no tokenizer)."""
        if self.token_ids is None:
            return None
        ids = self.token_ids(body, chat)
        if ids is None:
            return None
        chain = self.chains.keys(ids)
        evicted = self.index.evicted(chain[0]) if chain else frozenset()
        return PrefixMatch(self.index.runs(chain), len(chain), evicted)


def tuning_from_spec(spec: RouterSpec, base: Tuning | None = None) -> Tuning:
    """The policy knobs with `router.precise_prefix`'s weights (defaults when unset)."""
    base = base or Tuning()
    weights = spec.precise_prefix
    if weights is None:
        return base
    return Tuning(
        prefix_min_match=base.prefix_min_match,
        balance_abs=base.balance_abs,
        balance_rel=base.balance_rel,
        prefix_weight=weights.prefix,
        kv_weight=weights.kv,
        queue_weight=weights.queue,
    )
