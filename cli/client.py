"""`unipelt push / ls / rollback` and `unipelt predict --url`: use a running service
(`traffic.py`: traffic, promote, abort)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from cli.http import TOKEN_ENV, URL_ENV, Client
from cli.library import Handler


def add_remote_options(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument(
        "--url",
        default=os.environ.get(URL_ENV),
        required=required and not os.environ.get(URL_ENV),
        help=f"service URL (or {URL_ENV})",
    )
    p.add_argument("--token", default=None, help=f"bearer token (default: ${TOKEN_ENV})")


def add_client_commands(sub) -> None:
    p = sub.add_parser("push", help="check an artifact locally, upload it, print its version")
    p.add_argument("artifact", type=Path, help="artifact directory, or a PEFT adapter directory")
    p.add_argument(
        "--staged", action="store_true", help="store it without making it live (pin it to test)"
    )
    add_remote_options(p)
    peft = p.add_argument_group("PEFT directory (adapter_config.json): the server converts it")
    peft.add_argument("--task", help="task name (required for a PEFT directory)")
    peft.add_argument("--labels", help="class names in head order, comma-separated")
    peft.add_argument("--text-pair", action="store_true", help="inputs are text pairs")
    p = sub.add_parser("ls", help="list a service's tasks and their live versions")
    add_remote_options(p)
    p = sub.add_parser("rollback", help="make an earlier version of a task live")
    p.add_argument("task")
    p.add_argument("--version", type=int, default=None, help="default: the one before live")
    add_remote_options(p)


def add_remote_predict_options(p: argparse.ArgumentParser) -> None:
    """`predict --url URL TASK TEXT...` asks a service instead of loading an artifact."""
    remote = p.add_argument_group("remote: with --url the first argument is a task name")
    remote.add_argument("--url", default=None, help="service URL")
    remote.add_argument("--token", default=None, help=f"bearer token (default: ${TOKEN_ENV})")


def push(args: argparse.Namespace) -> int:
    from adapters import peft_layout

    if (args.artifact / peft_layout.CONFIG_FILE).is_file():
        data, files = _peft_parts(args)
    else:
        data, files = {}, _artifact_parts(args.artifact)
    if args.staged:
        data["live"] = "false"
    info = Client(args.url, args.token).call("PUT", "/adapters", data=data, files=files)
    print(
        f"{info['task']}: version {info['version']} ({_state(info, args.staged)}), "
        f"sha256 {info['sha256'][:12]}"
    )
    return 0


def _state(info: dict, staged: bool) -> str:
    if info.get("live"):
        return "live"
    if staged:
        return "staged"
    split = info.get("split")
    if split:
        weights = " ".join(f"{v}={w}" for v, w in split.items())
        return f"not live: a traffic split is set, {weights}; promote or abort it"
    return "not live: a newer upload won"


def _artifact_parts(directory: Path) -> dict:
    from adapters.artifact import load_artifact
    from adapters.constants import MANIFEST_FILE, WEIGHTS_FILE

    load_artifact(directory)  # checksum, manifest, tensor names and shapes, values
    return {
        "manifest": (MANIFEST_FILE, (directory / MANIFEST_FILE).read_bytes()),
        "weights": (WEIGHTS_FILE, (directory / WEIGHTS_FILE).read_bytes()),
    }


def _peft_parts(args: argparse.Namespace) -> tuple[dict, dict]:
    """Form fields and files of a PEFT upload, after the checks that need no backbone."""
    from adapters import peft_layout
    from adapters.errors import ConfigError
    from adapters.peft_import import check_config, parse_config, read_peft_dir

    if not args.task:
        raise ConfigError("a PEFT directory needs --task (the task name on the server)")
    config, weights = read_peft_dir(args.artifact)
    check_config(parse_config(config))
    data = {"task": args.task}
    if args.text_pair:  # else the server takes it from our export's metadata, or single texts
        data["text_pair"] = "true"
    if args.labels:
        data["labels"] = args.labels
    files = {
        "adapter_config": (peft_layout.CONFIG_FILE, config),
        "adapter_weights": (peft_layout.WEIGHTS_FILE, weights),
    }
    return data, files


def ls(args: argparse.Namespace) -> int:
    tasks = Client(args.url, args.token).call("GET", "/adapters")
    width = max([len(t["task"]) for t in tasks] + [4])
    print(f"{'TASK':<{width}}  LIVE")
    for t in sorted(tasks, key=lambda t: t["task"]):
        live = t["live_version"] if t["live_version"] is not None else "-"
        print(f"{t['task']:<{width}}  {live}")
    return 0


def rollback(args: argparse.Namespace) -> int:
    body = {} if args.version is None else {"version": args.version}
    info = Client(args.url, args.token).call("POST", f"/adapters/{args.task}/rollback", json=body)
    print(f"{info['task']}: version {info['version']} is live")
    return 0


def remote_predict(args: argparse.Namespace) -> int:
    from adapters.postprocess import RowPrediction
    from cli.text_io import format_prediction, stdin_rows

    task = str(args.artifact)
    texts, pairs = (args.texts, args.pair) if args.texts else stdin_rows()
    if not texts:
        raise SystemExit("unipelt predict: error: no texts given (as arguments or on stdin)")
    if pairs is not None and len(pairs) != len(texts):
        raise SystemExit(f"unipelt predict: error: {len(texts)} texts but {len(pairs)} --pair")
    inputs = [
        {"text": t, "text_pair": p} if p is not None else t
        for t, p in zip(texts, pairs or [None] * len(texts))
    ]
    client = Client(args.url, args.token)
    answer = client.call("POST", f"/v1/{task}/predict", json={"inputs": inputs})
    print(f"{answer['task']} version {answer['version']}", file=sys.stderr)
    for row in answer["predictions"]:
        print(format_prediction(RowPrediction(row["label"], row["scores"] or {}, row["value"])))
    return 0


def client_handlers() -> dict[str, Handler]:
    return {"push": push, "ls": ls, "rollback": rollback}
