"""Test helpers: small CSV files to train on."""

from __future__ import annotations

from pathlib import Path

from adapters.training.demo import NEGATIVE, POSITIVE

REVIEW_COLUMNS = "--text-column review --label-column sentiment"


def _review_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    lines = ["review,sentiment"] + [f'"{text}",{label}' for text, label in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def review_csv_files(folder: Path) -> tuple[Path, Path]:
    """A small sentiment CSV to train on (the demo's reviews, twice) and a test CSV (every
    third review); the columns are `review` and `sentiment` (neg/pos)."""
    rows = [(t, "pos") for t in POSITIVE] + [(t, "neg") for t in NEGATIVE]
    return _review_csv(folder / "reviews.csv", rows * 2), _review_csv(
        folder / "reviews_test.csv", rows[::3]
    )
