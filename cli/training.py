"""The library subcommands' handlers: flags -> typed settings -> `adapters.training.commands`,
and the results printed. Imported only when one of these subcommands runs (it loads torch)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import cast

import torch

from adapters.config import MethodConfig
from adapters.training import commands
from adapters.training.defaults import DEV_SIZE, TrainSettings
from adapters.training.study import StudyConfig
from cli.text_io import format_prediction, stdin_rows


def set_threads(args: argparse.Namespace) -> None:
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)


def per_k(text: str | None, default: int | None) -> dict[int, int | None]:
    """`10` (every K) or `10,100:20,1000:5`: a default (key 0) and values for given K."""
    out = {0: default}
    for part in str(text or "").split(","):
        if ":" in part:
            k, value = part.split(":")
            out[int(k)] = int(value)
        elif part.strip():
            out[0] = int(part)
    return out


def method_config(args: argparse.Namespace) -> MethodConfig:
    overrides = {
        "bottleneck": args.bottleneck,
        "prefix_length": args.prefix_length,
        "lora_r": args.lora_r,
        "lora_alpha": args.lora_alpha,
    }
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if args.no_gates:
        overrides["gates"] = False
    return MethodConfig.preset(args.method, **overrides)


def train_settings(
    args: argparse.Namespace,
    seed: int = 0,
    epochs: int | None = None,
    eval_every: int | None = None,
) -> TrainSettings:
    """Training settings from the flags; `epochs`/`eval_every` override them (study per K)."""
    if epochs is None and args.epochs is not None:
        epochs = per_k(args.epochs, None)[0]
    given = {name: getattr(args, name) for name in ("min_steps", "patience")}
    return TrainSettings(
        lr=args.lr,
        epochs=epochs,
        batch_size=args.batch_size,
        max_length=args.max_length,
        eval_every=eval_every if eval_every is not None else int(args.eval_every),
        seed=seed,
        **{name: value for name, value in given.items() if value is not None},
    )


def columns(args: argparse.Namespace) -> commands.Columns:
    return commands.Columns(args.text_column, args.pair_column, args.label_column)


def _path(value: str | Path | None) -> Path | None:
    return Path(value) if value else None


def train(args: argparse.Namespace) -> int:
    set_threads(args)
    source = commands.TaskSource(
        task=args.task,
        data_dir=_path(args.data_dir),
        train_file=_path(args.train_file),
        dev_file=_path(args.dev_file),
        test_file=_path(args.test_file),
        columns=columns(args),
        labels=args.labels,
        regression=args.regression,
        name=args.task_name,
        k=args.k,
        dev_size=args.dev_size,
        seed=args.seed,
    )
    job = commands.TrainJob(
        source=source,
        method=method_config(args),
        settings=train_settings(args, seed=args.seed),
        backbone=args.backbone,
        device=args.device,
        output=args.output,
        task_name=args.task_name,
        progress=not args.no_progress,
    )
    print(json.dumps(commands.train(job), indent=2))
    return 0


def evaluate(args: argparse.Namespace) -> int:
    set_threads(args)
    job = commands.EvalJob(
        artifact=args.artifact,
        backbone=args.backbone,
        task=args.task,
        data_dir=_path(args.data_dir),
        split=args.split,
        file=args.file,
        columns=columns(args),
    )
    print(json.dumps(commands.evaluate(job), indent=2))
    return 0


def predict(args: argparse.Namespace) -> int:
    set_threads(args)
    texts, pairs = (args.texts, args.pair) if args.texts else stdin_rows()
    for row in commands.predict(args.artifact, args.backbone, texts, pairs):
        print(format_prediction(row))
    return 0


def study(args: argparse.Namespace) -> int:
    out = Path(args.out)
    set_threads(args)
    if args.timing:
        print(commands.timing(args.backbone, list(args.methods), args.batch_size, out))
        return 0
    config = None if args.report_only else study_config(args, out)
    for path in commands.study(config, out, with_plot=not args.no_plot):
        print(f"wrote {path}")
    return 0


def study_config(args: argparse.Namespace, out: Path) -> StudyConfig:
    by_k = {
        "epochs": per_k(args.epochs, None),
        "eval_every": per_k(args.eval_every, 0),
        "dev_size": per_k(args.dev_size, DEV_SIZE),
    }
    defaults = {name: values.pop(0) for name, values in by_k.items()}
    return StudyConfig(
        tasks=tuple(args.tasks),
        ks=tuple(args.k),
        methods=tuple(args.methods),
        seeds=tuple(args.seeds),
        data_dir=commands.glue_dir(_path(args.data_dir)),
        out=out,
        settings=train_settings(args, epochs=defaults["epochs"], eval_every=defaults["eval_every"]),
        by_k=cast(dict[str, dict[int, int]], by_k),  # key 0 (the defaults) popped: ints
        dev_size=cast(int, defaults["dev_size"]),  # per_k's default, DEV_SIZE
        backbone=args.backbone,
        workers=args.workers,
        threads=args.threads or torch.get_num_threads(),
        device=commands.training_device(args.device),
    )


def demo(args: argparse.Namespace) -> int:
    set_threads(args)
    for text, row in commands.demo(args.backbone):
        print(f"{text!r} -> {format_prediction(row)}")
    return 0
