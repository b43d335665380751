"""Metric values against hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from adapters.data import GLUE_TASKS, TaskSpec
from adapters.metrics import (
    accuracy,
    compute_metrics,
    f1,
    matthews_corrcoef,
    pearson,
    rank_average,
    spearman,
)


@pytest.mark.parametrize(
    ("pred", "gold", "expected"),
    [
        ([1, 0, 1, 1], [1, 0, 0, 1], 0.75),
        ([0, 0], [0, 0], 1.0),
        ([2, 1, 0], [0, 1, 2], 1 / 3),
        (np.array([[1], [0]]), [1, 1], 0.5),
    ],
)
def test_accuracy(pred, gold, expected) -> None:
    assert accuracy(pred, gold) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("pred", "gold", "expected"),
    [
        # tp=2 fp=1 fn=1: precision 2/3, recall 2/3
        ([1, 1, 1, 0, 0], [1, 1, 0, 1, 0], 2 / 3),
        # tp=1 fp=0 fn=2: precision 1, recall 1/3 -> 2 * (1/3) / (4/3)
        ([1, 0, 0, 0], [1, 1, 1, 0], 0.5),
        ([1, 1], [1, 1], 1.0),
        ([0, 0, 0], [1, 0, 1], 0.0),  # no positive predictions
        ([0, 0], [0, 0], 0.0),  # no positives at all
        ([1, 1], [0, 0], 0.0),
    ],
)
def test_f1(pred, gold, expected) -> None:
    assert f1(pred, gold) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("pred", "gold", "expected"),
    [
        # tp=2 tn=1 fp=1 fn=1: (2 - 1) / sqrt(3 * 3 * 2 * 2)
        ([1, 1, 1, 0, 0], [1, 1, 0, 1, 0], 1 / 6),
        # tp=3 tn=4 fp=1 fn=2: (12 - 2) / sqrt(4 * 5 * 5 * 6)
        ([1, 1, 1, 0, 0, 0, 0, 1, 0, 0], [1, 1, 1, 1, 1, 0, 0, 0, 0, 0], 10 / math.sqrt(600)),
        ([1, 0, 1, 0], [1, 0, 1, 0], 1.0),
        ([0, 1, 0, 1], [1, 0, 1, 0], -1.0),
        ([1, 1, 1, 1], [1, 0, 1, 0], 0.0),  # constant predictions
        ([1, 0, 1, 0], [0, 0, 0, 0], 0.0),  # constant labels
        # 3 classes, confusion [[1,1,0],[0,1,0],[0,0,1]]: (3*4 - 5) / sqrt((16-6) * (16-6))
        ([0, 1, 1, 2], [0, 0, 1, 2], 0.7),
    ],
)
def test_matthews(pred, gold, expected) -> None:
    assert matthews_corrcoef(pred, gold) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("pred", "gold", "expected"),
    [
        ([1, 2, 3], [2, 4, 6], 1.0),
        ([1, 2, 3], [3, 2, 1], -1.0),
        # centred x=(-1,0,1), y=(-1,-1,2): 3 / sqrt(2 * 6)
        ([1, 2, 3], [1, 1, 4], 3 / math.sqrt(12)),
        ([2.0, 2.0, 2.0], [1, 2, 3], 0.0),  # constant predictions
        ([5.0], [3.0], 0.0),
    ],
)
def test_pearson(pred, gold, expected) -> None:
    assert pearson(pred, gold) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([10, 20, 30], [1, 2, 3]),
        ([30, 10, 20], [3, 1, 2]),
        ([1, 2, 2, 3], [1, 2.5, 2.5, 4]),
        ([5, 5, 5], [2, 2, 2]),
        ([0.5, 0.1, 0.5, 0.1, 0.9], [3.5, 1.5, 3.5, 1.5, 5]),
    ],
)
def test_rank_average(values, expected) -> None:
    np.testing.assert_allclose(rank_average(values), expected)


@pytest.mark.parametrize(
    ("pred", "gold", "expected"),
    [
        ([1, 2, 3, 4, 5], [5, 6, 7, 8, 7], 0.82078268166812329),  # ranks y = 1,2,3.5,5,3.5
        ([1, 2, 3, 4], [1, 8, 27, 64], 1.0),  # monotone but not linear
        ([4, 3, 2, 1], [1, 2, 3, 4], -1.0),
        # ranks x=(1,2.5,2.5,4), y=(1,2,3,4): centred dot 4.5 / sqrt(4.5 * 5)
        ([1, 2, 2, 3], [1, 2, 3, 4], 4.5 / math.sqrt(22.5)),
        ([3, 3, 3], [1, 2, 3], 0.0),
    ],
)
def test_spearman(pred, gold, expected) -> None:
    assert spearman(pred, gold) == pytest.approx(expected)


@pytest.mark.parametrize("metric", [accuracy, f1, matthews_corrcoef, pearson, spearman])
def test_metrics_return_python_floats(metric) -> None:
    assert type(metric(np.array([1, 0, 1]), np.array([1, 1, 0]))) is float


@pytest.mark.parametrize("metric", [accuracy, f1, matthews_corrcoef, pearson, spearman])
def test_metrics_reject_bad_shapes(metric) -> None:
    with pytest.raises(ValueError, match="predictions"):
        metric([1, 0], [1, 0, 1])
    with pytest.raises(ValueError, match="empty"):
        metric([], [])


def test_compute_metrics_classification_takes_argmax_of_scores() -> None:
    scores = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    result = compute_metrics(GLUE_TASKS["mrpc"], scores, [1, 0, 0, 0])
    assert list(result) == ["f1", "accuracy"]
    assert result == pytest.approx({"f1": 2 / 3, "accuracy": 0.75})


def test_compute_metrics_regression() -> None:
    result = compute_metrics(GLUE_TASKS["stsb"], np.array([[1.0], [2.0], [3.0]]), [0.5, 1.5, 4])
    assert result["spearman"] == pytest.approx(1.0)
    assert 0 < result["pearson"] < 1


def test_compute_metrics_cola() -> None:
    assert compute_metrics(GLUE_TASKS["cola"], [1, 0, 1, 0], [1, 0, 1, 0]) == {"matthews": 1.0}


def test_compute_metrics_unknown_metric() -> None:
    spec = TaskSpec("x", ("a", "b"), False, ("bleu",), "bleu")
    with pytest.raises(ValueError, match="bleu"):
        compute_metrics(spec, [0], [0])
