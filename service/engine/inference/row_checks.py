"""Checks of a predict request against its task: input pairing in, finite values out."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

from service.engine.inference.runner import RowResult
from service.errors import InvalidInputError, NonFiniteOutputError
from service.metrics import Metrics

log = logging.getLogger("unipelt.engine")


def check_pairing(task: str, pairs: Sequence[str | None], pair_task: bool) -> None:
    """A pair task takes only {text, text_pair} inputs; a single-text task takes none."""
    for index, pair in enumerate(pairs):
        if pair_task and pair is None:
            raise InvalidInputError(
                f"task {task!r} takes text pairs: input {index} needs a text_pair"
            )
        if not pair_task and pair is not None:
            raise InvalidInputError(
                f"task {task!r} takes single texts: input {index} has a text_pair"
            )


def _finite(result: RowResult) -> bool:
    p = result.prediction
    values = [*p.scores.values(), *([p.value] if p.value is not None else [])]
    for per_layer in (result.gates or {}).values():
        values.extend(per_layer)
    return all(math.isfinite(v) for v in values)


def check_finite(task: str, version: int, results: Sequence[RowResult], metrics: Metrics) -> None:
    """Refuse (never answer 200 with) NaN or Inf outputs; log and count each refusal."""
    bad = [i for i, r in enumerate(results) if not _finite(r)]
    if not bad:
        return
    metrics.non_finite_outputs.labels(task=metrics.task_label.add(task)).inc()
    log.error("task %s v%s gave NaN or Inf outputs for inputs %s", task, version, bad[:10])
    raise NonFiniteOutputError(
        f"the adapter of task {task!r} (version {version}) gave NaN or Inf outputs "
        f"for input {bad[0]}; the adapter is faulty for this input"
    )
