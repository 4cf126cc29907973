"""`EngineProfile`: everything glmctl knows about one engine, in one registered object.

Other modules ask the profile (`registry.profile_for(kind)`) instead of branching on the
engine kind; `tests/unit/packaging/test_import_graph.py` checks that no module outside
`controlplane/engines/` compares one. Adding an engine, or an engine version, is adding
(or changing) one profile in `registry.py` and the adapter it names.

What a profile owns:
- launch flags: `build`, the adapter's pure command builder (`sglang.py`, `vllm.py`, ...),
  and `server_module`, whose argument parser checks those commands (tests/engines);
- its venv recipe (`recipes.py`; None: it runs in glmctl's environment or its image);
- its load signals: `metrics` names the router's parser for its `/metrics`
  (router/engine_metrics.py), `metrics_long_poll` says that reading drains them;
- its capacity rule: `memory_rule`, the capacity module's rule object (capacity sits below
  engines/ and looks the same object up by `Layout.engine`; a test checks they agree);
- its timing rule: `timing_rule`, how it schedules prefill and MTP for the performance
  model (capacity/timing_rules.py, looked up the same way);
- its spec defaults and checks: `spec_rules` (spec/engine_checks.py, found the same way);
- the checkpoint formats it loads: `format_rule` (catalog/formats.py, found by name);
- its prefill/decode disaggregation: `pd_rule` (spec/pd_engines.py, found by name);
- its KV-event block hashes: `kv_hash_scheme`, the router/kv_hash.py scheme that
  reproduces them for `precise_prefix` ("" when none does: the policy falls back);
- its shutdown behaviour (`Shutdown`) and its versions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from controlplane.capacity.engine_rules import MemoryRule
from controlplane.capacity.timing_rules import TimingRule
from controlplane.catalog.formats import FormatRule
from controlplane.engines.base import CommandBuilder
from controlplane.local.venv import VenvRecipe
from controlplane.spec.engine_checks import SpecRules
from controlplane.spec.models import EngineKind
from controlplane.spec.pd_engines import PdRule

if TYPE_CHECKING:
    from controlplane.spec import Topology


@dataclass(frozen=True)
class Shutdown:
    """What the engine does with in-flight requests when it gets SIGTERM."""

    drains_itself: bool  # finishes in-flight requests before exiting
    bound_flag: str = ""  # the flag that bounds that drain ("": no bound of its own)
    note: str = ""  # where the behaviour is documented


@dataclass(frozen=True)
class EngineProfile:
    """One engine (or the simulator): see the module docstring for what each field owns."""

    kind: EngineKind
    label: str  # for people: "SGLang", "vLLM", ...
    target_version: str  # the version the command builder and parser checks target
    versions: tuple[str, ...]  # versions the builder supports (target first)
    build: CommandBuilder
    shutdown: Shutdown
    spec_rules: SpecRules
    format_rule: FormatRule  # the checkpoint formats it loads and its `--quantization` names
    server_module: str = ""  # `python -m` module serving the API ("": none / not Python)
    venv: Callable[[str], VenvRecipe] | None = None  # version -> recipe
    memory_rule: MemoryRule | None = None  # None: sized by the rule of the engine it mimics
    pd_rule: PdRule | None = None  # None: PD follows the rule of the engine it mimics
    timing_rule: TimingRule | None = None  # None: timed by the rule of the engine it mimics
    # The router's name for the metric set `/metrics` serves (router/engine_metrics.py
    # FLAVORS); None: the simulator's, which serves the flavour it mimics.
    metrics: str | None = None
    metrics_long_poll: bool = False  # reading `/metrics` drains it and may wait (trtllm-serve)
    # What Prometheus scrapes instead of `/metrics` (None: `/metrics`).
    prometheus_path: str | None = None
    # Metric names when planned: those of `simulation.flavor` rather than its own (the
    # simulator; TensorRT-LLM, whose replicas the planner may simulate in that flavour).
    planned_flavor_is_simulated: bool = False
    always_simulated: bool = False  # runs as the simulator whatever the inventory holds
    # The engine's official container image ({version} without a leading `v`): the base
    # of glmctl's engine image (docker/engine.Dockerfile, render/k8s/images.py).
    official_image: str = ""
    # The router/kv_hash.py scheme of its KV events' block hashes ("": none reproduces them;
    # the simulator publishes the scheme of the flavour it mimics).
    kv_hash_scheme: str = ""

    @property
    def name(self) -> str:
        return self.kind.value

    def planned_flavor(self, topology: Topology, default: EngineKind) -> str:
        """The API and metric names a planned replica of `topology` serves."""
        if self.planned_flavor_is_simulated:
            return (topology.spec.simulation.flavor or default).value
        return self.kind.value
