"""Readers for the eight GLUE tasks in their official TSV layout (`glue_data/<TASK>/*.tsv`)."""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from adapters.data.errors import DataError
from adapters.data.examples import Example, TaskSpec

logger = logging.getLogger(__name__)

LAST = -1


@dataclass(frozen=True)
class _TsvFormat:
    """Where a task's texts and label sit in its TSV files."""

    dir_name: str
    text_col: int
    pair_col: int | None
    label_col: int
    label_header: str | None  # None: the file has no header row
    raw_labels: tuple[str, ...] = ()  # label cells in class-id order; empty for regression
    columns: int | None = None  # column count of a headerless file
    skip_malformed: bool = False  # skip (and count) rows with the wrong column count


_BINARY = ("0", "1")
_ENTAILMENT = ("entailment", "not_entailment")
_NLI = ("entailment", "neutral", "contradiction")
_STSB_RANGE = (0.0, 5.0)

_FORMATS: dict[str, _TsvFormat] = {
    "cola": _TsvFormat("CoLA", 3, None, 1, None, _BINARY, columns=4),
    "sst2": _TsvFormat("SST-2", 0, None, 1, "label", _BINARY),
    "mrpc": _TsvFormat("MRPC", 3, 4, 0, "Quality", _BINARY),
    "stsb": _TsvFormat("STS-B", 7, 8, LAST, "score"),
    "qqp": _TsvFormat("QQP", 3, 4, LAST, "is_duplicate", _BINARY, skip_malformed=True),
    "mnli": _TsvFormat("MNLI", 8, 9, LAST, "gold_label", _NLI),
    "qnli": _TsvFormat("QNLI", 1, 2, LAST, "label", _ENTAILMENT),
    "rte": _TsvFormat("RTE", 1, 2, LAST, "label", _ENTAILMENT),
}

_ACCURACY = ("accuracy",)
_F1_ACC = ("f1", "accuracy")

GLUE_TASKS: dict[str, TaskSpec] = {
    "cola": TaskSpec("cola", ("unacceptable", "acceptable"), False, ("matthews",), "matthews"),
    "sst2": TaskSpec("sst2", ("negative", "positive"), False, _ACCURACY, "accuracy"),
    "mrpc": TaskSpec("mrpc", ("not_paraphrase", "paraphrase"), False, _F1_ACC, "f1"),
    "stsb": TaskSpec("stsb", (), True, ("pearson", "spearman"), "spearman"),
    "qqp": TaskSpec("qqp", ("not_duplicate", "duplicate"), False, _F1_ACC, "f1"),
    "mnli": TaskSpec("mnli", _NLI, False, _ACCURACY, "accuracy"),
    "qnli": TaskSpec("qnli", _ENTAILMENT, False, _ACCURACY, "accuracy"),
    "rte": TaskSpec("rte", _ENTAILMENT, False, _ACCURACY, "accuracy"),
}

_SPLIT_FILES = {"train": "train.tsv", "dev": "dev.tsv"}
_MNLI_SPLIT_FILES = {
    "train": "train.tsv",
    "dev": "dev_matched.tsv",
    "dev_matched": "dev_matched.tsv",
    "dev_mismatched": "dev_mismatched.tsv",
}


@dataclass(frozen=True)
class GlueFile:
    """The examples read from one TSV file and the number of malformed rows skipped."""

    examples: list[Example]
    skipped_rows: int


def normalise_task_name(task: str) -> str:
    """Map a GLUE task name or alias ("SST-2", "sts-b", "CoLA") to its key in `GLUE_TASKS`."""
    key = "".join(ch for ch in task.lower() if ch.isalnum())
    if key not in GLUE_TASKS:
        raise DataError(f"unknown GLUE task {task!r}; expected one of {sorted(GLUE_TASKS)}")
    return key


def glue_dir_name(task: str) -> str:
    """The task's folder name in the official distribution, e.g. "SST-2"."""
    return _FORMATS[normalise_task_name(task)].dir_name


def glue_split_path(data_dir: Path, task: str, split: str) -> Path:
    """Path of a split's TSV file under the GLUE root `data_dir`."""
    key = normalise_task_name(task)
    files = _MNLI_SPLIT_FILES if key == "mnli" else _SPLIT_FILES
    if split not in files:
        raise DataError(
            f"unknown split {split!r} for GLUE task {key!r}; expected one of {list(files)}"
        )
    return Path(data_dir) / _FORMATS[key].dir_name / files[split]


def load_glue_split(data_dir: Path, task: str, split: str) -> list[Example]:
    """Read one split ("train", "dev"; MNLI also "dev_mismatched") of a GLUE task."""
    path = glue_split_path(data_dir, task, split)
    result = read_glue_tsv(path, task)
    if result.skipped_rows:
        logger.warning("%s: skipped %d malformed rows", path, result.skipped_rows)
    return result.examples


def read_glue_tsv(path: Path, task: str) -> GlueFile:
    """Parse one GLUE TSV file of `task`; bad rows raise `DataError` naming file and line."""
    key = normalise_task_name(task)
    fmt = _FORMATS[key]
    path = Path(path)
    if not path.is_file():
        raise DataError(f"GLUE {fmt.dir_name} file not found: {path}")
    examples: list[Example] = []
    skipped = 0
    with path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quotechar=None)
        columns = fmt.columns if fmt.label_header is None else _read_header(reader, fmt, path)
        for row in reader:
            if not row:
                continue
            if len(row) != columns:
                if fmt.skip_malformed:
                    skipped += 1
                    continue
                raise DataError(
                    f"{path}:{reader.line_num}: expected {columns} columns, got {len(row)}"
                )
            examples.append(_parse_row(row, fmt, f"{path}:{reader.line_num}"))
    if not examples:
        raise DataError(f"{path}: no examples")
    return GlueFile(examples, skipped)


def _read_header(reader: Iterator[list[str]], fmt: _TsvFormat, path: Path) -> int:
    """Check the header row names the label column where expected; return its width."""
    header = next(reader, None)
    if not header:
        raise DataError(f"{path}: empty file, expected a header row")
    label = header[fmt.label_col].strip() if len(header) > max(fmt.label_col, 0) else None
    if label != fmt.label_header:
        raise DataError(f"{path}:1: expected label column {fmt.label_header!r}, header is {header}")
    return len(header)


def _parse_row(row: list[str], fmt: _TsvFormat, where: str) -> Example:
    pair = row[fmt.pair_col] if fmt.pair_col is not None else None
    return Example(row[fmt.text_col], pair, _parse_label(row[fmt.label_col].strip(), fmt, where))


def _parse_label(cell: str, fmt: _TsvFormat, where: str) -> int | float:
    if fmt.raw_labels:
        if cell not in fmt.raw_labels:
            raise DataError(f"{where}: unknown label {cell!r}; expected one of {fmt.raw_labels}")
        return fmt.raw_labels.index(cell)
    try:
        score = float(cell)
    except ValueError:
        raise DataError(f"{where}: label {cell!r} is not a number") from None
    low, high = _STSB_RANGE
    if not math.isfinite(score) or not low <= score <= high:
        raise DataError(f"{where}: score {score} is outside [{low}, {high}]")
    return score
