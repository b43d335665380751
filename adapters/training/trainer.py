"""The training loop: AdamW, linear warmup and decay, early stopping on the dev main metric."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

from adapters.data import TaskSpec
from adapters.errors import UniPELTError
from adapters.training.batching import EncodedSet, collate, train_order
from adapters.training.defaults import TrainSettings
from adapters.training.evaluate import evaluate_learner
from adapters.training.learner import Learner


class TrainingError(UniPELTError):
    """Training cannot go on (empty data, a non-finite loss)."""


@dataclass
class TrainResult:
    best_dev: dict[str, float]  # dev metrics of the kept state; empty without a dev set
    best_step: int
    steps: int
    epochs: float
    stopped_early: bool
    train_seconds: float  # optimiser steps only, evaluation excluded
    eval_seconds: float
    history: list[dict[str, float]] = field(default_factory=list)

    @property
    def seconds_per_step(self) -> float:
        return self.train_seconds / max(self.steps, 1)


def task_loss(spec: TaskSpec, logits: Tensor, labels: Tensor) -> Tensor:
    """Cross-entropy for classification, mean squared error for regression."""
    if spec.is_regression:
        return F.mse_loss(logits[:, 0], labels)
    return F.cross_entropy(logits, labels)


def linear_schedule(warmup: int, total: int):
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (total - step) / max(1, total - warmup))

    return factor


def train(
    learner: Learner,
    train_set: EncodedSet,
    dev_set: EncodedSet | None,
    spec: TaskSpec,
    settings: TrainSettings,
    progress: bool = False,
    desc: str = "train",
) -> TrainResult:
    """Train `learner` in place; it ends holding the best dev state (or the last one)."""
    if len(train_set) == 0:
        raise TrainingError("no training examples")
    torch.manual_seed(settings.seed)
    order = torch.Generator().manual_seed(settings.seed)
    per_epoch = math.ceil(len(train_set) / settings.batch_size)
    total = per_epoch * settings.epochs
    eval_every = settings.eval_every or per_epoch
    params = learner.trainable()
    lr = settings.learning_rate(learner.cfg)
    optimiser = torch.optim.AdamW(params, lr=lr, weight_decay=settings.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, linear_schedule(int(settings.warmup_ratio * total), total)
    )
    has_dev = dev_set is not None and len(dev_set) > 0
    best_main, best_dev, best_state, best_step = -math.inf, {}, None, 0
    bad_evals, step, train_seconds, eval_seconds = 0, 0, 0.0, 0.0
    history: list[dict[str, float]] = []
    running = None
    bar = tqdm(total=total, desc=desc, disable=not progress, dynamic_ncols=True, leave=False)
    learner.train()
    stopped = False
    for _epoch in range(settings.epochs):
        for index in train_order(train_set, settings.batch_size, order, settings.group_by_length):
            start = time.perf_counter()
            batch = collate(train_set, index)
            loss = task_loss(spec, learner(batch), batch.labels)
            if not torch.isfinite(loss):
                bar.close()
                raise TrainingError(f"loss became {float(loss)} at step {step}; lower the lr")
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, settings.max_grad_norm)
            optimiser.step()
            schedule.step()
            train_seconds += time.perf_counter() - start
            step += 1
            value = loss.detach().item()
            running = value if running is None else 0.9 * running + 0.1 * value
            bar.update(1)
            bar.set_postfix(loss=f"{running:.4f}", dev=f"{best_main:.4f}" if best_dev else "-")
            if not has_dev or (step % eval_every and step != total):
                continue
            ev = evaluate_learner(learner, dev_set, spec, settings.eval_batch_size)
            eval_seconds += ev.seconds
            main = ev.main(spec)
            history.append({"step": step, "loss": running, "dev": main})
            if main > best_main:
                best_main, best_dev, best_step = main, ev.metrics, step
                best_state, bad_evals = learner.trainable_state(), 0
            else:
                bad_evals += 1
            bar.set_postfix(loss=f"{running:.4f}", dev=f"{best_main:.4f}")
            if bad_evals >= settings.patience:
                stopped = True
                break
        if stopped:
            break
    bar.close()
    if best_state is not None:
        learner.load_trainable_state(best_state)
    learner.eval()
    return TrainResult(
        best_dev=best_dev,
        best_step=best_step if has_dev else step,
        steps=step,
        epochs=step / per_epoch,
        stopped_early=stopped,
        train_seconds=train_seconds,
        eval_seconds=eval_seconds,
        history=history,
    )
