"""Per-version signals: what each task version was asked, how it answered, and how fast.

Counted for the version that served (routed or pinned), so a canary compares with the live
version on the same dashboard: requests by status, latency from the batcher to predictions,
the distribution of predicted labels and, for gated tasks, of the gate values (each input's
mean over layers per gate: a drift signal). Labels stay within budget (`metrics.py`): a task
over the task-label budget, and a version that is not routed (such as a pin on an old one),
are counted as _other.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from service.engine.inference.runner import RowResult
from service.engine.lifecycle.pool import Resident
from service.errors import status_of
from service.metrics import (
    OTHER_LABEL,
    OTHER_TASK,
    OTHER_VERSION,
    PREDICTED_LABELS_PER_TASK,
    Metrics,
)


class VersionSignals:
    def __init__(self, metrics: Metrics, routable: Callable[[str], frozenset[int]]) -> None:
        self.metrics = metrics
        self.routable = routable

    def served(self, resident: Resident, results: Sequence[RowResult], seconds: float) -> None:
        task, version = self._labels(resident)
        m = self.metrics
        m.version_requests.labels(task=task, version=version, status="200").inc()
        m.version_duration.labels(task=task, version=version).observe(seconds)
        named = resident.label_names[:PREDICTED_LABELS_PER_TASK]
        for result in results:
            label = result.prediction.label
            if label is not None:
                name = label if label in named else OTHER_LABEL
                m.version_predictions.labels(task=task, version=version, label=name).inc()
            for gate, per_layer in (result.gates or {}).items():
                mean = sum(per_layer) / len(per_layer) if per_layer else 0.0
                m.version_gates.labels(task=task, version=version, gate=gate).observe(mean)

    def failed(self, resident: Resident, error: BaseException) -> None:
        """The version's part of a request failed (its latency is not observed)."""
        task, version = self._labels(resident)
        status = str(status_of(error).status)
        self.metrics.version_requests.labels(task=task, version=version, status=status).inc()

    def _labels(self, resident: Resident) -> tuple[str, str]:
        name, version = resident.key
        task = self.metrics.task_label.add(name)  # it resolved: the task exists
        if task == OTHER_TASK:
            return task, OTHER_VERSION
        routable = version in self.routable(name)
        return task, self.metrics.version_label.label(task, version, routable)
