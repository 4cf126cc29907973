"""precise_prefix (router/policies.py) and its spec weights (router/precise.py)."""

from __future__ import annotations

from controlplane.router import kv_hash
from controlplane.router.kv_index import KvIndex
from controlplane.router.kv_wire import BlockStored, EventBatch
from controlplane.router.policies import (
    EndpointView,
    RouteContext,
    Tuning,
    default_policies,
    get_policy,
    precise_prefix,
)
from controlplane.router.precise import PreciseLookup, tuning_from_spec
from controlplane.spec.router import PrecisePrefixSpec, RouterSpec


def view(name: str, load: int = 0, kv: float = 0.0) -> EndpointView:
    return EndpointView(name, f"http://{name}", "m", inflight=load, kv_usage=kv)


def test_registered_beside_the_others() -> None:
    policy = get_policy(default_policies(), "precise_prefix")
    assert policy.choose is precise_prefix


def test_the_holder_of_the_longest_run_wins_at_equal_load() -> None:
    ctx = RouteContext((view("a"), view("b"), view("c")), kv_runs={"b": 6, "c": 2}, kv_blocks=8)
    decision = precise_prefix(ctx)
    assert (decision.endpoint.endpoint_id, decision.reason) == ("b", "precise_hit")


def test_load_outweighs_a_short_run() -> None:
    # b holds 2 of 8 blocks (1 x 0.25) but 10 requests more than a (-10/8): a scores 0.
    ctx = RouteContext((view("a"), view("b", load=10)), kv_runs={"b": 2}, kv_blocks=8)
    assert precise_prefix(ctx).endpoint.endpoint_id == "a"
    assert precise_prefix(ctx).reason == "precise_miss"


def test_a_long_run_outweighs_load_and_kv_usage() -> None:
    # b: 1 x 1.0 - 1 x (10 - 5)/8 - 1 x 0.25 = 0.125 against a: 0 (the least loaded).
    ctx = RouteContext(
        (view("a", load=5), view("b", load=10, kv=0.25)), kv_runs={"b": 8}, kv_blocks=8
    )
    assert precise_prefix(ctx).endpoint.endpoint_id == "b"


def test_a_whole_prompt_hit_is_worth_balance_abs_requests_of_queue() -> None:
    def chosen(holder_load: int) -> str:
        views = (view("a"), view("b", load=holder_load))
        ctx = RouteContext(views, kv_runs={"b": 8}, kv_blocks=8, tuning=Tuning(balance_abs=8))
        return precise_prefix(ctx).endpoint.endpoint_id

    assert chosen(7) == "b"  # 1 - 7/8 > 0
    assert chosen(9) == "a"  # 1 - 9/8 < 0


def test_weights_come_from_the_tuning() -> None:
    cautious = Tuning(prefix_weight=0.25, queue_weight=1.0, kv_weight=1.0)
    ctx = RouteContext(
        (view("a", load=5), view("b", load=10)), kv_runs={"b": 8}, kv_blocks=8, tuning=cautious
    )
    assert precise_prefix(ctx).endpoint.endpoint_id == "a"  # b: 0.25 - 5/8 < a: 0


def test_ties_rotate_with_the_sequence() -> None:
    runs = {"a": 1, "b": 1}
    chosen = {
        precise_prefix(RouteContext((view("a"), view("b")), sequence=s, kv_runs=runs)).endpoint.url
        for s in range(4)
    }
    assert chosen == {"http://a", "http://b"}


def test_a_prefix_no_engine_holds_follows_the_routers_recent_decisions() -> None:
    ctx = RouteContext(
        (view("a"), view("b")), prefix_endpoint="b", prefix_depth=4, prefix_blocks=4, kv_runs={}
    )
    decision = precise_prefix(ctx)
    assert (decision.endpoint.endpoint_id, decision.reason) == ("b", "cold_prefix_hit")


def test_without_an_event_index_the_approximate_policy_decides() -> None:
    ctx = RouteContext((view("a"), view("b")), prefix_endpoint="b", prefix_depth=4, prefix_blocks=4)
    decision = precise_prefix(ctx)
    assert (decision.endpoint.endpoint_id, decision.reason) == ("b", "approx_prefix_hit")


def test_tuning_from_the_topology() -> None:
    assert tuning_from_spec(RouterSpec()) == Tuning()
    spec = RouterSpec(precise_prefix=PrecisePrefixSpec(prefix=3.0, queue=0.5, kv=0.0))
    tuning = tuning_from_spec(spec)
    assert (tuning.prefix_weight, tuning.queue_weight, tuning.kv_weight) == (3.0, 0.5, 0.0)
    assert "precise_prefix" not in RouterSpec().model_dump()  # unset: renders as before


def test_lookup_hashes_the_prompt_as_the_engine_does() -> None:
    ids = list(range(100))
    keys = kv_hash.block_keys(ids)
    index = KvIndex()
    index.apply("a", EventBatch(0.0, (BlockStored(tuple(keys[:3]), None, (), 16),)))
    lookup = PreciseLookup(index, lambda body, chat: ids)
    match = lookup.match({}, True)
    assert match is not None and (dict(match.runs), match.blocks) == ({"a": 3}, 6)
    assert PreciseLookup(index, None).match({}, True) is None  # no tokenizer: no answer
    assert PreciseLookup(index, lambda body, chat: None).match({}, True) is None


def test_a_cold_prefix_the_approximate_index_sent_to_an_evicting_engine_goes_elsewhere() -> None:
    views = (view("a", load=1), view("b", load=3), view("c", load=2))
    ctx = RouteContext(views, prefix_endpoint="b", prefix_depth=8, prefix_blocks=8, kv_runs={},
                       kv_blocks=8, kv_evicted=frozenset({"b"}))  # fmt: skip
    decision = precise_prefix(ctx)
    assert (decision.endpoint.endpoint_id, decision.reason) == ("a", "cold_evicted")
    # Without an eviction on record the routers' own memory keeps a new prefix together.
    fresh = RouteContext(views, prefix_endpoint="b", prefix_depth=8, prefix_blocks=8,
                         kv_runs={}, kv_blocks=8)  # fmt: skip
    assert precise_prefix(fresh).reason == "cold_prefix_hit"
    assert precise_prefix(fresh).endpoint.endpoint_id == "b"
