"""Simulated engine: an OpenAI-compatible stand-in for SGLang, vLLM or TensorRT-LLM.

It answers like the engine it mimics (API, SSE framing, errors, `/metrics` names; for
TensorRT-LLM the JSON iteration stats of trtllm-serve's `/metrics`) and runs
continuous batching timed by `controlplane.capacity.performance` for the topology's model,
precision, GPUs and parallelism, with the topology's KV budget, prefix cache and MTP.

Interfaces:
- CLI: `glmctl sim serve FILE --port P [--flavor sglang|vllm|trtllm] [--time-scale X]
  [--seed S]`.
- Subprocess (what the Ray engine group starts):
  `python -m controlplane.engines.sim (--topology FILE | --spec-json JSON) --host 127.0.0.1
  --port P [--flavor sglang|vllm|trtllm] [--time-scale X] [--seed S] [--served-model-name NAME]
  [--kv-tokens N] [--max-num-seqs N] [--kv-events-config JSON] [--pd-role prefill|decode
  --pd-link-gbps G --pd-timeout S]`, where JSON is
  `topo.spec.model_dump_json(by_alias=True)`; `--kv-events-config` publishes KV events in
  vLLM's wire format (`kv_events.py`); `--pd-role` makes it one replica of a
  prefill/decode-disaggregated pool (`pd.py`, `pd_serve.py`).
  Exits 2 with a one-line message on a user error; SIGTERM stops it.
- Python: `SimServer.start(topo, port=None, flavor=None, time_scale=1.0, seed=0,
  kv_tokens=None, max_num_seqs=None, served_model_name=None) -> SimServer` (a subprocess;
  `.url`, `.port`, `.process`, `.stop()` (idempotent; SIGTERM, 2 s grace), context
  manager), or in-process `serve(build_app(topo, SimOptions(...)), host, port)`.
- HTTP: `/v1/models`, `/v1/chat/completions`, `/v1/completions`, `/health`, `/metrics`,
  `/version`, SGLang's `/get_model_info` and `/get_server_info`, and `/sim/stats` (step lag).

Behaviour rules (output lengths, thinking, tool calls, seeds): `requests.py`. Batching and
timing: `scheduler.py` (KV for a request's whole planned output is reserved at admission,
so the simulator queues where a real engine might admit and later preempt). Tokens are
whitespace-separated words (`tokens.py`), or those of the topology's
`simulation.tokenizer` file (`tokenizer.py`, needs the `tokenizers` package). Times in
`/metrics` are simulated seconds (wall x time_scale); `usage` counts agree with
`*_tokens_total`.
"""

from controlplane.engines.sim.server import SimOptions, SimServer, build_app, serve

__all__ = ["SimOptions", "SimServer", "build_app", "serve"]
