"""`python -m controlplane.engines.sim`: serve one simulated replica (see the package docs)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from controlplane.engines.registry import simulator_flavors
from controlplane.errors import UserError
from controlplane.spec import EngineKind


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m controlplane.engines.sim")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--topology", type=Path, help="Topology YAML file.")
    source.add_argument("--spec-json", help="Resolved TopologySpec as JSON.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--flavor", choices=simulator_flavors())
    parser.add_argument("--time-scale", type=float, help="Simulated seconds per wall second.")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--served-model-name")
    parser.add_argument("--kv-tokens", type=int, help="Override the KV-cache token budget.")
    parser.add_argument("--max-num-seqs", type=int, help="Override the running-sequence cap.")
    parser.add_argument(
        "--trtllm-stats-wait",
        type=float,
        default=0.0,
        help="TensorRT-LLM flavour: seconds /metrics waits for more iterations (trtllm-serve: 2).",
    )
    parser.add_argument(
        "--api-key-env",
        metavar="NAME",
        help="Require `Authorization: Bearer $NAME` on /v1/ routes, as a hosted API does"
        " (the key is read from the variable, never given on the command line).",
    )
    parser.add_argument(
        "--kv-events-config",
        metavar="JSON",
        help="Publish KV-cache events as vLLM does (the same JSON as vLLM's flag, e.g."
        ' \'{"enable_kv_cache_events": true, "endpoint": "tcp://*:5557",'
        ' "replay_endpoint": "tcp://*:5558"}\').',
    )
    parser.add_argument(
        "--pd-role",
        choices=("prefill", "decode"),
        help="Serve one replica of a prefill/decode-disaggregated pool: speak the flavour's"
        " PD protocol (SGLang bootstrap fields, vLLM kv_transfer_params) and serve the KV"
        " hand-off on this HTTP port (engines/sim/pd.py).",
    )
    parser.add_argument(
        "--pd-link-gbps",
        type=float,
        help="KV transfer link speed per link in Gb/s (default: a PD topology's declared"
        " network, else 400: one RDMA NDR port per GPU; TCP-class networks: 100 or less).",
    )
    parser.add_argument(
        "--pd-timeout",
        type=float,
        default=300.0,
        help="Seconds one PD side waits for the other (SGLang's bootstrap and waiting"
        " timeouts: 300).",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from controlplane.engines.sim.server import SimOptions, build_app, serve, topology_from_json
    from controlplane.settings import environment_value
    from controlplane.spec import load_topology

    args = parse_args(argv)
    try:
        api_key = None
        if args.api_key_env:
            api_key = environment_value(args.api_key_env)
            if api_key is None:
                raise UserError(
                    f"--api-key-env names {args.api_key_env}, which is not set.",
                    fix=f"export {args.api_key_env}=<key> before starting the simulator.",
                )
        kv_events = None
        if args.kv_events_config:
            from controlplane.engines.sim.kv_events import parse_config

            kv_events = parse_config(args.kv_events_config)
        topo = load_topology(args.topology) if args.topology else topology_from_json(args.spec_json)
        options = SimOptions(
            flavor=EngineKind(args.flavor) if args.flavor else None,
            time_scale=args.time_scale,
            seed=args.seed,
            served_model_name=args.served_model_name,
            kv_tokens=args.kv_tokens,
            max_num_seqs=args.max_num_seqs,
            trtllm_stats_wait_s=args.trtllm_stats_wait,
            api_key=api_key,
            kv_events=kv_events,
            pd_role=args.pd_role,
            pd_link_gbps=args.pd_link_gbps,
            pd_timeout_s=args.pd_timeout,
        )
        if (args.pd_link_gbps is not None and args.pd_link_gbps <= 0) or args.pd_timeout <= 0:
            raise UserError(
                "--pd-link-gbps and --pd-timeout must be positive.",
                fix="pass a link speed in Gb/s (e.g. 400) and a timeout in seconds.",
            )
        serve(build_app(topo, options), args.host, args.port)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
