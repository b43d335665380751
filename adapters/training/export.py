"""Turn a finished run into a servable artifact (manifest + safetensors)."""

from __future__ import annotations

import math
import re
from pathlib import Path

from adapters import constants as C
from adapters.artifact import backbone_identity, save_artifact
from adapters.errors import ConfigError
from adapters.manifest import Manifest
from adapters.training.run import RunOutcome

_PLACEHOLDER_SHA = "0" * 64


def artifact_task_name(name: str) -> str:
    """A valid artifact task name from a free-form one ("My Task.v2" -> "my-task.v2")."""
    slug = re.sub(r"[^a-z0-9_.-]+", "-", name.lower()).strip("-._")[:64]
    if not re.fullmatch(C.TASK_NAME_PATTERN, slug):
        raise ConfigError(f"cannot make a valid task name from {name!r}; pass --task-name")
    return slug


def build_manifest(outcome: RunOutcome, task_name: str) -> Manifest:
    learner, spec = outcome.learner, outcome.spec
    if learner.cfg.full_finetune:
        raise ConfigError(
            "full fine-tuning trains the whole backbone: its result is not an adapter artifact "
            "and cannot be saved or served (its metrics are printed instead)"
        )
    return Manifest(
        task=artifact_task_name(task_name),
        method=learner.cfg.to_dict(),
        problem_type="regression" if spec.is_regression else "classification",
        label_names=list(spec.label_names),
        backbone=backbone_identity(learner.backbone),
        tokenizer={"max_length": outcome.settings.max_length, "text_pair": outcome.has_pairs},
        # a diverged run's NaN is printed, not stored: manifests hold finite numbers only
        metrics={k: v for k, v in outcome.metrics().items() if math.isfinite(v)},
        trainable_parameters=learner.kept_parameter_count(),
        weights_sha256=_PLACEHOLDER_SHA,
    )


def save_outcome(outcome: RunOutcome, directory: Path | str, task_name: str) -> Path:
    """Write the run's artifact atomically; nothing is left behind if it fails."""
    manifest = build_manifest(outcome, task_name)
    return save_artifact(Path(directory), manifest, outcome.learner.task.export())
