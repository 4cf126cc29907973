"""Preflight of a PD topology: the prefill/decode combinations the engines refuse or break on.

`pd_findings(pools)` is pure and returns `Finding`s (error: the engine refuses the pair or
breaks on it; warning: it runs, with a known report against it). Which checks apply is the
engine's `PdRule` (spec/pd_engines.py: its backends per version, whether NIXL's TP rules or
the speculative hash apply, ...), never a comparison of engine kinds. Each message names
its source, pinned to the engine version glmctl targets (wheels from PyPI):

- SGLANG = SGLang 0.5.23, sglang/srt/...; VLLM = vLLM 0.32.0, vllm/...
- SGLang checks the KV dtype of the pair at the bootstrap (disaggregation/common/conn.py:
  "KV cache dtype mismatch ... Both servers must use the same --kv-cache-dtype value").
- vLLM's NIXL handshake compares a hash of the vLLM version, model, KV cache dtype and
  speculative config (distributed/kv_transfer/kv_connector/v1/nixl/metadata.py
  compute_nixl_compatibility_hash); TP sizes must divide one another
  (kv_connector/utils.py tp_ratio) and a prefill TP above both the decode TP and the KV
  heads (KV replicated on prefill) is refused for non-MLA models
  (kv_connector/v1/nixl/base_worker.py: "num_kv_heads > tp_size with P_TP > D_TP not
  supported"). Prefill TP above decode TP with unreplicated KV is supported in 0.32
  (kv_connector/v1/nixl/tp_mapping.py, "GQA dedup"); llm-d's guide
  (docs/operations/disaggregation/vllm.md) still calls it unsupported, so it is a warning.
"""

from __future__ import annotations

from controlplane.capacity.preflight import Finding, Severity
from controlplane.catalog.architecture import AttentionKind
from controlplane.spec.disaggregation import Transport
from controlplane.spec.pd_engines import PD_RULES, PdRule, checked_rule
from controlplane.spec.pd_pools import PdPools
from controlplane.spec.topology import Topology

__all__ = ["pd_findings"]

SGLANG_9266 = "sglang#9266"  # GLM-4.5-FP8 PD, tp8/ep8 with EAGLE, failed under load
SGLANG_9400 = "sglang#9400"  # GLM-4.5-FP8 PD: garbled output with a 2-node prefill
SGLANG_32527 = "sglang#32527"  # "in PD Disagg + Spec, we should also enable Spec in the Prefill"


def pd_findings(pools: PdPools) -> list[Finding]:
    """What the engines refuse, or are reported to break on, for this prefill/decode pair.

    An engine whose PD flags glmctl does not know gets that refusal alone: the other
    checks are the known engines' rules."""
    rule = pd_rule_of(pools)
    if not rule.supported:
        return _engine(rule)
    checks = (
        _backend, _network, _shared_storage, _same_serving, _speculative, _tensor, _glm_reports,
    )  # fmt: skip
    findings: list[Finding] = []
    for check in checks:
        findings.extend(check(pools, rule))
    return findings


def pd_rule_of(pools: PdPools) -> PdRule:
    """The engine's PD rule (spec/pd_engines.py): the simulator follows the engine it mimics."""
    flavor = pools.topology.spec.simulation.flavor
    return checked_rule(pools.topology.engine.value, flavor.value if flavor else None)


def _error(code: str, message: str, fix: str) -> Finding:
    return Finding(Severity.ERROR, code, message, fix)


def _warning(code: str, message: str, fix: str) -> Finding:
    return Finding(Severity.WARNING, code, message, fix)


def _engine(rule: PdRule) -> list[Finding]:
    known = [r for r in PD_RULES if r.supported]
    return [
        _error(
            "pd-engine",
            f"glmctl knows the PD flags of {' and '.join(r.label for r in known)} only, not"
            f" {rule.label}'s disaggregated serving.",
            f"set {' or '.join(f'`engine: {r.engine}`' for r in known)}, or remove"
            " `disaggregation:`.",
        )
    ]


def _backend(pools: PdPools, rule: PdRule) -> list[Finding]:
    table = rule.backends
    version = pools.prefill.spec.engine.version or ""
    offered = table.get(version)
    name = rule.label
    if offered is None:
        known = ", ".join(table)
        return [
            _warning(
                "pd-backend-unchecked",
                f"glmctl has no list of the transfer backends of {name} {version} (it knows"
                f" {known}); `{pools.backend}` is not checked.",
                f"use {name} {known}, or check the backend against that version's source.",
            )
        ]
    if pools.backend in offered:
        return []
    return [
        _error(
            "pd-backend",
            f"{name} {version} has no KV transfer backend `{pools.backend}`"
            f" ({rule.backends_source} offers {', '.join(offered)}).",
            f"set `disaggregation.transfer.backend` to one of {', '.join(offered)}.",
        )
    ]


def _network(pools: PdPools, _rule: PdRule) -> list[Finding]:
    network = pools.spec.network
    if network.transport is Transport.TCP and pools.backend == "mooncake":
        return [
            _error(
                "pd-network",
                "the mooncake backend moves KV over RDMA, but `network.transport` is tcp"
                " (SGLang 0.5.23 pd_disaggregation_hook.py: mooncake_tcp forces the TCP"
                " transport).",
                "set `transfer.backend: mooncake_tcp`, or `network.transport: rdma`.",
            )
        ]
    if network.transport is Transport.TCP and network.ib_devices:
        return [
            _error(
                "pd-network",
                "`network.ib_devices` names RDMA devices, but `network.transport` is tcp.",
                "remove `ib_devices`, or set `network.transport: rdma`.",
            )
        ]
    return []


def _shared_storage(pools: PdPools, rule: PdRule) -> list[Finding]:
    """A shared folder only for the connectors that read one; on GPUs, say what it costs."""
    shared = pools.backend in rule.shared_storage_backends
    if pools.spec.transfer.shared_storage_path is not None and not shared:
        return [
            _error(
                "pd-shared-storage",
                f"`transfer.shared_storage_path` is read by {rule.label}'s"
                f" {', '.join(rule.shared_storage_backends) or 'no'} connector only, not by"
                f" `{pools.backend}`.",
                "remove `shared_storage_path`, or set `transfer.backend: ExampleConnector`.",
            )
        ]
    if shared and pools.topology.spec.gpus.type.upper() != "CPU":
        return [
            _warning(
                "pd-shared-storage",
                f"{pools.backend} is vLLM's disk-based example connector (for tests and CPU"
                " runs): it writes every prompt's KV to the shared folder synchronously and"
                " never deletes it, and both pools must see that folder (one host).",
                "use `transfer.backend: NixlConnector` (the default) for GPU serving.",
            )
        ]
    return []


def _same_serving(pools: PdPools, rule: PdRule) -> list[Finding]:
    """Context length, KV dtype and engine version must agree between the pools."""
    p, d = pools.prefill, pools.decode
    findings = []
    if p.context_length != d.context_length:
        findings.append(
            _error(
                "pd-context",
                f"the prefill pool serves {p.context_length} tokens, the decode pool"
                f" {d.context_length}: a request the longer side admits is never admitted by"
                " the other, and SGLang's decode then waits for it until"
                " SGLANG_DISAGGREGATION_WAITING_TIMEOUT (300 s).",
                "give both pools the same `context_length` (or set it once at the top).",
            )
        )
    if p.kv_cache_dtype != d.kv_cache_dtype:
        findings.append(
            _error(
                "pd-kv-dtype",
                f"the prefill pool stores KV as {p.kv_cache_dtype.value}, the decode pool as"
                f" {d.kv_cache_dtype.value}: {rule.kv_dtype_source}.",
                "give both pools the same `kv_cache_dtype` (or set it once at the top).",
            )
        )
    if p.spec.engine.version != d.spec.engine.version:
        findings.append(
            _error(
                "pd-version",
                f"the prefill pool runs {rule.engine} {p.spec.engine.version}, the decode"
                f" pool {d.spec.engine.version}: vLLM's NIXL handshake hashes the version"
                " (nixl/metadata.py) and SGLang's bootstrap protocol is not versioned.",
                "run one engine version in both pools (set `engine.version` once at the top).",
            )
        )
    return findings


def _spec_key(topo: Topology) -> tuple[str, int | None, int | None, int | None] | None:
    spec = topo.speculative
    if spec is None or spec.algorithm is None:
        return None
    return (spec.algorithm.value, spec.num_steps, spec.eagle_topk, spec.num_draft_tokens)


def _speculative(pools: PdPools, rule: PdRule) -> list[Finding]:
    p, d = _spec_key(pools.prefill), _spec_key(pools.decode)
    if p == d:
        return []
    said = f"prefill {'off' if p is None else p[0]}, decode {'off' if d is None else d[0]}"
    fix = "give both pools the same `speculative` settings (or set them once at the top)."
    if rule.hashes_speculative:
        return [
            _error(
                "pd-speculative",
                f"the pools' speculative (MTP) settings differ ({said}): vLLM 0.32's NIXL"
                " compatibility hash includes the speculative config (nixl/metadata.py).",
                fix,
            )
        ]
    if p is not None and d is None:
        return [
            _error(
                "pd-speculative",
                f"the prefill pool sends the MTP draft layer's KV, which the decode pool has"
                f" no room for ({said}); SGLang 0.5.23 common/conn.py maps draft KV only"
                " from a prefill without it to a decode with it.",
                fix,
            )
        ]
    return [
        _warning(
            "pd-speculative",
            f"the pools' speculative (MTP) settings differ ({said}); SGLang's maintainers ask"
            f" for speculative decoding on the prefill pool too ({SGLANG_32527}), or the"
            " draft layer starts without the prompt's KV.",
            fix,
        )
    ]


def _tensor(pools: PdPools, rule: PdRule) -> list[Finding]:
    p, d = pools.prefill, pools.decode
    arch = pools.topology.arch
    if p.tp == d.tp or arch.attention is AttentionKind.MLA:
        return []
    if rule.tp_crash_report:
        return [
            _warning(
                "pd-tensor",
                f"prefill TP {p.tp} and decode TP {d.tp} differ on {arch.model_type}, a"
                f" grouped-query (non-MLA) model: reported to crash under load with mooncake"
                f" ({rule.tp_crash_report}).",
                f"use the same `parallelism.tensor` in both pools (e.g. {d.tp}); scale the"
                " prefill pool with replicas instead.",
            )
        ]
    return _nixl_tensor(pools) if rule.nixl_tp_rules and pools.backend.startswith("Nixl") else []


def _nixl_tensor(pools: PdPools) -> list[Finding]:
    """vLLM 0.32's NIXL rules for prefill and decode TP on a grouped-query model."""
    p, d = pools.prefill, pools.decode
    arch = pools.topology.arch
    if max(p.tp, d.tp) % min(p.tp, d.tp):
        return [
            _error(
                "pd-tensor",
                f"prefill TP {p.tp} and decode TP {d.tp} do not divide one another: vLLM 0.32"
                " asserts it (kv_connector/utils.py tp_ratio).",
                f"use TPs where one divides the other, e.g. prefill {d.tp} and decode {d.tp}.",
            )
        ]
    if p.tp < d.tp:
        return []
    heads = arch.num_kv_heads
    if p.tp > heads:
        return [
            _error(
                "pd-tensor",
                f"prefill TP {p.tp} is larger than decode TP {d.tp} and than the {heads} KV"
                f" heads of {arch.model_type} (a grouped-query model, KV replicated on"
                " prefill): vLLM 0.32's NIXL connector refuses it for non-MLA models"
                " (nixl/base_worker.py).",
                f"give the prefill pool TP {d.tp} or less and more replicas instead.",
            )
        ]
    return [
        _warning(
            "pd-tensor",
            f"prefill TP {p.tp} is larger than decode TP {d.tp} on a grouped-query model:"
            " vLLM 0.32's NIXL reads each decode rank's heads from several prefill ranks"
            " (nixl/tp_mapping.py), but llm-d's vLLM PD guide calls it unsupported and"
            " older vLLM versions refuse it.",
            f"prefer prefill TP <= decode TP ({d.tp}); scale prefill with replicas.",
        )
    ]


def _glm_reports(pools: PdPools, rule: PdRule) -> list[Finding]:
    """Reports against GLM-4.5-FP8 PD on SGLang (both closed without a named fix)."""
    if not rule.glm45_reports or pools.topology.model.family != "glm-4.5":
        return []
    findings = []
    spec_on = pools.prefill.speculative is not None or pools.decode.speculative is not None
    if spec_on and max(pools.prefill.ep, pools.decode.ep) > 1:
        findings.append(
            _warning(
                SGLANG_9266,
                "GLM-4.5 PD with EAGLE and expert parallelism failed under high concurrency"
                f" ({SGLANG_9266}, tp8/ep8; closed without a fix named).",
                "load-test the pair at your peak concurrency before production, or turn"
                " speculative decoding off in both pools (`speculative: {algorithm: none}`).",
            )
        )
    if pools.prefill.nodes > 1:
        findings.append(
            _warning(
                SGLANG_9400,
                f"a prefill replica spans {pools.prefill.nodes} nodes: GLM-4.5-FP8 PD gave"
                f" garbled output with a two-node prefill where 1P1D was correct"
                f" ({SGLANG_9400}, SGLang 0.4.10; closed as inactive).",
                "keep each prefill replica on one node and add prefill replicas instead;"
                " check answers end to end before serving.",
            )
        )
    return findings
