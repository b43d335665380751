"""Training settings and the per-method default learning rates."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from adapters.config import MethodConfig
from adapters.errors import ConfigError

BATCH_SIZE = 16
MAX_LENGTH = 128
DEV_SIZE = 1000  # the paper's held-out dev set for checkpoint selection

# Learning rates of one replication of the paper (no original source gives them).
LR_FULL_FINETUNE = 2e-5
LR_BITFIT = 1e-4
LR_ADAPTER = 1e-4
LR_PREFIX = 2e-4
LR_LORA = 5e-4
LR_UNIPELT = 5e-4
LR_HEAD = 1e-3


def default_learning_rate(cfg: MethodConfig) -> float:
    """The learning rate a method trains with unless one is given."""
    if cfg.full_finetune:
        return LR_FULL_FINETUNE
    used = [cfg.adapter, cfg.prefix, cfg.lora].count(True)
    if used > 1:
        return LR_UNIPELT
    if cfg.lora:
        return LR_LORA
    if cfg.prefix:
        return LR_PREFIX
    if cfg.adapter:
        return LR_ADAPTER
    if cfg.bitfit:
        return LR_BITFIT
    return LR_HEAD


@dataclass(frozen=True)
class TrainSettings:
    """How one task is trained. `lr=None` picks the method's default learning rate.

    Evaluation on the dev set happens every `eval_every` optimiser steps (0: once per epoch);
    training stops after `patience` evaluations without a better dev main metric, and the
    best evaluated state is kept.
    """

    lr: float | None = None
    epochs: int = 10
    batch_size: int = BATCH_SIZE
    max_length: int = MAX_LENGTH
    patience: int = 10
    eval_every: int = 0
    warmup_ratio: float = 0.06
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    seed: int = 0
    eval_batch_size: int = 64
    group_by_length: bool = True

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "max_length", "patience", "eval_batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if self.eval_every < 0:
            raise ConfigError(f"eval_every must be >= 0, got {self.eval_every!r}")
        if self.lr is not None and not self.lr > 0:
            raise ConfigError(f"lr must be positive, got {self.lr!r}")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ConfigError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio!r}")
        if self.weight_decay < 0 or self.max_grad_norm <= 0:
            raise ConfigError(
                f"weight_decay must be >= 0 and max_grad_norm > 0, got "
                f"{self.weight_decay!r}, {self.max_grad_norm!r}"
            )
        if self.max_length < 8:
            raise ConfigError(f"max_length must be at least 8, got {self.max_length}")

    def learning_rate(self, cfg: MethodConfig) -> float:
        return self.lr if self.lr is not None else default_learning_rate(cfg)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
