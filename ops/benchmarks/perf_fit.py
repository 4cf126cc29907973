"""Run the grid search of `ops.calibration.fit` and print where it ends up.

    python -m ops.benchmarks.perf_fit

Prints the ten best points, the committed `FITTED` point and the best point with the
alternatives the constants' comments say were rejected, so a change of `FITTED` can be
justified by rerunning it. This is an in-sample fit: `ops.benchmarks.perf_calibration` reports
how it carries to sources it did not see.
"""

from __future__ import annotations

import math
import sys
import time

from controlplane.capacity.perf_constants import FITTED
from ops.calibration.fit import constants_at, points, score
from ops.calibration.perf_estimate import decode_cases


def main(argv: list[str]) -> int:
    started = time.monotonic()
    ranked = sorted(((score(constants_at(p)), p) for p in points()), key=lambda sp: sp[0])
    print(f"grid of {len(ranked)} points over {len(decode_cases())} decode cases"
          f" in {time.monotonic() - started:.0f} s")  # fmt: skip
    for (worst, sumsq), point in ranked[:10]:
        print(f"max |err| {math.expm1(worst):6.1%}  sum sq {sumsq:.4f}  {point}")
    worst, sumsq = score(FITTED)
    print(f"FITTED:  max |err| {math.expm1(worst):6.1%}  sum sq {sumsq:.4f}")
    for field, value in (("moe_tile_tokens", 64), ("per_sequence_s", 10e-6)):
        (worst, sumsq), point = next(sp for sp in ranked if sp[1][field] == value)
        print(f"best with {field}={value}: max |err| {math.expm1(worst):.1%}  sum sq {sumsq:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
