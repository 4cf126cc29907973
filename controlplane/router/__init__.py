"""The router: OpenAI-compatible proxy with shared state in Redis and pure routing policies.

Request path (per worker process, raw ASGI on the router's own httptools server, uvloop):
validate (orjson, 400) -> authorize (hashed API keys, 401) -> candidates (healthy endpoints
serving the model) -> at most one Redis round trip (prefix match, session binding,
rate-limit bucket; none for load-only policies without keys) -> who may be chosen
(`overflow.py`: local replicas first, overflow endpoints when they are saturated or down;
queue limit: 429 + Retry-After) -> pure policy -> forward the original body bytes over a
kept-alive pooled connection (`upstream.py`: asyncio Protocol + httptools, no aiohttp on
the request path) -> relay the SSE bytes as they arrive (zero-copy, from the upstream
protocol). Details: `state.py` (the
Redis design), `proxy.py` (retry and mid-stream failure contract), `upstream.py`,
`policies.py`.

Modules: `policies` (pure, registered by name), `prefix` (prompt block hashes, pure),
`engine_metrics` (vLLM / SGLang / TensorRT-LLM `/metrics` parsers, pure), `validation`
(pure), `scripts` (Lua and key layout), `state` (Redis adapter + local view), `collector`
(background refresh, health and load probes), `runtime` (what the request path and the
collector share: state, sessions, endpoint index, local health), `background` (spawned
tasks, logger), `upstream` (lean HTTP/1.1 client), `proxy`, `app` (ASGI over `runtime`;
imports `collector`, never the other way), `decisions` (the lookup before a policy, the
record after), `overflow` (pure), `external` (external OpenAI-compatible endpoints as
configured: key references, registry; no extras needed), `external_route` (the request
path to one: its URL, model name and own key), `metrics` (router's own), `http_server` and
`http_cycle` (the HTTP/1.1 server: head limits, framing, relay sink), `server`
(processes), `registry` (sync API), `config`.

Interfaces for others:
- Endpoints (sync, no event loop, idempotent; usable from a Ray actor):
  `registry.register_endpoint(redis_url, endpoint_id, url, model, group="", flavor="vllm",
  namespace="glmctl") -> EndpointInfo`, `registry.deregister_endpoint(redis_url,
  endpoint_id)`, `registry.list_endpoints(redis_url) -> list[EndpointInfo]`. `url` is the
  engine's base URL (`http://127.0.0.1:PORT`); `model` its served model name; `flavor`
  names what its `/metrics` holds (`vllm` | `sglang` | `trtllm`). Routers see changes
  within 0.1 s.
- External endpoints (a topology's `external:`): `--external JSON` (key references only)
  and `--overflow-at N`; keys are resolved at start (`external.resolve_key`), never stored.
- API keys: `registry.add_api_key(redis_url, key, name, rate_per_s=0, burst=0)`,
  `remove_api_key(...)`. No keys registered = no authentication.
- Processes: `python -m controlplane.router --redis-url URL --host 127.0.0.1 --port P
  --workers N --policy NAME [--max-queue N] [--session-header H] [--namespace NS]`
  (SIGTERM stops all workers); `glmctl router serve ...` (same options); Python:
  `server.RouterProcesses.start(redis_url, port=None, workers=1, policy=...) -> handle`
  with `.url`, `.stop()` (idempotent); `config.RouterConfig.from_spec(redis_url,
  topology.spec.router)` for a topology's settings.
- HTTP: `/v1/chat/completions`, `/v1/completions`, `/v1/models`, `/health`, `/metrics`.
  Request headers: `x-glmctl-policy: NAME` overrides the policy per request; the session
  header (default `x-session-id`, else the body's `user`) keys session affinity. Response
  header `x-glmctl-endpoint` names the endpoint that served.
"""
