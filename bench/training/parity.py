"""Parity of our training with plain reference loops, on the same splits and example order.

    python -m bench.training.parity --data-dir /path/to/glue --tasks sst2,rte --k 100,1000 \
        --seeds 0,1,2

Runs per (task, K, seed), each written to `<out>/runs/<id>.json` (finished runs are skipped,
so an interrupted harness resumes):

- `ref-ft`, `ref-lora`: the plain transformers / PEFT loops (`bench.training.parity_loops`).
- `ft-same`, `l-same`: ours with the reference's schedule (constant lr, 10 epochs, dev
  evaluation every epoch, no length grouping), the reference's initial head and LoRA A,
  and for L the same trainable head (the pooler-initialised dense layer frozen, as PEFT's).
- `ft-defaults`, `l-defaults`: `unipelt train` with no flag (reused from a study record
  made with exactly those settings when one exists).

Then `<out>/parity.md` holds the table: test score per seed, mean, std, ours minus reference.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import torch

from adapters.backbone import Backbone, load_backbone
from adapters.config import MethodConfig
from adapters.tokenization import load_tokenizer
from adapters.training.defaults import DEV_SIZE, TrainSettings
from adapters.training.evaluate import evaluate_learner
from adapters.training.learner import Learner
from adapters.training.run import EncodedTask, encode_task, train_encoded
from adapters.training.tasks import glue_task_data
from adapters.training.trainer import train
from bench.training.parity_loops import (
    REFERENCE_LR,
    Schedule,
    head_init,
    reference_model,
    train_reference,
)
from bench.training.parity_report import write_table

IMPLS = ("ref-ft", "ref-lora", "ft-same", "l-same", "ft-defaults", "l-defaults")
REFERENCE_OF = {"ft": "ref-ft", "l": "ref-lora"}


def same_settings(schedule: Schedule, train_size: int, seed: int) -> TrainSettings:
    """Our settings that reproduce the reference loop's schedule."""
    per_epoch = math.ceil(train_size / schedule.batch_size)
    return TrainSettings(
        lr=schedule.lr,
        epochs=schedule.epochs,
        batch_size=schedule.batch_size,
        eval_every=per_epoch,
        warmup_ratio=0.0,
        schedule="constant",
        group_by_length=False,
        patience=schedule.epochs + 1,
        max_grad_norm=schedule.max_grad_norm,
        seed=seed,
    )


def run_ours_same(task: EncodedTask, method: str, backbone: Backbone, seed: int) -> dict:
    ref = REFERENCE_OF[method]
    schedule = Schedule(lr=REFERENCE_LR[ref])
    init = head_init(reference_model(ref, backbone.path, task.spec.num_labels, seed))
    settings = same_settings(schedule, len(task.train), seed)
    torch.manual_seed(seed)
    learner = Learner(MethodConfig.preset(method), backbone, task.spec.num_labels)
    weights = learner.task.weights
    with torch.no_grad():
        for name, value in init.items():
            weights[name].copy_(value)
    if method == "l":  # PEFT trains the classifier only; the pooler stays frozen
        weights["head_dense_w"].requires_grad_(False)
        weights["head_dense_b"].requires_grad_(False)
    result = train(learner, task.train, task.dev, task.spec, settings)
    test = evaluate_learner(learner, task.test, task.spec, settings.eval_batch_size)
    return {
        "dev_main": result.best_dev.get(task.spec.main_metric),
        "test_main": test.main(task.spec),
        "best_step": result.best_step,
        "steps": result.steps,
        "train_seconds": result.train_seconds,
        "eval_seconds": result.eval_seconds,
        "trainable_parameters": learner.training_parameter_count(),
        "history": result.history,
        "settings": settings.to_dict(),
    }


def study_record(study_runs: Path | None, run_id: str, settings: TrainSettings, dev_size: int):
    """A study record of the same run with exactly these settings, if there is one."""
    path = study_runs / f"{run_id}.json" if study_runs else None
    if path is None or not path.is_file():
        return None
    record = json.loads(path.read_text())
    same = record.get("settings") == settings.to_dict() and record.get("dev_size") == dev_size
    return record if same else None


def run_ours_defaults(task, method, backbone, seed, key, study_runs) -> dict:
    settings = TrainSettings(seed=seed).resolved(len(task.train))
    run_id = f"{key[0]}-k{key[1]}-{method}-s{seed}"
    reused = study_record(study_runs, run_id, settings, len(task.dev))
    if reused is not None:
        return {**{k: reused[k] for k in ("dev_main", "test_main", "best_step", "steps")},
                "train_seconds": reused["train_seconds"], "eval_seconds": reused["eval_seconds"],
                "history": reused["history"], "settings": reused["settings"],
                "reused": f"study record {run_id}"}  # fmt: skip
    outcome = train_encoded(task, MethodConfig.preset(method), backbone, settings)
    summary = outcome.summary()
    keep = ("dev_main", "test_main", "best_step", "steps", "train_seconds", "eval_seconds")
    return {**{k: summary[k] for k in keep}, "history": summary["history"],
            "settings": settings.to_dict()}  # fmt: skip


def run_one(impl: str, task: EncodedTask, backbone: Backbone, seed: int, key, study_runs):
    if impl.startswith("ref-"):
        model = reference_model(impl, backbone.path, task.spec.num_labels, seed)
        record = train_reference(model, task, Schedule(lr=REFERENCE_LR[impl]), seed)
        return {**record, "lr": REFERENCE_LR[impl]}
    method, mode = impl.split("-")
    if mode == "same":
        return run_ours_same(task, method, backbone, seed)
    return run_ours_defaults(task, method, backbone, seed, key, study_runs)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", default=os.environ.get("UNIPELT_GLUE_DIR"))
    p.add_argument("--tasks", default="sst2,rte")
    p.add_argument("--k", default="100,1000")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--impls", default=",".join(IMPLS))
    p.add_argument("--dev-size", type=int, default=DEV_SIZE)
    p.add_argument("--out", type=Path, default=Path("docs/results/parity"))
    p.add_argument("--study-runs", type=Path, default=Path("docs/results/runs"))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--report-only", action="store_true")
    args = p.parse_args(argv)
    if not args.report_only:
        torch.set_num_threads(args.threads)
        run_grid(args)
    print(write_table(args.out))
    return 0


def run_grid(args: argparse.Namespace) -> None:
    backbone = load_backbone()
    tokenizer = load_tokenizer(backbone.path)
    impls = args.impls.split(",")
    for k in (int(x) for x in args.k.split(",")):
        for name in args.tasks.split(","):
            for seed in (int(x) for x in args.seeds.split(",")):
                todo = [i for i in impls if not _path(args.out, name, k, i, seed).is_file()]
                if not todo:
                    continue
                data = glue_task_data(args.data_dir, name, k, seed, args.dev_size)
                task = encode_task(tokenizer, data, 128)
                for impl in todo:
                    start = time.perf_counter()
                    record = run_one(impl, task, backbone, seed, (name, k), args.study_runs)
                    record.update(
                        impl=impl, task=name, k=k, seed=seed, dev_size=len(task.dev),
                        wall_seconds=time.perf_counter() - start, threads=torch.get_num_threads(),
                    )  # fmt: skip
                    _write(_path(args.out, name, k, impl, seed), record)
                    print(f"{name} k={k} s{seed} {impl}: test {record['test_main']:.4f} "
                          f"dev {record['dev_main']:.4f} {record['wall_seconds']:.0f} s",
                          flush=True)  # fmt: skip


def _path(out: Path, task: str, k: int, impl: str, seed: int) -> Path:
    return out / "runs" / f"{task}-k{k}-{impl}-s{seed}.json"


def _write(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=1))
    os.replace(tmp, path)


if __name__ == "__main__":
    raise SystemExit(main())
