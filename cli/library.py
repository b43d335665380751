"""The library's subcommands: train, eval, predict, study, demo (arguments and handlers)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path

from adapters.config import PRESETS

Handler = Callable[[argparse.Namespace], int]
GLUE_DIR_ENV = "UNIPELT_GLUE_DIR"
METHODS = sorted(PRESETS)  # the library's named methods


def method_name(text: str) -> str:
    """A method name as `MethodConfig.preset` reads it (any case, `_` for `-`)."""
    return text.lower().replace("_", "-")


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def names(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backbone", default=None, help="local model dir or name (default: MiniLM)"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")


def _columns(parser) -> None:
    parser.add_argument("--text-column", default="text")
    parser.add_argument("--pair-column", default="text_pair")
    parser.add_argument("--label-column", default="label")


def _training_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--epochs", default=None, help="max epochs (default: 10, or --min-steps when more)"
    )
    parser.add_argument("--min-steps", type=int, help="step cap floor without --epochs (800)")
    parser.add_argument("--lr", type=float, default=None, help="default: per method")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument(
        "--patience", type=int, help="evaluations without gain (default: 6, or 5 epochs' worth)"
    )
    parser.add_argument("--eval-every", default="0", help="steps; 0 = the step cap / 32")
    parser.add_argument("--device", default="cpu", help="where to train: cpu, cuda, cuda:1")


def _train_parser(sub) -> None:
    p = sub.add_parser("train", help="train one task and save its adapter artifact")
    _common(p)
    data = p.add_argument_group("data: a GLUE task, or your own files")
    data.add_argument("--task", help="GLUE task name (sst2, rte, ...)")
    data.add_argument("--data-dir", default=os.environ.get(GLUE_DIR_ENV), help="GLUE root")
    data.add_argument("--train-file", help="CSV/TSV/JSONL with text[, text_pair], label")
    data.add_argument("--dev-file")
    data.add_argument("--test-file")
    _columns(data)
    data.add_argument("--labels", type=names, help="class names in id order (comma-separated)")
    data.add_argument("--regression", action="store_true")
    data.add_argument("--k", type=int, default=None, help="training examples (default: all)")
    data.add_argument("--dev-size", type=int, default=1000, help="held-out dev examples")
    m = p.add_argument_group("method")
    m.add_argument("--method", default="apl", type=method_name, choices=METHODS)
    m.add_argument("--no-gates", action="store_true")
    m.add_argument("--bottleneck", type=int)
    m.add_argument("--prefix-length", type=int)
    m.add_argument("--lora-r", type=int)
    m.add_argument("--lora-alpha", type=float)
    _training_options(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", type=Path, help="artifact directory (written atomically)")
    p.add_argument("--task-name", help="task name in the artifact (default: the data's)")
    p.add_argument("--no-progress", action="store_true")


def _eval_parser(sub) -> None:
    p = sub.add_parser("eval", help="score a saved artifact on a GLUE split or a file")
    p.add_argument("artifact", type=Path)
    _common(p)
    p.add_argument("--task")
    p.add_argument("--data-dir", default=os.environ.get(GLUE_DIR_ENV))
    p.add_argument("--split", default="dev", help="GLUE split (dev is the paper's test set)")
    p.add_argument("--file", type=Path, help="labelled CSV/TSV/JSONL instead of GLUE")
    _columns(p)


def _predict_parser(sub) -> None:
    p = sub.add_parser("predict", help="predict texts (arguments, or stdin lines)")
    p.add_argument("artifact", type=Path)
    p.add_argument("texts", nargs="*", help="texts; stdin lines (text<TAB>pair) when none")
    p.add_argument("--pair", action="append", help="second text, once per text")
    _common(p)


def _study_parser(sub) -> None:
    p = sub.add_parser("study", help="run the low-resource grid and write the report")
    _common(p)
    p.add_argument("--tasks", type=names, default=names("sst2,rte,mrpc,cola,stsb"))
    p.add_argument("--k", type=_ints, default=[100, 1000])
    p.add_argument(
        "--methods",
        type=names,
        default=names("ft,bitfit,a,p,l,ap,apl,apl-nogate"),
        help=f"comma-separated, from: {', '.join(METHODS)}",
    )
    p.add_argument("--seeds", type=_ints, default=[0, 1, 2])
    p.add_argument("--data-dir", default=os.environ.get(GLUE_DIR_ENV))
    p.add_argument("--out", type=Path, default=Path("docs/results"))
    p.add_argument("--dev-size", default="1000", help="dev examples (also per K: 1000,100:500)")
    p.add_argument("--workers", type=int, default=1, help="runs in parallel processes")
    p.add_argument("--report-only", action="store_true", help="rebuild the report from JSON")
    p.add_argument("--timing", action="store_true", help="only time the methods (timing.md)")
    p.add_argument("--no-plot", action="store_true")
    _training_options(p)


def add_library_commands(sub) -> None:
    """Add the subcommands that need only the library (`adapters`)."""
    _train_parser(sub)
    _eval_parser(sub)
    _predict_parser(sub)
    _study_parser(sub)
    demo = sub.add_parser("demo", help="train a tiny sentiment adapter and predict (smoke test)")
    _common(demo)


def library_handlers() -> dict[str, Handler]:
    """Subcommand name -> handler; imports the training code (and torch) only when called."""

    def lazy(name: str) -> Handler:
        def handler(args: argparse.Namespace) -> int:
            from cli import training

            return getattr(training, name)(args)

        return handler

    return {
        "train": lazy("train"),
        "eval": lazy("evaluate"),
        "predict": lazy("predict"),
        "study": lazy("study"),
        "demo": lazy("demo"),
    }
