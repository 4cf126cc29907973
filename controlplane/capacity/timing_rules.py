"""How each engine schedules a step, as far as the performance model needs to know.

One `TimingRule` per engine (`SGLANG_TIMING`, `VLLM_TIMING`, `TRTLLM_TIMING`); the engine's
profile (controlplane/engines/registry.py) names it, as it names its `MemoryRule`, and the
performance model asks `timing_rule(topology)` instead of branching on the engine (capacity
sits below engines/ and cannot import them). The constants the rules switch on live in
`perf_constants` (fitted or read from published runs); a rule only says which apply.

- `separate_prefill_pass`: prompt tokens run in a forward of their own that every running
  decode waits for. SGLang's default (`enable_mixed_chunk` False: sglang 0.5.23
  `arg_groups/fields/schedule.py`; the scheduler alternates extend and decode batches), whose
  extend forward is not graph-captured: `perf_constants.prefill_stall_s` is the fixed cost of
  such a pass. vLLM V1 schedules prefill chunks and decodes into one step (chunked prefill,
  piecewise CUDA graphs), TensorRT-LLM's in-flight batching runs the context phase inside
  the generation step: neither has a separate pass.
- `verify_bonus_token`: the MTP verify forward scores the drafted tokens plus the bonus
  position (vLLM: `num_speculative_tokens + 1` per sequence), or `speculative_num_draft_tokens`
  that already count it (SGLang EAGLE, where at most `num_draft_tokens - 1` drafts can be
  accepted).
- `draft_extend_pass`: after verifying, SGLang's EAGLE worker runs the draft model once more
  over the accepted tokens (the "draft extend"); vLLM's MTP proposer does not.
"""

from __future__ import annotations

from dataclasses import dataclass

from controlplane.spec.models import EngineKind
from controlplane.spec.topology import Topology


@dataclass(frozen=True)
class TimingRule:
    """What the performance model needs of one engine's scheduling (see module docstring)."""

    engine: EngineKind
    separate_prefill_pass: bool
    verify_bonus_token: bool
    draft_extend_pass: bool

    def verify_tokens(self, num_draft_tokens: int) -> int:
        """Tokens per sequence one verify forward scores."""
        return num_draft_tokens + (1 if self.verify_bonus_token else 0)

    def drafted_positions(self, num_steps: int, num_draft_tokens: int) -> int:
        """Draft positions one step can accept."""
        if self.verify_bonus_token:
            return num_steps
        return min(num_steps, num_draft_tokens - 1)

    def draft_passes(self, num_steps: int) -> int:
        """Draft-model forwards per step."""
        return num_steps + (1 if self.draft_extend_pass else 0)


SGLANG_TIMING = TimingRule(
    EngineKind.SGLANG, separate_prefill_pass=True, verify_bonus_token=False, draft_extend_pass=True
)
VLLM_TIMING = TimingRule(
    EngineKind.VLLM, separate_prefill_pass=False, verify_bonus_token=True, draft_extend_pass=False
)
# glmctl plans no TensorRT-LLM MTP; its in-flight batching has no separate prefill pass.
TRTLLM_TIMING = TimingRule(
    EngineKind.TRTLLM, separate_prefill_pass=False, verify_bonus_token=False, draft_extend_pass=True
)
# SGLang's rule first: it also times a simulated replica that names no flavour.
TIMING_RULES = (SGLANG_TIMING, VLLM_TIMING, TRTLLM_TIMING)
_BY_ENGINE = {rule.engine: rule for rule in TIMING_RULES}


def timing_rule(topo: Topology) -> TimingRule:
    """The rule timing `topo`: its engine's, else (the simulator has none) that of the engine
    it mimics, else SGLang's."""
    for engine in (topo.engine, topo.spec.simulation.flavor):
        if engine in _BY_ENGINE:
            return _BY_ENGINE[engine]
    return TIMING_RULES[0]
