"""Locust users for GLM-4.5 workloads (imported by ops/loadtest/locustfile.py; needs locust).

Each user sends streamed chat requests of one workload (`--glm-workload`), times them from
the SSE stream (`sse.StreamTimer`) and
- fires Locust events per request: `POST <kind>` with the end-to-end time, and `TTFT` /
  `TPOT` rows with those times, so Locust's HTML report and CSVs hold them;
- appends the raw sample as one JSON line to `--glm-samples` (percentiles come from these).
Closed loop: `-u` users, each waiting `--glm-think-time` seconds between requests.
Open loop: `--glm-rate` > 0 draws Poisson / gamma arrivals (`--glm-burstiness`) shared by
the process's users; `-u` then caps the requests in flight (vLLM's --max-concurrency).
`--glm-max-requests` stops the run after that many requests have finished.
"""

from __future__ import annotations

import json
import random
import time
from typing import Any

import gevent
import requests
from locust import User, between, constant, events, task
from locust.exception import StopUser

from controlplane.loadtest.sse import StreamTimer
from controlplane.loadtest.workloads import (
    Arrivals,
    PlannedRequest,
    Session,
    WorkloadConfig,
    next_request,
    parse_length,
    record_reply,
)

_run: dict[str, Any] = {}


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    add = parser.add_argument
    add("--glm-workload", default="chat", help="chat, summarise, tools, thinking, no-thinking, mix")
    add("--glm-model", default="glm-4.5-fp8", help="`model` of the requests")
    add("--glm-samples", default="samples.jsonl", help="raw samples, one JSON line each")
    add("--glm-rate", type=float, default=0.0, help="open loop: requests/s (0: closed loop)")
    add("--glm-burstiness", type=float, default=1.0, help="1: Poisson; <1 burstier")
    add("--glm-max-requests", type=int, default=0, help="stop after this many (0: no limit)")
    add("--glm-think-time", type=float, default=0.0, help="closed loop: seconds between requests")
    add("--glm-prompt-tokens", default="", help="prompt length distribution, e.g. normal:512,128")
    add("--glm-output-tokens", default="", help="output length distribution")
    add("--glm-context", type=int, default=32768, help="the model's context length")
    add("--glm-seed", type=int, default=0, help="seed of prompts, lengths and arrivals")
    add("--glm-timeout", type=float, default=600.0, help="seconds one request may take")


@events.test_start.add_listener
def _start(environment: Any, **_: Any) -> None:
    opts = environment.parsed_options
    _run["config"] = WorkloadConfig(
        name=opts.glm_workload,
        model=opts.glm_model,
        context_length=opts.glm_context,
        prompt=parse_length(opts.glm_prompt_tokens) if opts.glm_prompt_tokens else None,
        output=parse_length(opts.glm_output_tokens) if opts.glm_output_tokens else None,
    )
    _run["samples"] = open(opts.glm_samples, "a", encoding="utf-8")  # noqa: SIM115
    _run["arrivals"] = (
        Arrivals(opts.glm_rate, opts.glm_burstiness, opts.glm_seed, time.monotonic())
        if opts.glm_rate > 0
        else None
    )
    _run["started"] = _run["finished"] = _run["users"] = 0
    _run["quitting"] = False


@events.test_stop.add_listener
def _stop(**_: Any) -> None:
    samples = _run.pop("samples", None)
    if samples is not None:
        samples.close()


class GlmUser(User):
    """One simulated client (a conversation at a time for the chat workload)."""

    abstract = False
    wait_time = constant(0)

    def on_start(self) -> None:
        opts = self.environment.parsed_options
        _run["users"] = index = _run.get("users", 0) + 1
        self.session = Session(random.Random(opts.glm_seed * 100_003 + index))
        self.http = requests.Session()
        self.http.trust_env = False  # no proxies: loopback and the given host only
        if opts.glm_think_time > 0:
            self.wait_time = between(0, 2 * opts.glm_think_time)  # type: ignore[assignment]

    @task
    def one_request(self) -> None:
        opts = self.environment.parsed_options
        limit = opts.glm_max_requests
        if limit and _run["started"] >= limit:
            raise StopUser()
        arrivals: Arrivals | None = _run.get("arrivals")
        if arrivals is not None:
            gevent.sleep(max(0.0, arrivals.next() - time.monotonic()))
        _run["started"] += 1
        planned = next_request(_run["config"], self.session, opts.glm_seed)
        self._send(planned, opts.glm_timeout)
        _run["finished"] += 1
        if limit and _run["finished"] >= limit and not _run.get("quitting"):
            _run["quitting"] = True
            gevent.spawn_later(0.05, self.environment.runner.quit)

    def _send(self, planned: PlannedRequest, timeout: float) -> None:
        url = f"{(self.host or '').rstrip('/')}/v1/chat/completions"
        timer = StreamTimer(planned.kind, time.perf_counter(), time.time())
        error = None
        try:
            with self.http.post(url, json=planned.body, stream=True, timeout=timeout) as reply:
                if reply.status_code != 200:
                    error = f"http_status: {reply.status_code} {reply.text[:200]}"
                else:
                    for chunk in reply.iter_content(chunk_size=None):
                        timer.feed(chunk, time.perf_counter())
        except requests.Timeout as exc:
            error = f"timeout: {exc}"
        except requests.ConnectionError as exc:
            error = f"connect: {exc}" if timer.sample.ttft is None else f"cut_off: {exc}"
        sample = timer.finish(time.perf_counter(), error)
        record_reply(self.session, planned, " ".join(timer.content_text))
        _run["samples"].write(json.dumps(sample.to_json()) + "\n")
        _run["samples"].flush()
        self._fire(planned.kind, sample)

    def _fire(self, kind: str, sample: Any) -> None:
        fire = self.environment.events.request.fire
        failure = None if sample.ok else Exception(sample.error)
        fire(request_type="POST", name=kind, response_time=(sample.e2e or 0) * 1000,
             response_length=sample.output_tokens, exception=failure, context={})  # fmt: skip
        if sample.ok and sample.ttft is not None:
            fire(request_type="TTFT", name=kind, response_time=sample.ttft * 1000,
                 response_length=0, exception=None, context={})  # fmt: skip
        if sample.ok and sample.tpot is not None:
            fire(request_type="TPOT", name=kind, response_time=sample.tpot * 1000,
                 response_length=0, exception=None, context={})  # fmt: skip
