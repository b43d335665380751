"""A run's data from users' files, renamed columns, and per-K study options."""

from __future__ import annotations

import json

import pytest

from adapters.data import DataError
from adapters.training.columns import column_map, renamed_copy
from adapters.training.tasks import file_task_data
from cli.text_io import stdin_rows
from cli.training import per_k


def _csv(path, n, header="text,label"):
    rows = [f"sentence {i},{'pos' if i % 2 else 'neg'}" for i in range(n)]
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


@pytest.mark.parametrize(
    ("k", "dev_size", "sizes"),
    [(None, 1000, (45, 5)), (None, 2, (48, 2)), (10, 1000, (10, 40)), (10, 7, (10, 7))],
)
def test_dev_is_held_out_of_the_training_file(tmp_path, k, dev_size, sizes):
    data = file_task_data(_csv(tmp_path / "t.csv", 50), k=k, dev_size=dev_size, seed=3)
    assert (len(data.train), len(data.dev)) == sizes
    assert not {e.text for e in data.train} & {e.text for e in data.dev}
    assert data.spec.label_names == ("neg", "pos") and data.test == []


def test_dev_and_test_files_use_the_training_labels(tmp_path):
    train, dev = _csv(tmp_path / "a.csv", 20), _csv(tmp_path / "b.csv", 3)
    data = file_task_data(train, dev_file=dev, test_file=dev, k=5, name="mine")
    assert (len(data.train), len(data.dev), len(data.test)) == (5, 3, 3)
    assert data.spec.name == "mine" and [e.label for e in data.dev] == [0, 1, 0]


def test_a_one_row_file_cannot_hold_out_a_dev_set(tmp_path):
    with pytest.raises(DataError, match="too few"):
        file_task_data(_csv(tmp_path / "t.csv", 1), labels=["neg", "pos"])


def test_renamed_columns_csv_and_jsonl(tmp_path):
    mapping = column_map("review", None, "stars")
    assert mapping == {"review": "text", "stars": "label"}
    assert column_map("text", "text_pair", "label") == {}
    src = _csv(tmp_path / "r.csv", 4, header="review,stars")
    copy = renamed_copy(src, mapping, tmp_path)
    assert copy != src and copy.read_text().splitlines()[0] == "text,label"
    jsonl = tmp_path / "r.jsonl"
    huge = '{"review": "y", "stars": ' + "9" * 5000 + "}"  # over the int-from-text limit
    jsonl.write_text(f'{{"review": "x", "stars": 1}}\nnot json\n{huge}\n')
    lines = renamed_copy(jsonl, mapping, tmp_path).read_text().splitlines()
    assert json.loads(lines[0]) == {"text": "x", "label": 1} and lines[1:] == ["not json", huge]
    with pytest.raises(DataError, match="missing columns"):
        renamed_copy(src, {"nope": "text"}, tmp_path)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("10", {0: 10}), ("100:20,1000:5", {0: 7, 100: 20, 1000: 5}), ("3,100:4", {0: 3, 100: 4})],
)
def test_per_k_options(text, expected):
    assert per_k(text, 7) == expected


def test_stdin_rows_reads_texts_or_tab_separated_pairs():
    import io

    assert stdin_rows(io.StringIO("a\n\nb\n")) == (["a", "b"], None)
    assert stdin_rows(io.StringIO("a\tb\nc\td\n")) == (["a", "c"], ["b", "d"])
