"""Calibration data and fitting of the capacity and performance models (not shipped).

The shipped package keeps only the fitted constants with their provenance
(`controlplane/capacity/perf_constants.py`, `controlplane/capacity/constants.py`,
`controlplane/capacity/vllm_rules.py`); the published runs and logs they were read from, and
the code that compares and fits, live here and in `tests/data/`.
"""
