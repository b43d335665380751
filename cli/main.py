"""`unipelt`: train, evaluate and use task adapters; run the low-resource study; serve."""

from __future__ import annotations

import argparse
import sys

from adapters.errors import UniPELTError
from cli.library import Handler, add_library_commands, library_handlers
from cli.peft import add_peft_commands, peft_handlers
from cli.serve import add_serve_command, serve


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="unipelt", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    add_library_commands(sub)
    add_peft_commands(sub)
    add_serve_command(sub)
    return parser


def handlers() -> dict[str, Handler]:
    return {**library_handlers(), **peft_handlers(), "serve": serve}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return handlers()[args.command](args) or 0
    except (UniPELTError, FileNotFoundError) as exc:
        print(f"unipelt {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"unipelt {args.command}: interrupted (no partial artifact written)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
