"""GLUE metrics in numpy. Scores are on their raw scale (accuracy 0.87, not 87)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike

from adapters.data.examples import TaskSpec


def _pair(predictions: ArrayLike, labels: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Flatten both inputs and check they are non-empty and of equal length."""
    pred = np.asarray(predictions).ravel()
    gold = np.asarray(labels).ravel()
    if pred.shape != gold.shape:
        raise ValueError(f"{pred.size} predictions but {gold.size} labels")
    if pred.size == 0:
        raise ValueError("cannot score an empty set of predictions")
    return pred, gold


def accuracy(predictions: ArrayLike, labels: ArrayLike) -> float:
    """Fraction of predictions equal to their label."""
    pred, gold = _pair(predictions, labels)
    return float(np.mean(pred == gold))


def f1(predictions: ArrayLike, labels: ArrayLike) -> float:
    """Binary F1 of the positive class 1; 0.0 when there are no true positives."""
    pred, gold = _pair(predictions, labels)
    true_pos = float(np.sum((pred == 1) & (gold == 1)))
    if true_pos == 0:
        return 0.0
    precision = true_pos / float(np.sum(pred == 1))
    recall = true_pos / float(np.sum(gold == 1))
    return 2 * precision * recall / (precision + recall)


def matthews_corrcoef(predictions: ArrayLike, labels: ArrayLike) -> float:
    """Matthews correlation (multiclass form); 0.0 when either side is constant."""
    pred, gold = _pair(predictions, labels)
    classes, codes = np.unique(np.concatenate([gold, pred]), return_inverse=True)
    gold_codes, pred_codes = codes[: gold.size], codes[gold.size :]
    confusion = np.zeros((classes.size, classes.size), dtype=np.float64)
    np.add.at(confusion, (gold_codes, pred_codes), 1.0)
    true_per_class = confusion.sum(axis=1)
    pred_per_class = confusion.sum(axis=0)
    correct = np.trace(confusion)
    total = float(gold.size)
    cov_pred_gold = correct * total - true_per_class @ pred_per_class
    cov_pred = total**2 - pred_per_class @ pred_per_class
    cov_gold = total**2 - true_per_class @ true_per_class
    if cov_pred == 0 or cov_gold == 0:
        return 0.0
    return float(cov_pred_gold / np.sqrt(cov_pred * cov_gold))


def pearson(predictions: ArrayLike, labels: ArrayLike) -> float:
    """Pearson correlation; 0.0 when either side is constant."""
    pred, gold = _pair(predictions, labels)
    x = pred.astype(np.float64) - pred.mean(dtype=np.float64)
    y = gold.astype(np.float64) - gold.mean(dtype=np.float64)
    denominator = np.sqrt((x @ x) * (y @ y))
    if denominator == 0:
        return 0.0
    return float(np.clip((x @ y) / denominator, -1.0, 1.0))


def spearman(predictions: ArrayLike, labels: ArrayLike) -> float:
    """Spearman rank correlation, tied values sharing their average rank."""
    pred, gold = _pair(predictions, labels)
    return pearson(rank_average(pred), rank_average(gold))


def rank_average(values: ArrayLike) -> np.ndarray:
    """1-based ranks of a 1-D array; ties get the mean of the ranks they span."""
    data = np.asarray(values).ravel()
    order = np.argsort(data, kind="mergesort")
    ordered = data[order]
    starts = np.concatenate([[0], np.flatnonzero(ordered[1:] != ordered[:-1]) + 1])
    ends = np.concatenate([starts[1:], [data.size]])
    ranks = np.empty(data.size, dtype=np.float64)
    ranks[order] = np.repeat((starts + 1 + ends) / 2.0, ends - starts)
    return ranks


METRICS: dict[str, Callable[[ArrayLike, ArrayLike], float]] = {
    "accuracy": accuracy,
    "f1": f1,
    "matthews": matthews_corrcoef,
    "pearson": pearson,
    "spearman": spearman,
}


def compute_metrics(spec: TaskSpec, predictions: ArrayLike, labels: ArrayLike) -> dict[str, float]:
    """The task's metrics, keyed by name in `spec.metric_names` order.

    Classification predictions are class ids, or a 2-D array of per-class scores (argmax is
    taken). Regression predictions are scores of shape (n,) or (n, 1).
    """
    unknown = [name for name in spec.metric_names if name not in METRICS]
    if unknown:
        raise ValueError(f"task {spec.name!r}: unknown metrics {unknown}; known: {list(METRICS)}")
    pred = np.asarray(predictions)
    if not spec.is_regression and pred.ndim == 2:
        pred = pred.argmax(axis=-1)
    return {name: METRICS[name](pred, labels) for name in spec.metric_names}
