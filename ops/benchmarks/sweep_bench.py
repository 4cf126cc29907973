"""Benchmark: `glmctl sweep` over 8 layouts of GLM-4.5-FP8 on H200 (4 splits x MTP on / off).

Run: `python -m ops.benchmarks.sweep_bench`. Prints the sweep's wall time against the
5-minute target, the model time it simulated (rate steps x step length) and the ratio
of the two: how much faster than real time the simulated engine answered the question
(NVIDIA's AIConfigurator spends 2-4 hours of GPU profiling on the same question).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 300.0
ARGS = [
    "sweep",
    "--model",
    "glm-4.5",
    "--precision",
    "fp8",
    "--gpu",
    "H200",
    "--gpus",
    "4,8",
    "--limit",
    "4",
    "--mtp",
    "on,off",
    "--time-scale",
    "10",
    "--step",
    "30s",
    "--top",
    "2",
]


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="sweep-bench-") as tmp:
        out = Path(tmp) / "sweep"
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-c", "from controlplane.cli.main import run; run()", *ARGS,
             "--out", str(out)], capture_output=True, text=True,
        )  # fmt: skip
        wall = time.monotonic() - started
        print(done.stdout[-6000:])
        if done.returncode != 0:
            print(done.stderr[-3000:], file=sys.stderr)
            return 1
        result = json.loads((out / "sweep.json").read_text())
    ranking = result["ranking"]
    steps = sum(len(row["steps"]) for row in ranking)
    model_s = steps * result["step_s"]
    print(f"layouts: {len(ranking)}, rate steps: {steps}, model time simulated: {model_s:.0f} s")
    print(f"wall time: {wall:.1f} s (target < {TARGET_S:.0f} s): {wall / TARGET_S:.2f} x target")
    print(f"simulated / wall: {model_s / wall:.1f} x real time")
    print(f"winner: {ranking[0]['layout']}")
    return 0 if wall < TARGET_S and len(ranking) >= 6 else 1


if __name__ == "__main__":
    sys.exit(main())
