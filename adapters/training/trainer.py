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
from adapters.training.optim import OptimiserFactory, make_optimiser


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


def linear_schedule(warmup: int, total: int, constant: bool = False):
    """Learning-rate factor: linear warmup, then linear decay to 0 at `total` (or constant)."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        if constant:
            return 1.0
        return max(0.0, (total - step) / max(1, total - warmup))

    return factor


@dataclass
class _Selection:
    """Early stopping: the best dev score so far, its state, and evaluations without gain."""

    patience: int
    best: float = -math.inf
    metrics: dict[str, float] = field(default_factory=dict)
    state: dict[str, Tensor] | None = None
    step: int = 0
    bad: int = 0

    def update(self, learner: Learner, step: int, metrics: dict[str, float], main: float) -> bool:
        """Record one evaluation; True when patience is exhausted."""
        if main > self.best:
            self.best, self.metrics, self.step = main, metrics, step
            self.state, self.bad = learner.trainable_state(), 0
        else:
            self.bad += 1
        return self.bad >= self.patience


class Trainer:
    """AdamW + linear warmup, then linear decay to zero at the step cap."""

    def __init__(
        self,
        learner: Learner,
        spec: TaskSpec,
        settings: TrainSettings,
        steps: int,
        optimiser: OptimiserFactory = make_optimiser,
    ):
        self.learner, self.spec, self.settings = learner, spec, settings
        self.params = learner.trainable()
        lr = settings.learning_rate(learner.cfg)
        self.optimiser = optimiser(self.params, lr, settings.weight_decay)
        warmup = int(settings.warmup_ratio * steps)
        schedule = linear_schedule(warmup, steps, settings.schedule == "constant")
        self.schedule = torch.optim.lr_scheduler.LambdaLR(self.optimiser, schedule)
        self.seconds = 0.0

    def step(self, train_set: EncodedSet, index: list[int], step: int) -> float:
        """One optimiser step on the examples `index`; returns the loss."""
        start = time.perf_counter()
        batch = collate(train_set, index).to(self.learner.device)
        loss = task_loss(self.spec, self.learner(batch), batch.labels)
        if not torch.isfinite(loss):
            raise TrainingError(f"loss became {loss.item()} at step {step}; lower the lr")
        self.optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, self.settings.max_grad_norm)
        self.optimiser.step()
        self.schedule.step()
        self.seconds += time.perf_counter() - start
        return loss.detach().item()


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
    torch.manual_seed(settings.seed)  # dropout
    order = torch.Generator().manual_seed(settings.seed)  # data order
    per_epoch = math.ceil(len(train_set) / settings.batch_size)
    total = settings.max_steps(per_epoch)
    eval_every = settings.eval_interval(total)
    has_dev = dev_set is not None and len(dev_set) > 0
    trainer = Trainer(learner, spec, settings, total)
    selection = _Selection(settings.patience_for(per_epoch))
    history: list[dict[str, float]] = []
    step, running, eval_seconds, stopped = 0, None, 0.0, False
    bar = tqdm(total=total, desc=desc, disable=not progress, dynamic_ncols=True, leave=False)
    learner.train()
    while step < total and not stopped:
        for index in train_order(train_set, settings.batch_size, order, settings.group_by_length):
            value = trainer.step(train_set, index, step)
            step += 1
            running = value if running is None else 0.9 * running + 0.1 * value
            bar.update(1)
            bar.set_postfix(
                loss=f"{running:.4f}", dev=f"{selection.best:.4f}" if selection.metrics else "-"
            )
            if has_dev and dev_set is not None and (step % eval_every == 0 or step == total):
                ev = evaluate_learner(learner, dev_set, spec, settings.eval_batch_size)
                eval_seconds += ev.seconds
                history.append({"step": step, "loss": running, "dev": ev.main(spec)})
                stopped = selection.update(learner, step, ev.metrics, ev.main(spec))
            if stopped or step == total:
                break
    bar.close()
    if selection.state is not None:
        learner.load_trainable_state(selection.state)
    learner.eval()
    return TrainResult(
        best_dev=selection.metrics,
        best_step=selection.step if has_dev else step,
        steps=step,
        epochs=step / per_epoch,
        stopped_early=stopped,
        train_seconds=trainer.seconds,
        eval_seconds=eval_seconds,
        history=history,
    )
