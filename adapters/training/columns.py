"""Rename a data file's columns to the reader's `text` / `text_pair` / `label`.

The generic reader expects those exact names; a file with other names is rewritten into a
temporary copy with renamed columns (the user's file is never changed).
"""

from __future__ import annotations

import csv
import json
import tempfile
from pathlib import Path

from adapters.data import DataError
from adapters.data.generic import LABEL, TEXT, TEXT_PAIR

_DELIMITERS = {".csv": ",", ".tsv": "\t"}


def column_map(text: str | None, pair: str | None, label: str | None) -> dict[str, str]:
    """{user's column: reader's column} for the names that differ."""
    wanted = {text: TEXT, pair: TEXT_PAIR, label: LABEL}
    return {src: dst for src, dst in wanted.items() if src and src != dst}


def renamed_copy(path: Path | str, mapping: dict[str, str], workdir: Path) -> Path:
    """A copy of `path` in `workdir` with columns renamed by `mapping` (or `path` itself)."""
    path = Path(path)
    if not mapping:
        return path
    target = Path(tempfile.mkstemp(suffix=path.suffix, dir=workdir)[1])
    suffix = path.suffix.lower()
    if suffix in _DELIMITERS:
        _rename_csv(path, target, mapping, _DELIMITERS[suffix])
    else:
        _rename_jsonl(path, target, mapping)
    return target


def _rename_csv(path: Path, target: Path, mapping: dict[str, str], delimiter: str) -> None:
    with path.open(encoding="utf-8-sig", newline="") as f, target.open("w", newline="") as g:
        reader = csv.reader(f, delimiter=delimiter)
        header = [c.strip() for c in next(reader, [])]
        missing = [c for c in mapping if c not in header]
        if missing:
            raise DataError(f"{path}: missing columns {missing}; header is {header}")
        writer = csv.writer(g, delimiter=delimiter)
        writer.writerow([mapping.get(c, c) for c in header])
        writer.writerows(reader)


def _rename_jsonl(path: Path, target: Path, mapping: dict[str, str]) -> None:
    """Lines that are not JSON objects are copied as they are, for the reader to report."""
    with path.open(encoding="utf-8-sig") as f, target.open("w") as g:
        for line in f:
            try:
                record = json.loads(line)
            except (ValueError, RecursionError):  # the reader reports the line
                g.write(line)
                continue
            if not isinstance(record, dict):
                g.write(line)
                continue
            g.write(json.dumps({mapping.get(k, k): v for k, v in record.items()}) + "\n")
