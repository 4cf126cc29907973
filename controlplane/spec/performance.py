"""The `performance:` section of a topology: corrections to the performance model measured
on the deployment's own GPUs (`glmctl calibrate`, capacity/calibrate.py, fits and prints it).

It changes estimates (capacity, sweep, PD sizing, drain timeouts, the simulator's step
times), not what an engine runs; a topology without it serialises as before it existed
(TopologySpec drops it when unset).
"""

from __future__ import annotations

from pydantic import Field

from controlplane.spec.fields import StrictModel

# Either scale's range: a correction beyond it means the runs are not the topology's.
SCALE_BOUNDS = (0.05, 20.0)


class PerformanceSpec(StrictModel):
    """Corrections to the performance model from runs measured on this deployment's own
    GPUs and engine (`glmctl calibrate` fits them and prints this section)."""

    decode_scale: float = Field(
        1.0,
        ge=SCALE_BOUNDS[0],
        le=SCALE_BOUNDS[1],
        description="Measured decode step over the model's (1: the model as fitted).",
        examples=[1.14],
    )
    prefill_scale: float = Field(
        1.0,
        ge=SCALE_BOUNDS[0],
        le=SCALE_BOUNDS[1],
        description="Measured prefill pass over the model's (1: the model as fitted).",
        examples=[1.3],
    )
    source: str = Field(
        "",
        description="Where the scales come from (the benchmark runs `glmctl calibrate` read).",
        examples=["glmctl calibrate: 3 runs of vllm bench serve, 2026-12-06"],
    )
