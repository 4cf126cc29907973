"""Closed-loop steady state of one replica: what `vllm bench serve --max-concurrency C` sees.

C clients each send a prompt of `isl` tokens and stream `osl` tokens (ignore_eos), then send
the next. In steady state the engine decodes about C sequences per step, and every step
also prefills the prompts of the requests that finished meanwhile (chunked prefill mixes
them into decode steps, as vLLM V1 and SGLang do): C x tokens_per_step / osl new prompts per
step. So, with `step = decode_step(C, C x (isl + osl / 2))`:

- TPOT = (step + C x a / osl x prefill(isl)) / a, a = tokens per step (MTP acceptance);
- TTFT = the rest of the step under way (half a step on average) + one step carrying the
  new prompt's prefill;
- output tokens/s = C x osl / (TTFT + (osl - 1) x TPOT), as the benchmark clients compute it.

Completions are assumed spread out in time (real traffic, or a closed loop whose lengths
vary); a closed loop of equal lengths that starts all at once can stay in lock-step, and
then its prefills land in TTFT rather than in TPOT.

A prefill is charged as a forward of its own added to the step (`prefill_seconds`, with its
own layer floors and weight reads), as SGLang runs by default (prefill and decode batches
alternate). vLLM V1 and TensorRT-LLM fuse both into one forward, which this over-charges by
about one layer-floor chain and one weight read per prefilled prompt; the fitted constants
absorb that (the simulator's scheduler charges steps the same way, so both agree).

Saturated runs (every prompt sent at once) are not a steady state: they are compared on
throughput only, by the calibration benchmark replaying them against the simulator.
"""

from __future__ import annotations

from dataclasses import dataclass

from controlplane.capacity.performance import PerformanceModel


@dataclass(frozen=True)
class SteadyState:
    tpot_s: float
    ttft_s: float
    output_tokens_per_s: float


def steady_state(model: PerformanceModel, concurrency: int, isl: int, osl: int) -> SteadyState:
    """The closed-loop steady state at `concurrency` clients (see the module docstring)."""
    if concurrency <= 0 or osl <= 0:
        raise ValueError("concurrency and osl must be positive")
    per_step = model.tokens_per_step
    context = concurrency * (isl + osl / 2)
    decode = model.decode_step_seconds(concurrency, round(context))
    prefill = model.prefill_seconds(isl)
    prompts_per_step = min(concurrency * per_step / osl, float(concurrency))
    step = decode + prompts_per_step * prefill
    tpot = step / per_step
    # Alone, a request finds the engine idle; with others it waits out half a step and then
    # shares its prefill step with their decode.
    ttft = prefill if concurrency == 1 else step / 2 + prefill + decode
    output = concurrency * osl / (ttft + (osl - 1) * tpot)
    return SteadyState(tpot_s=tpot, ttft_s=ttft, output_tokens_per_s=output)
