"""`unipelt traffic / promote / abort`: roll a task's new version out on a running service."""

from __future__ import annotations

import argparse

from cli.client import add_remote_options
from cli.http import Client
from cli.library import Handler


def weight(text: str) -> tuple[str, int]:
    """One `VERSION=PERCENT` argument."""
    version, sep, percent = text.partition("=")
    if not sep or not version.isdigit() or not percent.lstrip("-").isdigit():
        raise argparse.ArgumentTypeError(f"expected VERSION=PERCENT (like 8=10), got {text!r}")
    return version, int(percent)


def add_traffic_commands(sub) -> None:
    p = sub.add_parser(
        "traffic",
        help="show a task's routing, or split its traffic: unipelt traffic TASK 7=90 8=10",
    )
    p.add_argument("task")
    p.add_argument("weights", nargs="*", type=weight, help="VERSION=PERCENT, summing to 100")
    add_remote_options(p)
    p = sub.add_parser("promote", help="make one version live and end the split")
    p.add_argument("task")
    p.add_argument("version", type=int)
    add_remote_options(p)
    p = sub.add_parser("abort", help="end the split: the live version takes all traffic")
    p.add_argument("task")
    add_remote_options(p)


def describe(routing: dict) -> str:
    """One line: the split and where an abort returns, or the one live version."""
    live, split = routing["live_version"], routing["split"]
    if split is None:
        return f"{routing['task']}: version {live} is live, no split"
    weights = " ".join(f"{v}={w}" for v, w in sorted(split.items(), key=lambda i: int(i[0])))
    back = f"abort returns to {live}" if live is not None else "nothing live to abort to"
    return f"{routing['task']}: {weights} ({back})"


def traffic(args: argparse.Namespace) -> int:
    client = Client(args.url, args.token)
    path = f"/adapters/{args.task}/traffic"
    if not args.weights:
        print(describe(client.call("GET", path)))
        return 0
    print(describe(client.call("PUT", path, json={"split": dict(args.weights)})))
    return 0


def promote(args: argparse.Namespace) -> int:
    client = Client(args.url, args.token)
    body = {"version": args.version}
    print(describe(client.call("POST", f"/adapters/{args.task}/promote", json=body)))
    return 0


def abort(args: argparse.Namespace) -> int:
    print(describe(Client(args.url, args.token).call("POST", f"/adapters/{args.task}/abort")))
    return 0


def traffic_handlers() -> dict[str, Handler]:
    return {"traffic": traffic, "promote": promote, "abort": abort}
