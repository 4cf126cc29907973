"""Observe: the `observe` stage of the pipeline, as a library the backends and CLI call.

catalog.py (every metric, the one source) -> rules.py + alerts.py (Prometheus recording and
alert rules) -> dashboards.py (Grafana, as code) -> grafana.py (push, provisioning);
prometheus.py (config, file-SD targets, rule files, the process) and top.py (frames of
`glmctl top`). It imports only spec, errors and its own modules: backends/ray/monitor.py
feeds it the live registry, and the CLI (observe_cmds.py) renders and pushes.
"""
