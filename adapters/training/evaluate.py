"""Score a model on an encoded set: length-sorted batches, no autograd, task metrics."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from adapters.data import TaskSpec
from adapters.metrics import compute_metrics
from adapters.training.batching import Batch, EncodedSet, collate, eval_order
from adapters.training.learner import Learner

Forward = Callable[[Batch], Tensor]  # batch -> (B, n) logits


@dataclass
class Evaluation:
    metrics: dict[str, float]
    outputs: Tensor  # (N, n) logits (or the regression value) in the set's order
    seconds: float

    def main(self, spec: TaskSpec) -> float:
        return self.metrics[spec.main_metric]


def predict_outputs(forward: Forward, data: EncodedSet, batch_size: int) -> tuple[Tensor, float]:
    """Every example's output, in the set's order, and the seconds the forwards took."""
    chunks, positions = [], []
    start = time.perf_counter()
    with torch.inference_mode():
        for index in eval_order(data, batch_size):
            batch = collate(data, index)
            chunks.append(forward(batch).float().cpu())
            positions.append(batch.index)
    seconds = time.perf_counter() - start
    if not chunks:
        return torch.zeros(0, 1), seconds
    outputs = torch.cat(chunks)
    ordered = torch.empty_like(outputs)
    ordered[torch.cat(positions)] = outputs
    return ordered, seconds


def score(spec: TaskSpec, outputs: Tensor, labels: Tensor) -> dict[str, float]:
    pred = outputs[:, 0] if spec.is_regression else outputs
    return compute_metrics(spec, pred.numpy(), labels.numpy())


def evaluate(forward: Forward, data: EncodedSet, spec: TaskSpec, batch_size: int) -> Evaluation:
    outputs, seconds = predict_outputs(forward, data, batch_size)
    return Evaluation(score(spec, outputs, data.labels), outputs, seconds)


def evaluate_learner(
    learner: Learner, data: EncodedSet, spec: TaskSpec, batch_size: int
) -> Evaluation:
    """Evaluate in eval mode (no dropout), restoring the learner's mode afterwards."""
    was_training = learner.training
    learner.eval()
    try:
        with torch.inference_mode():
            bank = learner.task.bank()
        return evaluate(lambda batch: learner(batch, bank), data, spec, batch_size)
    finally:
        learner.train(was_training)
