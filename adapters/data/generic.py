"""Readers for users' own tasks: CSV/TSV with a header row, or JSONL, with `text`/`label`."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from adapters.constants import MAX_LABELS
from adapters.data.errors import DataError
from adapters.data.examples import Example, TaskSpec

TEXT, TEXT_PAIR, LABEL = "text", "text_pair", "label"
_DELIMITERS = {".csv": ",", ".tsv": "\t"}
_JSONL_SUFFIXES = (".jsonl", ".ndjson")

Record = tuple[str, dict[str, Any]]  # ("file:line", fields)


def load_generic(
    path: Path | str,
    label_names: Sequence[str] | None = None,
    regression: bool = False,
    name: str | None = None,
) -> tuple[list[Example], TaskSpec]:
    """Read a task file; returns its examples and a `TaskSpec` named `name` (default: stem).

    Classification labels are matched as strings against `label_names`; when those are not
    given they are the file's distinct labels, sorted (numerically when all are integers).
    A task is a regression task only when `regression` is set.
    """
    path = Path(path)
    if regression and label_names:
        raise DataError("label_names cannot be given for a regression task")
    records = _read_records(path)
    if not records:
        raise DataError(f"{path}: no examples")
    task = name or path.stem
    if regression:
        examples = [_example(where, rec, _score(where, rec[LABEL])) for where, rec in records]
        return examples, TaskSpec(task, (), True, ("pearson", "spearman"), "spearman")
    keys = [_label_key(where, rec[LABEL]) for where, rec in records]
    names = tuple(label_names) if label_names else _infer_label_names(path, keys)
    if len(names) > MAX_LABELS:
        raise DataError(f"{path}: {len(names)} labels, at most {MAX_LABELS} are supported")
    ids = {label: i for i, label in enumerate(names)}
    examples = []
    for (where, rec), key in zip(records, keys, strict=True):
        if key not in ids:
            raise DataError(f"{where}: unknown label {key!r}; expected one of {list(names)}")
        examples.append(_example(where, rec, ids[key]))
    metrics = ("accuracy", "f1") if len(names) == 2 else ("accuracy",)
    return examples, TaskSpec(task, names, False, metrics, "accuracy")


def _read_records(path: Path) -> list[Record]:
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    suffix = path.suffix.lower()
    if suffix in _DELIMITERS:
        return _read_csv(path, _DELIMITERS[suffix])
    if suffix in _JSONL_SUFFIXES:
        return _read_jsonl(path)
    raise DataError(f"{path}: unsupported file type {suffix!r}; use .csv, .tsv or .jsonl")


def _read_csv(path: Path, delimiter: str) -> list[Record]:
    with path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f, delimiter=delimiter)
        if not reader.fieldnames:
            raise DataError(f"{path}: empty file, expected a header row")
        reader.fieldnames = [column.strip() for column in reader.fieldnames]
        missing = [c for c in (TEXT, LABEL) if c not in reader.fieldnames]
        if missing:
            raise DataError(f"{path}: missing columns {missing}; header is {reader.fieldnames}")
        return [(f"{path}:{reader.line_num}", row) for row in reader]


def _read_jsonl(path: Path) -> list[Record]:
    records: list[Record] = []
    with path.open(encoding="utf-8-sig") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                record = json.loads(line)
            except (ValueError, RecursionError) as exc:  # also an over-long integer
                msg = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
                raise DataError(f"{where}: invalid JSON ({msg})") from None
            if not isinstance(record, dict):
                raise DataError(f"{where}: expected a JSON object, got {type(record).__name__}")
            missing = [k for k in (TEXT, LABEL) if k not in record]
            if missing:
                raise DataError(f"{where}: missing keys {missing}")
            records.append((where, record))
    return records


def _example(where: str, record: dict[str, Any], label: int | float) -> Example:
    text = record.get(TEXT)
    if not isinstance(text, str) or not text.strip():
        raise DataError(f"{where}: {TEXT!r} must be a non-empty string")
    pair = record.get(TEXT_PAIR)
    if pair is not None and not isinstance(pair, str):
        raise DataError(f"{where}: {TEXT_PAIR!r} must be a string")
    return Example(text, pair or None, label)


def _label_key(where: str, value: Any) -> str:
    """A class label as a string: "pos", 1 and "1" are matched as strings."""
    if isinstance(value, str) and value.strip():
        return value.strip()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    raise DataError(f"{where}: invalid class label {value!r}")


def _score(where: str, value: Any) -> float:
    if isinstance(value, bool) or value is None:
        raise DataError(f"{where}: invalid regression label {value!r}")
    try:
        score = float(value)
    except (TypeError, ValueError):
        raise DataError(f"{where}: regression label {value!r} is not a number") from None
    if not math.isfinite(score):
        raise DataError(f"{where}: regression label {value!r} is not finite")
    return score


def _infer_label_names(path: Path, keys: list[str]) -> tuple[str, ...]:
    distinct = set(keys)
    if len(distinct) < 2:
        raise DataError(f"{path}: found labels {sorted(distinct)}; a task needs two or more")
    if all(_is_int(k) for k in distinct):
        return tuple(sorted(distinct, key=int))
    return tuple(sorted(distinct))


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True
