"""The records shared by every reader: one example and one task description."""

from __future__ import annotations

from dataclasses import dataclass

from adapters.data.errors import DataError


@dataclass(frozen=True)
class Example:
    """One input text (or text pair) and its label: a class id or a regression target."""

    text: str
    text_pair: str | None
    label: int | float


@dataclass(frozen=True)
class TaskSpec:
    """What a task predicts and how it is scored.

    `label_names[i]` is the name of class id `i`; it is empty for regression tasks.
    """

    name: str
    label_names: tuple[str, ...]
    is_regression: bool
    metric_names: tuple[str, ...]
    main_metric: str

    def __post_init__(self) -> None:
        if self.is_regression and self.label_names:
            raise DataError(f"task {self.name!r}: a regression task has no label names")
        if not self.is_regression and len(self.label_names) < 2:
            raise DataError(f"task {self.name!r}: a classification task needs two or more labels")
        if len(set(self.label_names)) != len(self.label_names):
            raise DataError(f"task {self.name!r}: duplicate label names {self.label_names}")
        if self.main_metric not in self.metric_names:
            raise DataError(
                f"task {self.name!r}: main metric {self.main_metric!r} "
                f"is not one of {self.metric_names}"
            )

    @property
    def num_labels(self) -> int:
        """Outputs of the task head: 1 for regression, else the number of classes."""
        return 1 if self.is_regression else len(self.label_names)
