"""GLM-4.5 load test for Locust: `locust -f ops/loadtest/locustfile.py --headless ...`.

The users, SSE timing and options live in `controlplane.loadtest` (see its locust_users.py
for every `--glm-*` option); `glmctl loadtest` runs this file and judges the result.
Example against a running deployment's router:

    locust -f ops/loadtest/locustfile.py --headless -u 8 -r 8 -t 30s \
        --host http://127.0.0.1:8000 --glm-workload mix --glm-samples samples.jsonl
"""

from controlplane.loadtest.locust_users import GlmUser

__all__ = ["GlmUser"]
