"""Draining a replica of a PD pool without dropping a request in KV transfer.

The router's in-flight count (drain.py step 3) ends when the router has its answer from
the endpoint, but in a PD pair the KV cache moves between the engines outside the router:

- SGLang (`--disaggregation-mode`): the prefill engine keeps a request in its bootstrap
  queue until the decode side has handshaken and preallocated, then in its inflight queue
  until the KV has been sent; the decode engine holds it in its prealloc and transfer
  queues until the KV has landed. A prefill replica that stops while a room sits in either
  of its queues fails that request on the decode side (KVTransferError). So a leaving
  replica also waits until its own pool's queues are empty
  (catalog/pd_metrics.py `PdMetrics.queues`, read from the engine's /metrics).
- vLLM NixlConnector: the decode engine pulls the KV from the prefill engine while it
  serves its own request, and vLLM exports no gauge of the blocks a prefill engine still
  holds for a remote decode. The contract with the router: a PD request counts as in
  flight on its prefill endpoint until the decode's first byte (the KV has been pulled
  by then), so drain.py's in-flight wait covers it; the engine check adds nothing.

Pure parts (`transfer_queues`, `in_transfer`, `drained`) are unit-tested; `engine_idle`
builds the callable `Drainer.drain` polls (one HTTP GET of /metrics per poll).
"""

from __future__ import annotations

from collections.abc import Callable

from controlplane.catalog import pd_metrics as pm

FETCH_TIMEOUT_S = 2.0


def transfer_queues(flavor: str, role: str) -> tuple[str, ...]:
    """The engine's gauges of requests in KV transfer on a replica of pool `role` (pure);
    () for a colocated replica or an engine that exports none."""
    if not role:
        return ()
    for engine in pm.PD_ENGINES:
        if engine.flavor == flavor:
            return tuple(q.name for q in engine.queues if q.pool == role)
    return ()


def in_transfer(metrics_text: str, names: tuple[str, ...]) -> int:
    """Requests the engine's /metrics text shows in the `names` gauges, over every label
    set (every rank, every DP shard) (pure)."""
    from controlplane.router.engine_metrics import parse_samples

    samples = parse_samples(metrics_text)
    return int(sum(sum(samples.get(name, ())) for name in names))


def drained(router_in_flight: int, engine_busy: bool, transferring: int) -> bool:
    """The leaving replica may stop: no router request to it, the engine runs none, and
    none of its requests is in KV transfer (pure)."""
    return router_in_flight == 0 and not engine_busy and transferring == 0


def engine_idle(
    metrics_url: str,
    flavor: str,
    role: str,
    fetch: Callable[[str], str] | None = None,
) -> Callable[[], bool]:
    """`Drainer.drain`'s `engine_idle` for a replica of pool `role`: True once none of its
    requests is in KV transfer. An engine that no longer answers has nothing left to send
    (True); a colocated replica, or an engine without transfer gauges, is idle at once."""
    names = transfer_queues(flavor, role)
    get = fetch or _get

    def idle() -> bool:
        if not names:
            return True
        try:
            text = get(metrics_url)
        except Exception:  # the engine is gone: no transfer can complete or be waited for
            return True
        return drained(0, False, in_transfer(text, names))

    return idle


def _get(url: str) -> str:
    # The standard library: the drain runs in every install (httpx is not a core dependency).
    import urllib.request

    with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT_S) as response:
        body: bytes = response.read()
    return body.decode()
