"""`python -m controlplane.router --redis-url URL --port P --workers N --policy NAME`."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace

from controlplane.errors import UserError
from controlplane.router.auth import MODES
from controlplane.router.config import RouterConfig
from controlplane.router.external import externals_from_json
from controlplane.router.limits import RequestLimits
from controlplane.router.policies import default_policies, get_policy
from controlplane.router.server import die_with_parent, serve_worker, supervise
from controlplane.router.state import StateConfig
from controlplane.settings import get_settings


def parse_args(argv: list[str] | None = None) -> tuple[RouterConfig, bool]:
    parser = argparse.ArgumentParser(prog="python -m controlplane.router")
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--policy", default="prefix_affinity")
    parser.add_argument("--max-queue", type=int, default=256)
    parser.add_argument("--session-header", default="x-session-id")
    parser.add_argument("--namespace", default="glmctl")
    parser.add_argument("--scrape-interval", type=float, default=1.0)
    parser.add_argument("--auth", default="auto", choices=MODES)
    parser.add_argument("--limits", default="{}", help="JSON of RequestLimits fields")
    parser.add_argument("--external", default="[]", help="JSON of external endpoints (no keys)")
    parser.add_argument("--overflow-at", type=int, default=0)
    parser.add_argument("--secrets-dir", default="")
    parser.add_argument("--models", default="", help="the deployment's served model names, a,b")
    parser.add_argument("--precise", default="", help="precise_prefix settings, JSON")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        limits = RequestLimits.from_dict(json.loads(args.limits))
    except (ValueError, TypeError) as exc:
        raise UserError(f"--limits is not valid: {exc}", fix="pass a JSON object.") from exc
    config = RouterConfig(
        redis_url=get_settings().redis_url_with_password(args.redis_url) or args.redis_url,
        policy=args.policy,
        host=args.host,
        port=args.port,
        workers=args.workers,
        max_queue_per_endpoint=args.max_queue,
        session_header=args.session_header,
        scrape_interval=args.scrape_interval,
        state=replace(StateConfig(), namespace=args.namespace),
        auth=args.auth,
        limits=limits,
        external=externals_from_json(args.external),
        overflow_at=args.overflow_at,
        secrets_dir=args.secrets_dir,
        models=tuple(m for m in args.models.split(",") if m),
        precise=args.precise,
    )
    return config, args.worker


def main(argv: list[str] | None = None) -> int:
    try:
        config, worker = parse_args(argv)
        get_policy(default_policies(), config.policy)
        if worker:
            die_with_parent()
            serve_worker(config)
        else:
            supervise(config)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
