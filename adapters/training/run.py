"""One training run end to end: encode, build, train with early stopping, test."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from adapters.backbone import Backbone
from adapters.config import MethodConfig
from adapters.data import TaskSpec
from adapters.training.batching import EncodedSet, encode_examples
from adapters.training.defaults import TrainSettings
from adapters.training.evaluate import Evaluation, evaluate_learner
from adapters.training.learner import Learner
from adapters.training.tasks import TaskData
from adapters.training.trainer import TrainResult, train


@dataclass
class EncodedTask:
    spec: TaskSpec
    train: EncodedSet
    dev: EncodedSet
    test: EncodedSet

    @property
    def has_pairs(self) -> bool:
        return self.train.has_pairs


@dataclass
class RunOutcome:
    learner: Learner
    spec: TaskSpec
    settings: TrainSettings
    result: TrainResult
    test: Evaluation | None
    has_pairs: bool

    def metrics(self) -> dict[str, float]:
        """Test metrics as `test_<name>`, the kept state's dev metrics as `dev_<name>`."""
        out = {f"dev_{k}": v for k, v in self.result.best_dev.items()}
        if self.test is not None:
            out.update({f"test_{k}": v for k, v in self.test.metrics.items()})
        return out

    def summary(self) -> dict[str, Any]:
        """What a study records of a run (JSON-ready)."""
        learner, r = self.learner, self.result
        test_n = len(self.test.outputs) if self.test is not None else 0
        return {
            "metrics": self.metrics(),
            "main_metric": self.spec.main_metric,
            "test_main": self.test.main(self.spec) if self.test is not None else None,
            "dev_main": r.best_dev.get(self.spec.main_metric),
            "steps": r.steps,
            "best_step": r.best_step,
            "epochs": round(r.epochs, 3),
            "stopped_early": r.stopped_early,
            "train_seconds": r.train_seconds,
            "eval_seconds": r.eval_seconds,
            "seconds_per_step": r.seconds_per_step,
            "test_seconds": self.test.seconds if self.test is not None else None,
            "test_seconds_per_example": (
                self.test.seconds / test_n if self.test is not None and test_n else None
            ),
            "trainable_parameters": learner.training_parameter_count(),
            "kept_parameters": learner.kept_parameter_count(),
            "backbone_parameters": learner.backbone.parameter_count(),
            "lr": self.settings.learning_rate(learner.cfg),
            "history": r.history,
        }


def encode_task(tokenizer, data: TaskData, max_length: int) -> EncodedTask:
    regression = data.spec.is_regression
    return EncodedTask(
        spec=data.spec,
        train=encode_examples(tokenizer, data.train, max_length, regression),
        dev=encode_examples(tokenizer, data.dev, max_length, regression),
        test=encode_examples(tokenizer, data.test, max_length, regression),
    )


def train_encoded(
    task: EncodedTask,
    cfg: MethodConfig,
    backbone: Backbone,
    settings: TrainSettings,
    progress: bool = False,
    desc: str = "train",
) -> RunOutcome:
    """Seeded build + train + test of one method on one encoded task."""
    settings = settings.resolved(len(task.train))
    torch.manual_seed(settings.seed)
    learner = Learner(cfg, backbone, task.spec.num_labels)
    if task.spec.is_regression:
        learner.centre_regression_head(task.train.labels)
    result = train(learner, task.train, task.dev, task.spec, settings, progress, desc)
    test = None
    if len(task.test):
        test = evaluate_learner(learner, task.test, task.spec, settings.eval_batch_size)
    return RunOutcome(learner, task.spec, settings, result, test, task.has_pairs)


def train_task(
    data: TaskData,
    cfg: MethodConfig,
    backbone: Backbone,
    tokenizer,
    settings: TrainSettings,
    progress: bool = False,
) -> RunOutcome:
    task = encode_task(tokenizer, data, settings.max_length)
    return train_encoded(
        task, cfg, backbone, settings, progress, desc=f"{data.spec.name} {cfg.name}"
    )
