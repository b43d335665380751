"""`unipelt serve`: start the serving app."""

from __future__ import annotations

import argparse


def add_serve_command(sub) -> None:
    p = sub.add_parser(
        "serve", help="start the serving app (settings: UNIPELT_* environment variables)"
    )
    p.add_argument("--host", default=None, help="bind address (UNIPELT_HOST)")
    p.add_argument("--port", type=int, default=None, help="port (UNIPELT_PORT)")


def serve(args: argparse.Namespace) -> int:
    from service.main import run

    run(host=args.host, port=args.port)
    return 0
