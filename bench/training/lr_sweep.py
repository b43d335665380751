"""A learning-rate sweep per method on one low-resource GLUE task, selected on dev only.

    python -m bench.training.lr_sweep --data-dir /path/to/glue --task sst2 --k 100 --seeds 0 \
        --grid a:3e-4,1e-3;bitfit:1e-3,3e-3

Each run is `unipelt train --task T --k K --seed S --method M --lr X` with every other
setting at its default; records go to `<out>/runs/<id>.json` (finished runs are skipped).
The table ranks each method's rates by mean dev score; test scores are shown, never used.
Runs at a method's default rate are read from study records when they match exactly.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections import defaultdict
from pathlib import Path

import torch

from adapters.backbone import load_backbone
from adapters.config import MethodConfig
from adapters.tokenization import load_tokenizer
from adapters.training.defaults import DEV_SIZE, TrainSettings, default_learning_rate
from adapters.training.run import encode_task, train_encoded
from adapters.training.tasks import glue_task_data

TABLE_FILE = "sweep.md"


def parse_grid(text: str) -> list[tuple[str, float]]:
    """`a:3e-4,1e-3;l:5e-4` -> [("a", 3e-4), ("a", 1e-3), ("l", 5e-4)]."""
    out = []
    for part in text.split(";"):
        method, rates = part.split(":")
        MethodConfig.preset(method)
        out += [(method.strip(), float(r)) for r in rates.split(",")]
    return out


def study_record(study_runs: Path, run_id: str, method: str, lr: float, seed: int, dev: int):
    path = study_runs / f"{run_id}.json"
    if lr != default_learning_rate(MethodConfig.preset(method)) or not path.is_file():
        return None
    record = json.loads(path.read_text())
    same = record.get("settings") == TrainSettings(seed=seed).to_dict()
    return record if same and record.get("lr") == lr and record.get("dev_size") == dev else None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", default=os.environ.get("UNIPELT_GLUE_DIR"))
    p.add_argument("--task", default="sst2")
    p.add_argument("--k", type=int, default=100)
    p.add_argument("--seeds", default="0")
    p.add_argument("--grid", default="")
    p.add_argument("--dev-size", type=int, default=DEV_SIZE)
    p.add_argument("--out", type=Path, default=Path("docs/results/sweep"))
    p.add_argument("--study-runs", type=Path, default=Path("docs/results/runs"))
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    if args.grid:
        torch.set_num_threads(args.threads)
        run(args)
    text = table([json.loads(f.read_text()) for f in sorted((args.out / "runs").glob("*.json"))])
    (args.out / TABLE_FILE).write_text(text)
    print(text)
    return 0


def run(args: argparse.Namespace) -> None:
    backbone = load_backbone()
    tokenizer = load_tokenizer(backbone.path)
    for seed in (int(s) for s in args.seeds.split(",")):
        data = glue_task_data(args.data_dir, args.task, args.k, seed, args.dev_size)
        task = encode_task(tokenizer, data, 128)
        for method, lr in parse_grid(args.grid):
            run_id = f"{args.task}-k{args.k}-{method}-s{seed}"
            path = args.out / "runs" / f"{run_id}-lr{lr:g}.json"
            if path.is_file():
                continue
            start = time.perf_counter()
            record = study_record(args.study_runs, run_id, method, lr, seed, len(task.dev))
            if record is None:
                outcome = train_encoded(
                    task, MethodConfig.preset(method), backbone, TrainSettings(lr=lr, seed=seed)
                )
                record = outcome.summary()
            keep = ("dev_main", "test_main", "steps", "best_step", "stopped_early")
            out = {k: record[k] for k in keep}
            out.update(method=method, lr=lr, seed=seed, task=args.task, k=args.k,
                       wall_seconds=time.perf_counter() - start)  # fmt: skip
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(out, indent=1))
            print(f"{run_id} lr {lr:g}: dev {out['dev_main']:.4f} test {out['test_main']:.4f} "
                  f"steps {out['steps']} (best {out['best_step']})", flush=True)  # fmt: skip


def table(records: list[dict]) -> str:
    by: dict[tuple[str, float], list[dict]] = defaultdict(list)
    for r in records:
        by[(r["method"], r["lr"])].append(r)
    lines = [
        "Selected on the mean dev score (bold); test scores are reported, never used to choose.",
        "",
        "| method | lr | seeds | dev mean | test mean | steps (best) per seed |",
        "|---|---|---|---|---|---|",
    ]
    methods = sorted({m for m, _ in by})
    for m in methods:
        rates = sorted(lr for mm, lr in by if mm == m)
        dev = {lr: statistics.fmean(100 * r["dev_main"] for r in by[(m, lr)]) for lr in rates}
        best = max(rates, key=lambda lr: dev[lr])
        for lr in rates:
            runs = sorted(by[(m, lr)], key=lambda r: r["seed"])
            test = statistics.fmean(100 * r["test_main"] for r in runs)
            mark = "**" if lr == best else ""
            steps = ", ".join(f"{r['steps']} ({r['best_step']})" for r in runs)
            lines.append(f"| {m} | {lr:g} | {','.join(str(r['seed']) for r in runs)} | "
                         f"{mark}{dev[lr]:.1f}{mark} | {test:.1f} | {steps} |")  # fmt: skip
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
