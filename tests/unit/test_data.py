"""GLUE and generic readers on tiny files in the official layouts, and low-resource sampling."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from adapters.data import (
    GLUE_TASKS,
    DataError,
    Example,
    glue_dir_name,
    load_generic,
    load_glue_split,
    low_resource_split,
    normalise_task_name,
    read_glue_tsv,
)

GLUE_ROOT = Path(__file__).resolve().parents[2].parent / "shared/data/glue"

STSB_HEADER = (
    "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore"
)
MNLI_LEFT = "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse"
MNLI_HEADER = f"{MNLI_LEFT}\tsentence1_parse\tsentence2_parse\tsentence1\tsentence2"
MNLI_TRAIN_HEADER = f"{MNLI_HEADER}\tlabel1\tgold_label"
MNLI_DEV_HEADER = f"{MNLI_HEADER}\tlabel1\tlabel2\tlabel3\tlabel4\tlabel5\tgold_label"
MNLI_PARSES = "( ( A b ) )\t( B )\t(ROOT (S a))\t(ROOT (S b))"


def write(path: Path, lines: list[str], bom: bool = False, final_newline: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "\n".join(lines) + ("\n" if final_newline else "")
    path.write_text(("\ufeff" if bom else "") + text, encoding="utf-8")
    return path


# (task, folder, file, lines, kwargs for write, expected examples)
GLUE_CASES = [
    (
        "cola",
        "CoLA",
        "train.tsv",
        ["gj04\t1\t\tThe sailors rode the breeze.", 'gj04\t0\t*\tBill "ate" the.'],
        {"final_newline": False},
        [Example("The sailors rode the breeze.", None, 1), Example('Bill "ate" the.', None, 0)],
    ),
    (
        "sst2",
        "SST-2",
        "dev.tsv",
        ["sentence\tlabel", "it 's a charming journey . \t1", 'bleak " and desperate \t0'],
        {},
        [
            Example("it 's a charming journey . ", None, 1),
            Example('bleak " and desperate ', None, 0),
        ],
    ),
    (
        "mrpc",
        "MRPC",
        "train.tsv",
        [
            "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String",
            '1\t702876\t702977\tHe called " the witness " .\tThe " witness " .',
            "0\t2108705\t2108831\tYucaipa owned it .\tYucaipa bought it .",
        ],
        {"bom": True},
        [
            Example('He called " the witness " .', 'The " witness " .', 1),
            Example("Yucaipa owned it .", "Yucaipa bought it .", 0),
        ],
    ),
    (
        "stsb",
        "STS-B",
        "dev.tsv",
        [
            STSB_HEADER,
            "0\tmain-captions\tMSRvid\t2012test\t0000\tnone\tnone\tA man.\tA man.\t5.000",
            "1\tmain-news\theadlines\t2013\t0002\tnone\tnone\tA cat.\tA plane.\t0.250",
        ],
        {},
        [Example("A man.", "A man.", 5.0), Example("A cat.", "A plane.", 0.25)],
    ),
    (
        "qqp",
        "QQP",
        "train.tsv",
        [
            "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate",
            "133273\t213221\t213222\tHow is life?\tHow are you?\t0",
            "402555\t536040\t536041\tWhat is 1+1?\tWhat's 1 plus 1?\t1",
        ],
        {},
        [
            Example("How is life?", "How are you?", 0),
            Example("What is 1+1?", "What's 1 plus 1?", 1),
        ],
    ),
    (
        "mnli",
        "MNLI",
        "train.tsv",
        [
            MNLI_TRAIN_HEADER,
            f"0\t31193\t31193n\tgovernment\t{MNLI_PARSES}\tIt rains.\tIt is wet.\tneutral\tneutral",
            f"1\t101457\t101457e\ttelephone\t{MNLI_PARSES}\tYes.\tNo.\tcontradiction\tcontradiction",
        ],
        {},
        [Example("It rains.", "It is wet.", 1), Example("Yes.", "No.", 2)],
    ),
    (
        "qnli",
        "QNLI",
        "dev.tsv",
        [
            "index\tquestion\tsentence\tlabel",
            "0\tWhat came into force?\tThe law came into force.\tentailment",
            "1\tWho won?\tIt rained.\tnot_entailment",
        ],
        {},
        [
            Example("What came into force?", "The law came into force.", 0),
            Example("Who won?", "It rained.", 1),
        ],
    ),
    (
        "rte",
        "RTE",
        "train.tsv",
        [
            "index\tsentence1\tsentence2\tlabel",
            "0\tNo Weapons Found in Iraq Yet.\tWeapons Found in Iraq.\tnot_entailment",
            "1\tA place of sorrow.\tPope Benedict XVI leads.\tentailment",
        ],
        {},
        [
            Example("No Weapons Found in Iraq Yet.", "Weapons Found in Iraq.", 1),
            Example("A place of sorrow.", "Pope Benedict XVI leads.", 0),
        ],
    ),
]


@pytest.mark.parametrize(
    ("task", "folder", "name", "lines", "options", "expected"),
    GLUE_CASES,
    ids=[case[0] for case in GLUE_CASES],
)
def test_glue_official_formats(tmp_path, task, folder, name, lines, options, expected) -> None:
    write(tmp_path / folder / name, lines, **options)
    split = name.removesuffix(".tsv")
    assert load_glue_split(tmp_path, task, split) == expected
    assert glue_dir_name(task) == folder


def test_mnli_dev_splits(tmp_path) -> None:
    row = f"0\t1\t1e\tfiction\t{MNLI_PARSES}\tA.\tB.\tneutral\tneutral\tneutral\tneutral\tneutral"
    write(tmp_path / "MNLI" / "dev_matched.tsv", [MNLI_DEV_HEADER, f"{row}\tentailment"])
    write(tmp_path / "MNLI" / "dev_mismatched.tsv", [MNLI_DEV_HEADER, f"{row}\tcontradiction"])
    assert load_glue_split(tmp_path, "MNLI", "dev") == [Example("A.", "B.", 0)]
    assert load_glue_split(tmp_path, "mnli", "dev_matched") == [Example("A.", "B.", 0)]
    assert load_glue_split(tmp_path, "mnli", "dev_mismatched") == [Example("A.", "B.", 2)]


def test_qqp_skips_and_counts_malformed_rows(tmp_path) -> None:
    path = write(
        tmp_path / "QQP" / "train.tsv",
        [
            "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate",
            "1\t2\t3\tWhy?\tHow?\t0",
            "4\t5\t6\tA question split",
            "over two lines?\tAnother?\t1",
            "7\t8\t9\tWho?\tWhom?\t1",
        ],
    )
    result = read_glue_tsv(path, "QQP")
    assert result.skipped_rows == 2
    assert result.examples == [Example("Why?", "How?", 0), Example("Who?", "Whom?", 1)]
    assert load_glue_split(tmp_path, "qqp", "train") == result.examples


@pytest.mark.parametrize(
    ("alias", "key"),
    [("SST-2", "sst2"), ("sts-b", "stsb"), ("CoLA", "cola"), ("MNLI", "mnli"), (" rte ", "rte")],
)
def test_normalise_task_name(alias, key) -> None:
    assert normalise_task_name(alias) == key


def test_glue_tasks_specs() -> None:
    assert sorted(GLUE_TASKS) == sorted(
        ["cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte"]
    )
    main = {key: spec.main_metric for key, spec in GLUE_TASKS.items()}
    assert main == {
        "cola": "matthews",
        "sst2": "accuracy",
        "mrpc": "f1",
        "stsb": "spearman",
        "qqp": "f1",
        "mnli": "accuracy",
        "qnli": "accuracy",
        "rte": "accuracy",
    }
    assert GLUE_TASKS["stsb"].is_regression and GLUE_TASKS["stsb"].label_names == ()
    assert GLUE_TASKS["mnli"].label_names == ("entailment", "neutral", "contradiction")
    assert GLUE_TASKS["mrpc"].metric_names == ("f1", "accuracy")


@pytest.mark.parametrize(
    ("folder", "lines", "message"),
    [
        (
            "RTE",
            ["index\tsentence1\tsentence2\tlabel", "0\ta\tb\tentailment", "1\ta\tb\tmaybe"],
            ":3:",
        ),
        ("RTE", ["index\tsentence1\tsentence2\tlabel", "0\ta\tb"], "expected 4 columns"),
        ("RTE", ["index\tsentence1\tsentence2", "0\ta\tb"], "expected label column 'label'"),
        ("RTE", ["index\tsentence1\tsentence2\tlabel"], "no examples"),
        ("RTE", [], "empty file"),
        ("STS-B", [STSB_HEADER, "0\tg\tf\ty\to\ts\ts\ta\tb\t5.5"], "outside"),
        ("STS-B", [STSB_HEADER, "0\tg\tf\ty\to\ts\ts\ta\tb\thigh"], "not a number"),
        ("CoLA", ["gj04\t1\t\tFine.", "gj04\t2\t\tBad label."], "unknown label '2'"),
        ("CoLA", ["gj04\t1\tFine."], "expected 4 columns"),
    ],
)
def test_glue_bad_rows_name_file_and_line(tmp_path, folder, lines, message) -> None:
    task = folder.lower()
    write(tmp_path / folder / "train.tsv", lines, final_newline=bool(lines))
    with pytest.raises(DataError, match=message) as info:
        load_glue_split(tmp_path, task, "train")
    assert "train.tsv" in str(info.value)


def test_glue_missing_file_unknown_task_and_split(tmp_path) -> None:
    with pytest.raises(DataError, match="not found"):
        load_glue_split(tmp_path, "rte", "train")
    with pytest.raises(DataError, match="unknown GLUE task"):
        load_glue_split(tmp_path, "wnli", "train")
    with pytest.raises(DataError, match="unknown split"):
        load_glue_split(tmp_path, "rte", "test")
    with pytest.raises(DataError, match="unknown split"):
        load_glue_split(tmp_path, "rte", "dev_mismatched")


def test_data_error_is_value_error() -> None:
    assert issubclass(DataError, ValueError)


# --- generic files ---------------------------------------------------------------------------


def test_generic_csv_with_pairs_and_inferred_labels(tmp_path) -> None:
    path = write(
        tmp_path / "reviews.csv",
        ["text,text_pair,label", '"Good, really",ok,pos', "Bad,,neg", "Fine,sure,pos"],
        bom=True,
    )
    examples, spec = load_generic(path)
    assert examples == [
        Example("Good, really", "ok", 1),
        Example("Bad", None, 0),
        Example("Fine", "sure", 1),
    ]
    assert spec.name == "reviews"
    assert spec.label_names == ("neg", "pos")
    assert not spec.is_regression
    assert spec.metric_names == ("accuracy", "f1")


def test_generic_jsonl_with_given_labels(tmp_path) -> None:
    rows = [{"text": "a", "label": "b"}, {"text": "c", "text_pair": "d", "label": "a"}]
    path = write(tmp_path / "t.jsonl", [json.dumps(r) for r in rows] + [""])
    examples, spec = load_generic(path, label_names=["b", "a", "c"], name="topic")
    assert examples == [Example("a", None, 0), Example("c", "d", 1)]
    assert spec.name == "topic"
    assert spec.label_names == ("b", "a", "c")
    assert spec.metric_names == ("accuracy",)


def test_generic_integer_labels_sort_numerically(tmp_path) -> None:
    rows = [{"text": "x", "label": 10}, {"text": "y", "label": 2}, {"text": "z", "label": "0"}]
    path = write(tmp_path / "t.jsonl", [json.dumps(r) for r in rows])
    examples, spec = load_generic(path)
    assert spec.label_names == ("0", "2", "10")
    assert [e.label for e in examples] == [2, 1, 0]


def test_generic_regression(tmp_path) -> None:
    path = write(tmp_path / "scores.csv", ["label,text", "0.5,a", "3,b"])
    examples, spec = load_generic(path, regression=True)
    assert examples == [Example("a", None, 0.5), Example("b", None, 3.0)]
    assert spec.is_regression
    assert spec.label_names == ()
    assert spec.main_metric == "spearman"


@pytest.mark.parametrize(
    ("name", "lines", "kwargs", "message"),
    [
        ("a.csv", ["sentence,label", "x,1"], {}, r"missing columns \['text'\]"),
        ("a.csv", [], {}, "empty file"),
        ("a.csv", ["text,label"], {}, "no examples"),
        (
            "a.csv",
            ["text,label", "x,pos", "y,neg", "z,meh"],
            {"label_names": ["neg", "pos"]},
            ":4:",
        ),
        ("a.csv", ["text,label", "x,pos", "y,pos"], {}, "two or more"),
        ("a.csv", ["text,label", ",pos", "y,neg"], {}, "non-empty string"),
        ("a.csv", ["text,label", "x,high"], {"regression": True}, "not a number"),
        ("a.csv", ["text,label", "x,1"], {"regression": True, "label_names": ["a"]}, "regression"),
        ("a.jsonl", ['{"text": "x", "label": 1}', "{oops"], {}, ":2: invalid JSON"),
        ("a.jsonl", ['{"text": "x"}'], {}, r":1: missing keys \['label'\]"),
        ("a.jsonl", ["[1, 2]"], {}, "JSON object"),
        ("a.jsonl", ['{"text": "x", "label": ' + "9" * 5000 + "}"], {}, ":1: invalid JSON"),
        ("a.jsonl", ['{"text": ' + "[" * 100_000 + "]" * 100_000 + "}"], {}, ":1: invalid JSON"),
        ("a.jsonl", ['{"text": "x", "label": null}'], {}, "invalid class label"),
        ("a.txt", ["text,label"], {}, "unsupported file type"),
    ],
)
def test_generic_errors(tmp_path, name, lines, kwargs, message) -> None:
    path = write(tmp_path / name, lines, final_newline=bool(lines))
    with pytest.raises(DataError, match=message):
        load_generic(path, **kwargs)


def test_generic_missing_file(tmp_path) -> None:
    with pytest.raises(DataError, match="not found"):
        load_generic(tmp_path / "none.csv")


# --- low-resource sampling -------------------------------------------------------------------


def make_examples(n: int) -> list[Example]:
    return [Example(f"text {i}", None, i % 2) for i in range(n)]


def test_low_resource_split_is_deterministic_and_disjoint() -> None:
    train, test = make_examples(50), make_examples(5)
    original = list(train)
    first = low_resource_split(train, test, k=10, seed=3, dev_size=20)
    assert first == low_resource_split(train, test, k=10, seed=3, dev_size=20)
    assert first != low_resource_split(train, test, k=10, seed=4, dev_size=20)
    assert train == original
    assert (len(first.train), len(first.dev)) == (10, 20)
    assert not {e.text for e in first.train} & {e.text for e in first.dev}
    assert set(first.train) | set(first.dev) <= set(train)
    assert first.test == test


def test_low_resource_split_uses_python_random_shuffle() -> None:
    train = make_examples(30)
    expected = list(train)
    random.Random(7).shuffle(expected)
    split = low_resource_split(train, [], k=5, seed=7, dev_size=10)
    assert split.train == expected[:5]
    assert split.dev == expected[5:15]


def test_low_resource_split_small_dev_and_full_data() -> None:
    train = make_examples(12)
    small = low_resource_split(train, [], k=8, seed=1, dev_size=1000)
    assert (len(small.train), len(small.dev)) == (8, 4)
    full = low_resource_split(train, [], k=None, seed=1, dev_size=5)
    assert (len(full.train), len(full.dev)) == (7, 5)
    assert sorted(full.train + full.dev, key=lambda e: e.text) == sorted(
        train, key=lambda e: e.text
    )


@pytest.mark.parametrize(
    ("k", "dev_size", "message"),
    [
        (12, 10, "k=12"),
        (20, 10, "k=20"),
        (0, 10, "positive"),
        (None, 12, "no training"),
        (3, -1, ">= 0"),
    ],
)
def test_low_resource_split_errors(k, dev_size, message) -> None:
    with pytest.raises(DataError, match=message):
        low_resource_split(make_examples(12), [], k=k, seed=0, dev_size=dev_size)


# --- the real GLUE files ---------------------------------------------------------------------

# task, train rows, dev rows, examples with label id 1 in train and dev (None: regression)
GLUE_COUNTS = [
    ("cola", 8551, 1043, (6023, 721)),
    ("sst2", 67349, 872, (37569, 444)),
    ("mrpc", 3668, 408, (2474, 279)),
    ("stsb", 5749, 1500, None),
    ("rte", 2490, 277, (1241, 131)),
]


@pytest.mark.glue
@pytest.mark.parametrize(("task", "n_train", "n_dev", "ones"), GLUE_COUNTS)
def test_real_glue_row_counts(task, n_train, n_dev, ones) -> None:
    folder = GLUE_ROOT / glue_dir_name(task)
    if not folder.is_dir():
        pytest.skip(f"GLUE data not available: {folder} is absent")
    train = load_glue_split(GLUE_ROOT, task, "train")
    dev = load_glue_split(GLUE_ROOT, task, "dev")
    assert (len(train), len(dev)) == (n_train, n_dev)
    if ones is None:
        assert all(0.0 <= e.label <= 5.0 for e in train + dev)
        return
    assert (sum(e.label == 1 for e in train), sum(e.label == 1 for e in dev)) == ones
