"""Training settings and the per-method default learning rates."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

from adapters.config import MethodConfig
from adapters.errors import ConfigError
from adapters.methods import METHODS

BATCH_SIZE = 16
MAX_LENGTH = 128
DEV_SIZE = 1000  # the paper's held-out dev set for checkpoint selection

# Without `epochs`, a run may take max(DEFAULT_EPOCHS epochs, STEP_BUDGET steps): a K=100 run
# (7 steps an epoch) gets enough steps for early stopping, not the cap, to end it.
DEFAULT_EPOCHS = 10
STEP_BUDGET = 800
EVALUATIONS = 32  # dev evaluations over the step cap when `eval_every` is 0
# Early stopping waits at least PATIENCE evaluations, and at least as many as fit in
# PATIENCE_EPOCHS epochs: 6 at K=100 (7 steps an epoch), 12 at K=1000 (63), where 6 evaluations
# (2.4 epochs) stopped SST-2 runs a point under the reference loops (docs/results.md).
PATIENCE = 6
PATIENCE_EPOCHS = 5
SCHEDULES = ("linear", "constant")

# Learning rates: each method module declares its own (`Method.learning_rate`: one
# replication of the paper's, or the winner of an SST-2 K=100 sweep on dev over 3 seeds,
# docs/results.md); these are the trainer's.
LR_FULL_FINETUNE = 2e-5
LR_COMBINED = 5e-4  # several methods at once: UniPELT's rate in the same replication


def default_learning_rate(cfg: MethodConfig) -> float:
    """The learning rate a method trains with unless one is given: its own when one method
    is on, UniPELT's for a combination, the head's for head-only."""
    if cfg.full_finetune:
        return LR_FULL_FINETUNE
    on = [m.learning_rate for m in METHODS if m.switch and m.learning_rate and m.on(cfg)]
    if len(on) > 1:
        return LR_COMBINED
    if on:
        return on[0]
    return next(lr for m in METHODS if m.switch is None and (lr := m.learning_rate))


@dataclass(frozen=True)
class TrainSettings:
    """How one task is trained. `lr=None` picks the method's default learning rate.

    The step cap is `epochs` epochs when given, else the larger of DEFAULT_EPOCHS epochs and
    `min_steps` steps. The dev set is evaluated every `eval_every` optimiser steps (0: the
    cap over EVALUATIONS); training stops after `patience` evaluations without a better dev
    main metric (None: `resolved` picks it for the training set's size), and the best
    evaluated state is kept.
    """

    lr: float | None = None
    epochs: int | None = None
    min_steps: int = STEP_BUDGET
    batch_size: int = BATCH_SIZE
    max_length: int = MAX_LENGTH
    patience: int | None = None
    eval_every: int = 0
    warmup_ratio: float = 0.06
    schedule: str = "linear"  # after warmup: "linear" decay to 0 at the cap, or "constant"
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    seed: int = 0
    eval_batch_size: int = 64
    group_by_length: bool = True

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "max_length", "patience", "eval_batch_size"):
            value = getattr(self, name)
            if name in ("epochs", "patience") and value is None:
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if self.eval_every < 0 or self.min_steps < 0:
            raise ConfigError(
                f"eval_every and min_steps must be >= 0, got {self.eval_every!r}, "
                f"{self.min_steps!r}"
            )
        if self.lr is not None and not self.lr > 0:
            raise ConfigError(f"lr must be positive, got {self.lr!r}")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ConfigError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio!r}")
        if self.weight_decay < 0 or self.max_grad_norm <= 0:
            raise ConfigError(
                f"weight_decay must be >= 0 and max_grad_norm > 0, got "
                f"{self.weight_decay!r}, {self.max_grad_norm!r}"
            )
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.max_length < 8:
            raise ConfigError(f"max_length must be at least 8, got {self.max_length}")

    def max_steps(self, per_epoch: int) -> int:
        """The step cap for a training set of `per_epoch` batches."""
        if self.epochs is not None:
            return self.epochs * per_epoch
        return max(DEFAULT_EPOCHS * per_epoch, self.min_steps)

    def eval_interval(self, total: int) -> int:
        """Optimiser steps between dev evaluations for a run capped at `total` steps."""
        return self.eval_every or max(1, math.ceil(total / EVALUATIONS))

    def patience_for(self, per_epoch: int) -> int:
        """Evaluations without gain before stopping, for `per_epoch` batches an epoch."""
        if self.patience is not None:
            return self.patience
        interval = self.eval_interval(self.max_steps(per_epoch))
        return max(PATIENCE, PATIENCE_EPOCHS * per_epoch // interval)

    def resolved(self, train_size: int) -> TrainSettings:
        """These settings with the default patience fixed for `train_size` examples."""
        if self.patience is not None:
            return self
        return replace(self, patience=self.patience_for(math.ceil(train_size / self.batch_size)))

    def learning_rate(self, cfg: MethodConfig) -> float:
        return self.lr if self.lr is not None else default_learning_rate(cfg)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
