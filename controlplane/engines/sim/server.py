"""Build a simulated engine from a topology, serve it, or run it as a managed subprocess."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING

from controlplane.engines.sim.app import EngineInfo, SimApp
from controlplane.engines.sim.requests import Limits
from controlplane.engines.sim.scheduler import Scheduler, SchedulerConfig, StepTiming
from controlplane.engines.sim.tokenizer import text_rules
from controlplane.engines.sim.tokens import BLOCK_TOKENS, word_stream
from controlplane.engines.simulator import sim_argv
from controlplane.errors import UserError
from controlplane.spec import EngineKind, Topology, parse_spec, resolve

if TYPE_CHECKING:
    from controlplane.engines.sim.kv_events import KvEventsConfig

# Default prefill chunk: vLLM's max_num_batched_tokens for online serving on large GPUs and
# SGLang's chunked_prefill_size on H100/H200-class GPUs are both 8192 tokens.
DEFAULT_CHUNK_TOKENS = 8192
SIM_VERSION = "0.1.0"


@dataclass(frozen=True)
class SimOptions:
    """Run-time knobs; None means "from the topology's `simulation` section"."""

    flavor: EngineKind | None = None
    time_scale: float | None = None
    seed: int | None = None
    served_model_name: str | None = None
    kv_tokens: int | None = None  # override the KV budget (tests, what-if runs)
    max_num_seqs: int | None = None
    # TensorRT-LLM flavour: how long `/metrics` waits for further iterations before it
    # answers (trtllm-serve: 2 s, a long poll; engines/sim/app.py). 0: answer at once.
    trtllm_stats_wait_s: float = 0.0
    api_key: str | None = None  # require it as `Authorization: Bearer` (a hosted API)
    kv_events: KvEventsConfig | None = None  # vLLM's --kv-events-config (engines/sim/kv_events.py)
    # Prefill/decode disaggregation (engines/sim/pd.py): this replica's pool, the KV
    # transfer link speed per link (Gb/s) and how long one side waits for the other (s).
    # None link speed: the PD topology's declared network, else 400 (pd.DEFAULT_LINK_GBPS).
    pd_role: str | None = None
    pd_link_gbps: float | None = None
    pd_timeout_s: float = 300.0


def topology_from_json(text: str) -> Topology:
    """A resolved topology from `topo.spec.model_dump_json(by_alias=True)`."""
    spec = parse_spec(text, origin="--spec-json")  # JSON is YAML: same checks and errors
    if spec.model is None:
        raise UserError(
            "the simulator needs a catalog model in the spec JSON (`model_config` specs must"
            " be passed as a file).",
            fix="start it with `--topology FILE` instead of `--spec-json`.",
        )
    return resolve(spec)


def build_app(topo: Topology, options: SimOptions, timing: StepTiming | None = None) -> SimApp:
    """The ASGI app simulating one replica of `topo` (timing: the capacity model's); with
    `options.pd_role`, one replica of that pool (of a PD topology: its pool's topology)."""
    link_gbps = options.pd_link_gbps
    if options.pd_role:
        topo, declared = pd_pool(topo, options.pd_role)
        link_gbps = link_gbps or declared
    if timing is None:
        from controlplane.capacity.performance import performance_model

        timing = performance_model(topo)
    sim = topo.spec.simulation
    flavor = options.flavor or sim.flavor or EngineKind.SGLANG
    if flavor is EngineKind.SIM:
        flavor = EngineKind.SGLANG
    spec = topo.speculative
    drafts = 0
    if spec is not None:
        drafts = (spec.num_steps if flavor is EngineKind.VLLM else spec.num_draft_tokens) or 0
    config = SchedulerConfig(
        max_num_seqs=options.max_num_seqs or topo.spec.max_num_seqs,
        kv_token_capacity=options.kv_tokens or timing.kv_token_capacity,
        block_tokens=BLOCK_TOKENS,
        chunk_tokens=topo.spec.engine.chunked_prefill or DEFAULT_CHUNK_TOKENS,
        time_scale=options.time_scale if options.time_scale is not None else sim.time_scale,
        seed=options.seed if options.seed is not None else sim.seed,
        draft_tokens=drafts,
        transfer_forward=flavor is EngineKind.VLLM,
        separate_prefill_pass=getattr(timing, "separate_prefill_pass", False),
    )
    limits = Limits(
        served_model_name=options.served_model_name or topo.served_model_name,
        context_length=topo.context_length,
        seed=config.seed,
        text=text_rules(sim.tokenizer),
        vision=topo.arch.vision,
    )
    word_stream()  # build the text source now, not inside the first request
    info = EngineInfo(flavor=flavor, limits=limits, version=SIM_VERSION, topology=topo.name)
    scheduler = Scheduler(timing, config)
    publisher = None
    if options.kv_events is not None and options.kv_events.enabled:
        from controlplane.engines.registry import simulated_hash_scheme
        from controlplane.engines.sim.kv_events import KvEventPublisher  # pyzmq: on use only

        scheme = simulated_hash_scheme(flavor)
        publisher = KvEventPublisher(options.kv_events, limits.text.token_ids, BLOCK_TOKENS, scheme)
        scheduler.kv.listener = publisher
    app = SimApp(scheduler, info, options.api_key, options.trtllm_stats_wait_s, publisher)
    if options.pd_role:
        from controlplane.engines.sim.pd import DEFAULT_LINK_GBPS, pd_config
        from controlplane.engines.sim.pd_serve import PdSide

        cfg = pd_config(topo, options.pd_role, flavor, link_gbps or DEFAULT_LINK_GBPS,
                        options.pd_timeout_s, config.time_scale)  # fmt: skip
        app.pd = PdSide(cfg, "127.0.0.1", 0)  # `serve` sets where it listens
    return app


def pd_pool(topo: Topology, role: str) -> tuple[Topology, float | None]:
    """The topology a `role` replica simulates and its declared link speed: a PD
    topology's pool, or `topo` itself (already one pool's colocated spec) and None."""
    from controlplane.spec.pd_pools import pd_pools

    pools = pd_pools(topo)
    if pools is None:
        return topo, None
    return (pools.prefill if role == "prefill" else pools.decode), pools.spec.network.gbps


def advertised_host(bind_host: str) -> str:
    """The host a decode replica reaches this one at: VLLM_NIXL_SIDE_CHANNEL_HOST when set
    (vLLM's own variable for it, envs.py), else the bound address (for a wildcard bind,
    this machine's address)."""
    from controlplane.settings import environment_value

    override = environment_value("VLLM_NIXL_SIDE_CHANNEL_HOST")
    if override:
        return override
    if bind_host in ("", "0.0.0.0", "::"):
        return socket.gethostbyname(socket.gethostname())
    return bind_host


def serve(app: SimApp, host: str = "127.0.0.1", port: int = 8100) -> None:
    """Serve until interrupted: uvicorn with uvloop and httptools, no access log."""
    import uvicorn

    if app.pd is not None:  # vLLM's kv_transfer_params name where the KV is read
        app.pd.host, app.pd.port = advertised_host(host), port

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        raise UserError(
            f"cannot listen on {host}:{port}: {exc}.", fix="pick a free --port."
        ) from None
    config = uvicorn.Config(
        app, loop="uvloop", http="httptools", lifespan="on", access_log=False,
        log_level="warning", timeout_keep_alive=30, backlog=4096,
        timeout_graceful_shutdown=2,  # open streams must not hold a SIGTERM for minutes
    )  # fmt: skip
    # Pass the socket object (not fd=): uvicorn then treats it as TCP and sets TCP_NODELAY.
    uvicorn.Server(config).run(sockets=[sock])


class SimServer:
    """A simulated engine in a subprocess on loopback (`with SimServer.start(topo) as s:`)."""

    def __init__(self, process: subprocess.Popen[bytes], host: str, port: int) -> None:
        self.process = process
        self.host = host
        self.port = port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @classmethod
    def start(
        cls,
        topo: Topology,
        port: int | None = None,
        flavor: EngineKind | str | None = None,
        time_scale: float = 1.0,
        seed: int = 0,
        kv_tokens: int | None = None,
        max_num_seqs: int | None = None,
        served_model_name: str | None = None,
        host: str = "127.0.0.1",
        timeout: float = 30.0,
        trtllm_stats_wait_s: float = 0.0,
        api_key_env: str | None = None,
        env: dict[str, str] | None = None,
        kv_events_config: str | None = None,
        pd_role: str | None = None,
        pd_link_gbps: float | None = None,
        pd_timeout: float | None = None,
    ) -> SimServer:
        """Start `python -m controlplane.engines.sim` and wait until /health answers.

        `api_key_env`: the variable (of `env`, added to this process's environment) holding
        the key the engine then requires, as a hosted API does."""
        from controlplane.local.ports import free_port

        port = port or free_port(host)
        options: dict[str, str] = {}
        if kv_tokens is not None:
            options["kv-tokens"] = str(kv_tokens)
        if max_num_seqs is not None:
            options["max-num-seqs"] = str(max_num_seqs)
        if served_model_name is not None:
            options["served-model-name"] = served_model_name
        if trtllm_stats_wait_s:
            options["trtllm-stats-wait"] = str(trtllm_stats_wait_s)
        if api_key_env is not None:
            options["api-key-env"] = api_key_env
        if kv_events_config is not None:
            options["kv-events-config"] = kv_events_config
        if pd_role is not None:
            options["pd-role"] = pd_role
        if pd_link_gbps is not None:
            options["pd-link-gbps"] = repr(pd_link_gbps)
        if pd_timeout is not None:
            options["pd-timeout"] = repr(pd_timeout)
        spec_json = topo.spec.model_dump_json(by_alias=True)
        args = sim_argv(
            sys.executable, spec_json, host, str(port), flavor, time_scale, seed, options
        )
        process = subprocess.Popen(
            args, env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL
        )
        server = cls(process, host, port)
        server._wait_healthy(timeout)
        return server

    def _wait_healthy(self, timeout: float) -> None:
        import urllib.request

        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise UserError(f"the simulated engine exited with code {self.process.returncode}.")
            try:
                with opener.open(f"{self.url}/health", timeout=1) as reply:
                    if reply.status == 200:
                        return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise UserError(f"the simulated engine did not become healthy in {timeout:.0f} s.")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the process (idempotent): SIGTERM, then SIGKILL after `timeout`."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> SimServer:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
