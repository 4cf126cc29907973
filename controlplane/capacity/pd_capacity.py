"""Capacity of a PD topology: both pools by the engines' own rules, what PD adds, the transfer.

`pd_capacity(pools, prompt_tokens)` is pure. Each pool is sized by `capacity_report` (the
rules a colocated replica is sized by); PD adds, from the engines' source (SGLang 0.5.23,
vLLM 0.32.0):

- SGLang decode admits a transferred request only when its KV plus
  `--num-reserved-decode-tokens` (512) more are free (disaggregation/decode.py
  `_prealloc_required_tokens`), and keeps extra request slots for requests still in
  transfer, the prealloc queue: `--disaggregation-decode-extra-slots`, default twice the
  per-worker running batch when that is 32 or fewer (arg_groups/pd_disaggregation_hook.py).
  Their KV is held while the transfer runs, so a full prealloc queue needs that much more.
- The transfer buffers are the KV pools themselves: mooncake and NIXL register the KV
  cache for RDMA in place, and vLLM's `kv_buffer_device` defaults to the GPU
  (config/kv_transfer.py), so no GPU memory is set aside beyond the pools.
- KV bytes per request: layers (plus the MTP layer when both pools draft) x KV values per
  token and layer (2 x KV heads x head dim; MLA: latent + rope) x bytes per value x prompt
  tokens; sent in parallel by the prefill ranks holding distinct KV heads, each over its
  own link (one NIC per GPU on HGX nodes), at the declared link speed: a lower bound.
"""

from __future__ import annotations

from pydantic import BaseModel

from controlplane.capacity.pd_checks import pd_findings, pd_rule_of
from controlplane.capacity.preflight import Finding, Severity
from controlplane.capacity.report import CapacityReport, capacity_report
from controlplane.catalog import BYTES_PER_VALUE
from controlplane.catalog.architecture import AttentionKind
from controlplane.spec.disaggregation import NetworkSpec
from controlplane.spec.pd_pools import PdPools
from controlplane.spec.topology import Topology

__all__ = [
    "PdCapacity",
    "PoolCapacity",
    "TransferFigures",
    "pd_capacity",
    "transfer_between",
    "transfer_figures",
]

REQ_TO_TOKEN_BYTES = 4  # SGLang's req_to_token pool: one int32 per token slot
EXTRA_SLOTS_BATCH_LIMIT = 32  # pd_disaggregation_hook.py: small batches get 2x extra slots


class PoolCapacity(BaseModel):
    """One pool: its colocated capacity report plus what PD adds to it."""

    role: str
    replicas: int
    report: CapacityReport
    reserved_decode_tokens: int  # SGLang decode: reserve per admitted request
    prealloc_slots: int  # SGLang decode: extra slots for requests in transfer
    prealloc_slot_bytes: int  # their req_to_token rows, per GPU
    kv_tokens_with_prealloc: int  # KV the pool needs with the prealloc queue full
    fits: bool


class TransferFigures(BaseModel):
    """The KV a request moves from prefill to decode, and how long at the declared link."""

    backend: str
    transport: str
    link_gbps: float
    parallel_links: int
    kv_bytes_per_token: int
    prompt_tokens: int
    bytes_per_request: int
    seconds_per_request: float


class PdCapacity(BaseModel):
    """Both pools, the transfer, the PD findings and a verdict."""

    name: str
    engine: str
    pools: list[PoolCapacity]
    transfer: TransferFigures
    findings: list[dict[str, str]]
    fits: bool
    verdict: str


def transfer_figures(pools: PdPools, prompt_tokens: int) -> TransferFigures:
    """KV bytes one request of `prompt_tokens` moves, and the time at the declared link."""
    return transfer_between(
        pools.prefill, pools.decode, pools.spec.network, pools.backend, prompt_tokens
    )


def transfer_between(
    prefill: Topology, decode: Topology, network: NetworkSpec, backend: str, prompt_tokens: int
) -> TransferFigures:
    """The transfer of one request's KV from a `prefill` replica to a `decode` replica."""
    arch = prefill.arch
    layers = arch.num_layers
    if prefill.speculative is not None and decode.speculative is not None:
        layers += arch.num_nextn_layers  # the draft layer's KV travels too
    values = arch.kv_values_per_token_per_layer(1)
    per_token = int(layers * values * BYTES_PER_VALUE[prefill.kv_cache_dtype])
    if arch.attention is AttentionKind.MLA:
        links = 1  # the latent is replicated on every rank: one rank sends it
    else:
        links = min(prefill.tp, decode.tp, arch.num_kv_heads)
    total = per_token * prompt_tokens
    return TransferFigures(
        backend=backend,
        transport=network.transport.value,
        link_gbps=network.gbps,
        parallel_links=links,
        kv_bytes_per_token=per_token,
        prompt_tokens=prompt_tokens,
        bytes_per_request=total,
        seconds_per_request=total / (links * network.gbps * 1e9 / 8),
    )


def pd_capacity(pools: PdPools, prompt_tokens: int | None = None) -> PdCapacity:
    """Size both pools and the transfer; `prompt_tokens` defaults to the context length."""
    findings = pd_findings(pools)
    sized = [_pool("prefill", pools.prefill, pools), _pool("decode", pools.decode, pools)]
    for pool in sized:
        findings.extend(_prealloc_finding(pool))
    prompt = prompt_tokens or pools.prefill.context_length
    errors = [f for f in findings if f.severity is Severity.ERROR]
    fits = all(pool.fits for pool in sized) and not errors
    return PdCapacity(
        name=pools.topology.name,
        engine=pools.topology.engine.value,
        pools=sized,
        transfer=transfer_figures(pools, prompt),
        findings=[f.as_dict() for f in findings],
        fits=fits,
        verdict=_verdict(sized, errors),
    )


def _pool(role: str, topo: Topology, pools: PdPools) -> PoolCapacity:
    report = capacity_report(topo)
    rule = pd_rule_of(pools)
    reserved = rule.reserved_decode_tokens if role == "decode" else 0
    slots = _extra_slots(topo) if role == "decode" and rule.decode_extra_slots else 0
    needed = report.kv_tokens_required + reserved + slots * topo.context_length
    return PoolCapacity(
        role=role,
        replicas=topo.spec.replicas.min,
        report=report,
        reserved_decode_tokens=reserved,
        prealloc_slots=slots,
        prealloc_slot_bytes=slots * topo.context_length * REQ_TO_TOKEN_BYTES,
        kv_tokens_with_prealloc=needed,
        fits=report.fits and report.kv_tokens_required + reserved <= report.kv_token_capacity,
    )


def _extra_slots(topo: Topology) -> int:
    """SGLang's default `--disaggregation-decode-extra-slots` for this decode replica."""
    ranks = topo.dp  # attention-DP (or DP) ranks each run a scheduler
    per_worker = max(1, topo.spec.max_num_seqs // ranks)
    return 2 * per_worker * ranks if per_worker <= EXTRA_SLOTS_BATCH_LIMIT else 0


def _prealloc_finding(pool: PoolCapacity) -> list[Finding]:
    capacity = pool.report.kv_token_capacity
    if pool.prealloc_slots == 0 or pool.kv_tokens_with_prealloc <= capacity:
        return []
    return [
        Finding(
            Severity.WARNING,
            "pd-prealloc",
            f"the decode pool holds {capacity} KV tokens: {pool.report.max_num_seqs} running"
            f" sequences of {pool.report.context_length} fit, but not also the"
            f" {pool.prealloc_slots} requests SGLang lets wait in transfer (prealloc queue;"
            f" {pool.kv_tokens_with_prealloc} tokens): transfers queue and TTFT grows at peak.",
            "lower `max_num_seqs` or `context_length` of the decode pool, or give it more GPUs.",
        )
    ]


def _verdict(pools: list[PoolCapacity], errors: list[Finding]) -> str:
    short = [p.role for p in pools if not p.fits]
    if short:
        return f"Does not fit: the {' and '.join(short)} pool cannot hold its sequences."
    if errors:
        codes = ", ".join(sorted({f.code for f in errors}))
        return f"Refused: the engines break on this prefill/decode pair ({codes})."
    layout = " + ".join(
        f"{p.replicas} x {p.role} ({p.report.gpus} x {p.report.gpu})" for p in pools
    )
    gpus = sum(p.replicas * p.report.gpus for p in pools)
    return f"Fits: {layout}, {gpus} GPUs; deployable by hand (glmctl cannot deploy PD yet)."
