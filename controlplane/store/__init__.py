"""Where glmctl keeps shared state: Redis key names and the one Redis client factory.

A low room (it imports only `errors` and `local.secrets`): the router, the Ray backend,
the autoscaler, the observe agent and the Kubernetes renderer all read it, so none of them
needs another's module (the renderer no longer imports the Ray Serve runtime for a key
name). See `controlplane.store.redis`.
"""
