"""The low-resource study: tasks x K x methods x seeds, one JSON record per finished run.

Finished runs are skipped, so an interrupted study resumes where it stopped. Runs go in
the order K, seed, task, method: a study cut short still holds every method for the seeds
it reached.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field, fields, replace
from functools import lru_cache
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import torch

from adapters.backbone import Backbone, load_backbone
from adapters.config import MethodConfig
from adapters.data import load_glue_split, low_resource_split, normalise_task_name
from adapters.data.glue import GLUE_TASKS
from adapters.errors import ConfigError
from adapters.tokenization import load_tokenizer
from adapters.training.defaults import TrainSettings
from adapters.training.run import EncodedTask, encode_task, train_encoded
from adapters.training.tasks import TaskData

RUNS_DIR = "runs"


@dataclass(frozen=True)
class RunKey:
    task: str
    k: int
    method: str
    seed: int

    @property
    def run_id(self) -> str:
        return f"{self.task}-k{self.k}-{self.method}-s{self.seed}"


@dataclass(frozen=True)
class StudyConfig:
    tasks: tuple[str, ...]
    ks: tuple[int, ...]
    methods: tuple[str, ...]
    seeds: tuple[int, ...]
    data_dir: Path
    out: Path
    settings: TrainSettings = field(default_factory=TrainSettings)
    # Per-K values, e.g. {"epochs": {100: 10, 1000: 4}, "eval_every": {100: 14}}: they
    # override `settings` (and `dev_size`) for runs with that K.
    by_k: dict[str, dict[int, int]] = field(default_factory=dict)
    dev_size: int = 500
    backbone: str | None = None
    workers: int = 1
    threads: int = 1
    device: str = "cpu"

    def grid(self) -> list[RunKey]:
        return [
            RunKey(task, k, method, seed)
            for k in self.ks
            for seed in self.seeds
            for task in self.tasks
            for method in self.methods
        ]

    def __post_init__(self) -> None:
        object.__setattr__(self, "tasks", tuple(normalise_task_name(t) for t in self.tasks))
        for method in self.methods:
            MethodConfig.preset(method)  # names a wrong method before anything runs
        known = {f.name for f in fields(TrainSettings)} | {"dev_size"}
        unknown = sorted(set(self.by_k) - known)
        if unknown:
            raise ConfigError(f"unknown per-K settings {unknown}")

    def value(self, name: str, k: int):
        default = self.dev_size if name == "dev_size" else getattr(self.settings, name)
        return self.by_k.get(name, {}).get(k, default)

    def settings_for(self, key: RunKey) -> TrainSettings:
        """The settings of one cell, the default patience fixed for K training examples."""
        names = [n for n in self.by_k if n != "dev_size"]
        cell = replace(self.settings, seed=key.seed, **{n: self.value(n, key.k) for n in names})
        return cell.resolved(key.k)

    def record_path(self, key: RunKey) -> Path:
        return self.out / RUNS_DIR / f"{key.run_id}.json"

    def pending(self) -> list[RunKey]:
        """Grid cells without a record made with this study's settings."""
        return [key for key in self.grid() if not self.finished(key)]

    def finished(self, key: RunKey) -> bool:
        path = self.record_path(key)
        if not path.is_file():
            return False
        try:
            record = json.loads(path.read_text())
        except ValueError:  # a half-written or foreign file: run the cell again
            return False
        settings = self.settings_for(key)
        same_settings = record.get("settings") == settings.to_dict()
        # `lr: None` means the method's default, which can change: compare the rate used.
        same_lr = record.get("lr") == settings.learning_rate(MethodConfig.preset(key.method))
        return (
            same_settings
            and same_lr
            and record.get("dev_size_cap") == self.value("dev_size", key.k)
        )


@lru_cache(maxsize=8)
def _glue(data_dir: str, task: str):
    return load_glue_split(Path(data_dir), task, "train"), load_glue_split(
        Path(data_dir), task, "dev"
    )


@lru_cache(maxsize=4)
def _encoded(data_dir: str, task: str, k: int, seed: int, dev_size: int, max_length: int, tok):
    train, test = _glue(data_dir, task)
    split = low_resource_split(train, test, k, seed, dev_size)
    data = TaskData(GLUE_TASKS[task], split.train, split.dev, split.test)
    return encode_task(tok, data, max_length)


def run_one(config: StudyConfig, key: RunKey, backbone: Backbone, tokenizer) -> dict[str, Any]:
    """Train and test one grid cell; write and return its record."""
    settings = config.settings_for(key)
    task: EncodedTask = _encoded(
        str(config.data_dir), key.task, key.k, key.seed, config.value("dev_size", key.k),
        settings.max_length, tokenizer,
    )  # fmt: skip
    cfg = MethodConfig.preset(key.method)
    start = time.perf_counter()
    outcome = train_encoded(task, cfg, backbone, settings)
    record = {
        "run_id": key.run_id,
        "task": key.task,
        "k": key.k,
        "method": key.method,
        "method_name": cfg.name,
        "seed": key.seed,
        **outcome.summary(),
        "wall_seconds": time.perf_counter() - start,
        "train_size": len(task.train),
        "dev_size": len(task.dev),
        "dev_size_cap": config.value("dev_size", key.k),
        "test_size": len(task.test),
        "settings": settings.to_dict(),
        "backbone": backbone.name,
        "threads": torch.get_num_threads(),
        "device": str(outcome.learner.device),
        "machine": f"{platform.machine()} {os.cpu_count()} cpu",
    }
    _write_json(config.record_path(key), record)
    return record


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Write to a temporary name then rename, so a record is never half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


_WORKER: dict[str, Any] = {}


def _init_worker(backbone: str | None, threads: int, device: str = "cpu") -> None:
    torch.set_num_threads(threads)
    _WORKER["backbone"] = load_backbone(backbone, device=device)
    _WORKER["tokenizer"] = load_tokenizer(_WORKER["backbone"].path)


def _worker_run(config: StudyConfig, key: RunKey) -> dict[str, Any]:
    return run_one(config, key, _WORKER["backbone"], _WORKER["tokenizer"])


Report = Callable[[int, int, dict[str, Any]], None]  # (done, total, record)


def run_study(
    config: StudyConfig,
    report: Report | None = None,
    backbone: Backbone | None = None,
    tokenizer=None,
) -> int:
    """Run every pending grid cell; returns how many ran.

    With one worker the runs happen in this process, each skipped if its record appeared
    meanwhile (several study processes can share one grid), on `backbone` and `tokenizer` when
    given (else `config.backbone` is loaded); with more, each worker process loads its own.
    """
    todo = config.pending()
    if not todo:
        return 0
    if config.workers <= 1:
        if backbone is None:
            _init_worker(config.backbone, config.threads, config.device)
            backbone, tokenizer = _WORKER["backbone"], _WORKER["tokenizer"]
        ran = 0
        for done, key in enumerate(todo, start=1):
            if config.finished(key):  # another study process on the same grid got there first
                continue
            record = run_one(config, key, backbone, tokenizer)
            ran += 1
            if report:
                report(done, len(todo), record)
        return ran
    context = get_context("spawn")
    with ProcessPoolExecutor(
        config.workers, context, _init_worker, (config.backbone, config.threads, config.device)
    ) as pool:
        futures = [pool.submit(_worker_run, config, key) for key in todo]
        for done, future in enumerate(as_completed(futures), start=1):
            record = future.result()
            if report:
                report(done, len(todo), record)
    return len(todo)
