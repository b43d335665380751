"""What each `unipelt` subcommand does, given its parsed arguments."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import cast

import torch

from adapters.backbone import load_backbone
from adapters.config import MethodConfig
from adapters.data import GLUE_TASKS, load_generic, load_glue_split, normalise_task_name
from adapters.errors import ConfigError
from adapters.tokenization import load_tokenizer
from adapters.training.columns import column_map, renamed_copy
from adapters.training.defaults import DEV_SIZE, TrainSettings
from adapters.training.demo import QUERIES, train_demo
from adapters.training.export import save_outcome
from adapters.training.inference import Predictor
from adapters.training.report import write_report
from adapters.training.run import train_task
from adapters.training.study import StudyConfig, run_study
from adapters.training.tasks import TaskData, file_task_data, glue_task_data
from adapters.training.timing import time_methods, timing_table


def set_threads(args: argparse.Namespace) -> None:
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)


def training_device(name: str) -> str:
    """Check `--device` before any weight moves: a clear error instead of torch's."""
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(f"--device {name} is not a torch device ({exc})") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: torch sees no CUDA device on this machine")
    return name


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


def settings(
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


def _need_data_dir(args: argparse.Namespace) -> Path:
    if not args.data_dir:
        raise ConfigError("a GLUE task needs --data-dir (or UNIPELT_GLUE_DIR)")
    return Path(args.data_dir)


def task_data(args: argparse.Namespace, workdir: Path) -> TaskData:
    if args.task and args.train_file:
        raise ConfigError("give either --task (GLUE) or --train-file, not both")
    if args.task:
        return glue_task_data(_need_data_dir(args), args.task, args.k, args.seed, args.dev_size)
    if not args.train_file:
        raise ConfigError("give --task (a GLUE task) or --train-file")
    mapping = column_map(args.text_column, args.pair_column, args.label_column)
    train = renamed_copy(args.train_file, mapping, workdir)
    dev, test = [
        renamed_copy(f, mapping, workdir) if f else None for f in (args.dev_file, args.test_file)
    ]
    name = args.task_name or Path(args.train_file).stem
    return file_task_data(
        train, dev, test, args.labels, args.regression, name, args.k, args.seed, args.dev_size
    )


def train(args: argparse.Namespace) -> int:
    set_threads(args)
    device = training_device(args.device)
    cfg = method_config(args)
    if cfg.full_finetune and args.output:
        raise ConfigError(
            "full fine-tuning trains the whole backbone; its result is not an adapter artifact "
            "and cannot be saved. Drop --output to get its metrics."
        )
    run_settings = settings(args, seed=args.seed)
    with tempfile.TemporaryDirectory(prefix="unipelt-") as workdir:
        data = task_data(args, Path(workdir))
    backbone = load_backbone(args.backbone, device=device)
    print(
        f"{data.spec.name}: {len(data.train)} train / {len(data.dev)} dev / {len(data.test)} "
        f"test examples; method {cfg.name}, lr {run_settings.learning_rate(cfg):g}",
        file=sys.stderr,
    )
    outcome = train_task(
        data, cfg, backbone, load_tokenizer(backbone.path), run_settings, not args.no_progress
    )
    r = outcome.result
    print(
        f"{r.steps} steps ({r.epochs:.1f} epochs), best dev at step {r.best_step}, "
        f"{r.seconds_per_step:.3f} s/step",
        file=sys.stderr,
    )
    if args.output:
        path = save_outcome(outcome, args.output, args.task_name or data.spec.name)
        print(f"artifact written to {path}", file=sys.stderr)
    print(json.dumps(outcome.metrics(), indent=2))
    return 0


def evaluate(args: argparse.Namespace) -> int:
    set_threads(args)
    predictor = Predictor.load(args.artifact, args.backbone)
    manifest = predictor.artifact.manifest
    if args.file:
        regression = manifest.problem_type == "regression"
        labels = manifest.label_names or None
        mapping = column_map(args.text_column, args.pair_column, args.label_column)
        with tempfile.TemporaryDirectory(prefix="unipelt-") as workdir:
            path = renamed_copy(args.file, mapping, Path(workdir))
            examples, spec = load_generic(path, labels, regression, manifest.task)
    elif args.task:
        key = normalise_task_name(args.task)
        examples = load_glue_split(_need_data_dir(args), key, args.split)
        spec = GLUE_TASKS[key]
    else:
        raise ConfigError("give --task (with --data-dir) or --file")
    result = predictor.evaluate(examples, spec)
    print(json.dumps({"examples": len(examples), **result.metrics}, indent=2))
    return 0


def stdin_rows(stream=None) -> tuple[list[str], list[str] | None]:
    """Non-empty lines as texts; when every line has a tab, `text<TAB>pair`."""
    lines = [line.rstrip("\n") for line in (stream or sys.stdin) if line.strip()]
    if lines and all("\t" in line for line in lines):
        texts, pairs = zip(*(line.split("\t", 1) for line in lines))
        return list(texts), list(pairs)
    return lines, None


def format_prediction(row) -> str:
    if row.label is None:
        return f"{row.value:.4f}"
    scores = " ".join(f"{name}={p:.4f}" for name, p in row.scores.items())
    return f"{row.label}\t{scores}"


def predict(args: argparse.Namespace) -> int:
    set_threads(args)
    texts, pairs = (args.texts, args.pair) if args.texts else stdin_rows()
    if pairs is not None and len(pairs) != len(texts):
        raise ConfigError(f"{len(texts)} texts but {len(pairs)} --pair values")
    if not texts:
        raise ConfigError("no texts given (as arguments or on stdin)")
    predictor = Predictor.load(args.artifact, args.backbone)
    if predictor.artifact.manifest.tokenizer.text_pair and pairs is None:
        raise ConfigError("this task takes text pairs: give --pair once per text")
    for row in predictor.predict(texts, pairs):
        print(format_prediction(row))
    return 0


def study(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if args.timing:
        return timing(args, out)
    if not args.report_only:
        set_threads(args)
        by_k = {
            "epochs": per_k(args.epochs, None),
            "eval_every": per_k(args.eval_every, 0),
            "dev_size": per_k(args.dev_size, DEV_SIZE),
        }
        defaults = {name: values.pop(0) for name, values in by_k.items()}
        config = StudyConfig(
            tasks=tuple(args.tasks),
            ks=tuple(args.k),
            methods=tuple(args.methods),
            seeds=tuple(args.seeds),
            data_dir=_need_data_dir(args),
            out=out,
            settings=settings(args, epochs=defaults["epochs"], eval_every=defaults["eval_every"]),
            by_k=cast(dict[str, dict[int, int]], by_k),  # key 0 (the defaults) popped: ints
            dev_size=cast(int, defaults["dev_size"]),  # per_k's default, DEV_SIZE
            backbone=args.backbone,
            workers=args.workers,
            threads=args.threads or torch.get_num_threads(),
            device=training_device(args.device),
        )
        total = len(config.grid())
        print(f"study: {total} runs, {total - len(config.pending())} already done", flush=True)
        run_study(config, _report_run)
    for path in write_report(out, with_plot=not args.no_plot):
        print(f"wrote {path}")
    return 0


def timing(args: argparse.Namespace, out: Path) -> int:
    """Same-batch, round-robin speed of each method on this machine (see `timing.py`)."""
    set_threads(args)
    backbone = load_backbone(args.backbone)
    table = timing_table(time_methods(backbone, list(args.methods), args.batch_size))
    header = (
        f"Synthetic batches: train {args.batch_size} x 32 tokens, inference 64 x 32 tokens; "
        f"{torch.get_num_threads()} thread(s); median of 3 round-robin rounds."
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / "timing.md").write_text(f"{header}\n\n{table}\n")
    print(f"{header}\n\n{table}")
    return 0


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


def _report_run(done: int, total: int, record: dict) -> None:
    print(
        f"[{done}/{total}] {record['run_id']}: test {record['test_main']:.4f} "
        f"dev {record['dev_main'] or 0:.4f} steps {record['steps']} "
        f"{record['seconds_per_step']:.3f} s/step {record['wall_seconds']:.0f} s",
        flush=True,
    )


def demo(args: argparse.Namespace) -> int:
    set_threads(args)
    backbone = load_backbone(args.backbone)
    outcome = train_demo(backbone)
    print(f"trained {outcome.learner.cfg.name} for {outcome.result.steps} steps")
    with tempfile.TemporaryDirectory(prefix="unipelt-demo-") as workdir:
        path = save_outcome(outcome, Path(workdir) / "demo", "demo-sentiment")
        predictor = Predictor.load(path, backbone)
        for text, row in zip(QUERIES, predictor.predict(list(QUERIES))):
            print(f"{text!r} -> {format_prediction(row)}")
    return 0
