"""Run the locustfile headless against a URL, scrape the engines, judge (thin I/O adapter).

`run_load_test(config, progress)` -> `LoadTestResult`: Locust runs as a child process
(`python -m locust -f ops/loadtest/locustfile.py --headless ...`) writing its HTML report
and CSVs into the output folder, while this process scrapes the engines' metrics and
reports progress from the raw-samples file. The analysis and outputs are in report.py.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from controlplane.errors import UserError
from controlplane.loadtest import INSTALL_HINT
from controlplane.loadtest.scrape import MetricsScraper, sim_ttft_counts, sim_ttfts
from controlplane.loadtest.sse import RequestSample
from controlplane.spec.models import SloSpec

SAMPLES = "samples.jsonl"
LOCUST_LOG = "locust.log"
Progress = Callable[[int, float], None]  # (requests finished, seconds elapsed)


@dataclass(frozen=True)
class LoadTestConfig:
    """One load test: where, what, how much, judged against what."""

    url: str
    model: str
    out_dir: Path
    slo: SloSpec
    workload: str = "chat"
    users: int = 8
    rate: float = 0.0  # requests/s; 0: closed loop
    burstiness: float = 1.0
    duration_s: float = 30.0
    max_requests: int = 0
    context_length: int = 32768
    prompt_tokens: str | None = None
    output_tokens: str | None = None
    seed: int = 0
    think_time_s: float = 0.0
    time_scale: float = 1.0  # simulated seconds per wall second of the target
    engine_urls: tuple[str, ...] = ()


@dataclass
class RunData:
    """What one run produced, before analysis."""

    samples: list[RequestSample]
    wall_s: float
    locust_exit: int
    before: list[str] = field(default_factory=list)
    after: list[str] = field(default_factory=list)
    engine_series: list[dict[str, float]] = field(default_factory=list)  # t: epoch s
    sim_ttfts: list[float] = field(default_factory=list)


def locustfile_path() -> Path:
    """ops/loadtest/locustfile.py of a source checkout, else the packaged users module."""
    import controlplane.loadtest as package

    checkout = Path(package.__file__).resolve().parents[2] / "ops" / "loadtest" / "locustfile.py"
    if checkout.is_file():
        return checkout
    return Path(package.__file__).resolve().parent / "locust_users.py"


def locust_command(cfg: LoadTestConfig, locustfile: Path) -> list[str]:
    """The Locust command line of `cfg` (pure)."""
    out = cfg.out_dir
    stop_timeout = max(5, min(60, int(cfg.duration_s)))
    argv = [
        sys.executable, "-m", "locust", "-f", str(locustfile), "--headless", "--only-summary",
        "-u", str(cfg.users), "-r", str(cfg.users), "-t", f"{max(1, round(cfg.duration_s))}s",
        "--stop-timeout", str(stop_timeout), "--exit-code-on-error", "0",
        "--host", cfg.url.rstrip("/"), "--csv", str(out / "locust"), "--csv-full-history",
        "--html", str(out / "locust.html"), "--loglevel", "WARNING",
        "--glm-workload", cfg.workload, "--glm-model", cfg.model,
        "--glm-samples", str(out / SAMPLES), "--glm-rate", str(cfg.rate),
        "--glm-burstiness", str(cfg.burstiness), "--glm-max-requests", str(cfg.max_requests),
        "--glm-think-time", str(cfg.think_time_s), "--glm-context", str(cfg.context_length),
        "--glm-seed", str(cfg.seed),
    ]  # fmt: skip
    if cfg.prompt_tokens:
        argv += ["--glm-prompt-tokens", cfg.prompt_tokens]
    if cfg.output_tokens:
        argv += ["--glm-output-tokens", cfg.output_tokens]
    return argv


def _require_locust() -> None:
    # Only look: importing locust monkey-patches this process for gevent.
    import importlib.util

    if importlib.util.find_spec("locust") is None:
        raise UserError("load tests need Locust.", fix=f"run `{INSTALL_HINT}`.")


def read_samples(path: Path) -> list[RequestSample]:
    import json

    if not path.is_file():
        return []
    samples = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            samples.append(RequestSample.from_json(json.loads(line)))
    return samples


def _count_lines(path: Path) -> int:
    try:
        with path.open("rb") as handle:
            return sum(1 for _ in handle)
    except OSError:
        return 0


def run_load_test(cfg: LoadTestConfig, progress: Progress | None = None) -> RunData:
    """Run Locust against `cfg.url` and collect the samples and engine scrapes."""
    _require_locust()
    try:
        cfg.out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create {cfg.out_dir}: {exc}.", fix="pass another --out.") from None
    samples_path = cfg.out_dir / SAMPLES
    samples_path.unlink(missing_ok=True)
    urls = list(cfg.engine_urls)
    sim_starts = sim_ttft_counts(urls) if urls else []
    started = time.monotonic()
    with (
        MetricsScraper(urls) as scraper,
        (cfg.out_dir / LOCUST_LOG).open("w") as log,
    ):
        process = subprocess.Popen(
            locust_command(cfg, locustfile_path()),
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        limit = cfg.duration_s + 120
        try:
            while process.poll() is None:
                if progress is not None:
                    progress(_count_lines(samples_path), time.monotonic() - started)
                if time.monotonic() - started > limit:
                    process.terminate()
                time.sleep(0.5)
        finally:
            if process.poll() is None:
                process.terminate()
                process.wait(30)
    return RunData(
        samples=read_samples(samples_path),
        wall_s=time.monotonic() - started,
        locust_exit=process.returncode,
        before=scraper.before,
        after=scraper.after,
        engine_series=scraper.series,
        sim_ttfts=sim_ttfts(urls, sim_starts) if any(s >= 0 for s in sim_starts) else [],
    )
