"""The Ray backend: an embedded loopback cluster or `--address`; Serve apps for engine groups
and the router; apply (deploy.py, taking the Serve steps in serve_steps.py), status / scale /
delete (manage.py)."""
