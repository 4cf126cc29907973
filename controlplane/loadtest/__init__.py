"""Load tests for GLM-4.5 deployments: workloads, SSE timing, statistics, verdicts, plots.

The pipeline of one load test, each step its own module:

    workloads (request bodies, pure) -> Locust users send them (locust_users.py)
    -> SSE timing per request (sse.py, pure) -> raw samples (JSON lines)
    -> statistics from the raw samples (stats.py, pure) -> SLO verdict (verdict.py, pure)
    -> cross-check against the engines' own accounting (crosscheck.py) -> plots (plots.py)

`runner.py` starts Locust headless and scrapes the engines' metrics during the run;
`sweep.py` runs candidate layouts on the simulated engine and ranks them. Locust and
matplotlib come with the `loadtest` extra and are imported only where they are used.
"""

INSTALL_HINT = "pip install 'glmctl[loadtest]'"
