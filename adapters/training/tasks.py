"""A run's data: a GLUE task under the low-resource protocol, or the user's own files."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from adapters.data import (
    GLUE_TASKS,
    DataError,
    Example,
    TaskSpec,
    load_generic,
    load_glue_split,
    low_resource_split,
    normalise_task_name,
)
from adapters.training.defaults import DEV_SIZE

HELD_OUT_FRACTION = 0.1  # of a user's training file, as dev, when no dev file and no K


@dataclass
class TaskData:
    """Train, dev (checkpoint selection) and test (reported) examples of one task."""

    spec: TaskSpec
    train: list[Example]
    dev: list[Example]
    test: list[Example]


def glue_task_data(
    data_dir: Path | str, task: str, k: int | None, seed: int, dev_size: int = DEV_SIZE
) -> TaskData:
    """K training examples and the next `dev_size` from the shuffled train split; GLUE dev
    is the test set (the paper's protocol). `k=None` trains on everything but the dev set."""
    key = normalise_task_name(task)
    train = load_glue_split(Path(data_dir), key, "train")
    test = load_glue_split(Path(data_dir), key, "dev")
    split = low_resource_split(train, test, k, seed, dev_size)
    return TaskData(GLUE_TASKS[key], split.train, split.dev, split.test)


def file_task_data(
    train_file: Path | str,
    dev_file: Path | str | None = None,
    test_file: Path | str | None = None,
    labels: list[str] | None = None,
    regression: bool = False,
    name: str | None = None,
    k: int | None = None,
    seed: int = 0,
    dev_size: int = DEV_SIZE,
) -> TaskData:
    """A task from CSV/TSV/JSONL files (`text`, optional `text_pair`, `label`).

    Without a dev file the dev set is held out of the shuffled training file: the `dev_size`
    examples after the first K, or, without K, 10% of it (at most `dev_size`).
    """
    train, spec = load_generic(train_file, labels, regression, name)
    names = list(spec.label_names) or None

    def read(path: Path | str | None) -> list[Example]:
        if path is None:
            return []
        return load_generic(path, names, regression, spec.name)[0]

    test = read(test_file)
    if dev_file is not None:
        shuffled = list(train)
        random.Random(seed).shuffle(shuffled)
        return TaskData(spec, shuffled[:k] if k else shuffled, read(dev_file), test)
    if k is None:
        held = min(dev_size, max(1, int(len(train) * HELD_OUT_FRACTION)))
        if held >= len(train):
            raise DataError(f"{train_file}: too few examples ({len(train)}) to hold out a dev set")
        split = low_resource_split(train, test, None, seed, held)
        return TaskData(spec, split.train, split.dev, test)
    split = low_resource_split(train, test, k, seed, dev_size)
    return TaskData(spec, split.train, split.dev, test)
