"""`unipelt`: train, evaluate and use task adapters; run the low-resource study; convert PEFT
adapters; serve; and manage a running service (push, ls, rollback, traffic, promote, abort,
predict --url)."""

from __future__ import annotations

import argparse
import sys

from adapters.errors import UniPELTError
from cli.client import (
    add_client_commands,
    add_remote_predict_options,
    client_handlers,
    remote_predict,
)
from cli.http import ClientError
from cli.library import Handler, add_library_commands, library_handlers
from cli.peft import add_peft_commands, peft_handlers
from cli.serve import add_serve_command, serve
from cli.traffic import add_traffic_commands, traffic_handlers


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="unipelt", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    add_library_commands(sub)
    add_remote_predict_options(sub.choices["predict"])
    add_peft_commands(sub)
    add_serve_command(sub)
    add_client_commands(sub)
    add_traffic_commands(sub)
    return parser


def handlers() -> dict[str, Handler]:
    library = library_handlers()
    local_predict = library["predict"]

    def predict(args: argparse.Namespace) -> int:
        return remote_predict(args) if args.url else local_predict(args)

    return {
        **library,
        "predict": predict,
        **peft_handlers(),
        "serve": serve,
        **client_handlers(),
        **traffic_handlers(),
    }


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return handlers()[args.command](args) or 0
    except ClientError as exc:
        print(f"unipelt {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except (UniPELTError, FileNotFoundError) as exc:
        print(f"unipelt {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"unipelt {args.command}: interrupted (no partial artifact written)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
