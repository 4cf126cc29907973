"""Run sweep layouts on the simulated engine at accelerated time (I/O: processes, HTTP).

Each layout gets its own simulated engine (a subprocess on loopback) at `time_scale`; an
asyncio client sends open-loop Poisson arrivals of the workload at each rate of the ramp
for `step_s` model seconds, then waits for the step's requests to finish. At accelerated
time a millisecond of client jitter is `time_scale` model milliseconds, so TTFT and ITL
p99 come from the simulator's exact logs (`/sim/ttft`, `/sim/itl`; the load test's
cross-check holds them to the client's view at 1x); token counts and the TPOT median come
from the client. The ramp stops at the first rate that misses the SLO.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable
from statistics import mean

from controlplane.loadtest.scrape import fetch
from controlplane.loadtest.sse import RequestSample, StreamTimer
from controlplane.loadtest.stats import percentile
from controlplane.loadtest.sweep import LayoutResult, StepResult, SweepLayout, model_facts, ramp
from controlplane.loadtest.workloads import Arrivals, Session, WorkloadConfig, next_request
from controlplane.spec.models import SloSpec

StepProgress = Callable[[SweepLayout, StepResult], None]


def mean_lengths(cfg: WorkloadConfig, draws: int = 400) -> tuple[float, float]:
    """Mean prompt and output tokens of the workload (sampled, seeded)."""
    planned = [next_request(cfg, Session(random.Random(i))) for i in range(draws)]
    return mean(p.prompt_words for p in planned), mean(p.body["max_tokens"] for p in planned)


def run_layout(
    layout: SweepLayout,
    cfg: WorkloadConfig,
    slo: SloSpec,
    time_scale: float,
    step_s: float,
    seed: int = 0,
    progress: StepProgress | None = None,
) -> LayoutResult:
    """Every ramp step of one layout until one misses the SLO."""
    from controlplane.engines.sim.server import SimServer
    from controlplane.spec import resolve
    from controlplane.spec.models import TopologySpec

    topo = resolve(TopologySpec.model_validate(layout.spec), origin=layout.label)
    prompt, output = mean_lengths(cfg)
    result = LayoutResult(layout, model_facts(topo, prompt, output), slo=slo)
    model = topo.served_model_name
    step_cfg = WorkloadConfig(cfg.name, model, topo.context_length, cfg.prompt, cfg.output)
    with SimServer.start(topo, time_scale=time_scale, seed=seed) as server:
        for index, rate in enumerate(ramp(result.facts)):
            step = asyncio.run(
                _step(server.url, step_cfg, rate, step_s, time_scale, seed * 1000 + index)
            )
            result.steps.append(step)
            if progress is not None:
                progress(layout, step)
            if step.problems(slo):
                break
    return result


def _counts(url: str) -> tuple[int, int]:
    stats = json.loads(fetch(f"{url}/sim/stats"))
    return int(stats["ttft_count"]), int(stats["itl_count"])


def _log(url: str, kind: str, start: int) -> list[float]:
    return [float(v) for v in json.loads(fetch(f"{url}/sim/{kind}?start={start}"))[f"{kind}_s"]]


async def _step(
    url: str, cfg: WorkloadConfig, rate: float, step_s: float, time_scale: float, seed: int
) -> StepResult:
    import aiohttp

    ttft_start, itl_start = await asyncio.to_thread(_counts, url)
    loop = asyncio.get_running_loop()
    wall_s = step_s / time_scale
    arrivals = Arrivals(rate * time_scale, 1.0, seed, start=loop.time())
    end = loop.time() + wall_s
    rng = random.Random(seed)
    tasks: list[asyncio.Task[RequestSample]] = []
    timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as http:
        while (at := arrivals.next()) < end:
            await asyncio.sleep(max(0.0, at - loop.time()))
            planned = next_request(cfg, Session(random.Random(rng.getrandbits(32))), seed)
            tasks.append(loop.create_task(_one(http, url, planned.kind, planned.body)))
        done, pending = await asyncio.wait(tasks, timeout=2 * wall_s + 10) if tasks else ((), ())
        for task in pending:
            task.cancel()
    samples = [t.result() for t in done if not t.cancelled() and t.exception() is None]
    ok = [s for s in samples if s.ok]
    ttfts = await asyncio.to_thread(_log, url, "ttft", ttft_start)
    itls = await asyncio.to_thread(_log, url, "itl", itl_start)
    tpots = [t * time_scale for s in ok if (t := s.tpot) is not None]
    return StepResult(
        rate=rate,
        sent=len(tasks),
        completed=len(ok),
        duration_s=step_s,
        output_tokens=sum(s.output_tokens for s in ok),
        ttft_p99=percentile(ttfts, 99),
        itl_p99=percentile(itls, 99),
        tpot_p50=percentile(tpots, 50),
    )


async def _one(http: object, url: str, kind: str, body: dict[str, object]) -> RequestSample:
    import aiohttp

    assert isinstance(http, aiohttp.ClientSession)
    timer = StreamTimer(kind, time.perf_counter(), time.time())
    error = None
    try:
        async with http.post(f"{url}/v1/chat/completions", json=body) as reply:
            if reply.status != 200:
                error = f"http_status: {reply.status}"
            else:
                async for chunk in reply.content.iter_any():
                    timer.feed(chunk, time.perf_counter())
    except aiohttp.ClientError as exc:
        error = f"connect: {exc}"
    return timer.finish(time.perf_counter(), error)
