"""Request inputs checked against the input limits, and predictions as response items."""

from __future__ import annotations

from collections.abc import Hashable, Sequence

from service.api.schemas import PredictionOut, TextItem
from service.engine.engine import TextInput
from service.engine.inference.runner import RowResult
from service.errors import InvalidInputError
from service.settings import Settings


def checked_inputs(items: Sequence[TextItem], settings: Settings) -> list[TextInput]:
    """Engine inputs; 422 for none, too many, or one over the character limit."""
    if not items:
        raise InvalidInputError("inputs is empty")
    if len(items) > settings.max_inputs_per_request:
        raise InvalidInputError(
            f"{len(items)} inputs; at most {settings.max_inputs_per_request} per request"
        )
    for i, item in enumerate(items):
        if len(item.text) + len(item.text_pair or "") > settings.max_text_chars:
            raise InvalidInputError(f"input {i} exceeds {settings.max_text_chars} characters")
    return [TextInput(i.text, i.text_pair) for i in items]


def check_fanout_size(tasks: Sequence[Hashable], inputs: int, limit: int) -> None:
    """422 for no task, a task (at one version) named twice, or tasks x inputs over the
    fan-out row limit."""
    if not tasks:
        raise InvalidInputError("tasks is empty")
    if len(set(tasks)) != len(tasks):
        raise InvalidInputError("tasks holds a task more than once")
    if len(tasks) * inputs > limit:
        raise InvalidInputError(
            f"{len(tasks)} tasks x {inputs} inputs = {len(tasks) * inputs} rows; "
            f"at most {limit} per request (UNIPELT_MAX_FANOUT_ROWS)"
        )


def predictions_out(results: Sequence[RowResult]) -> list[PredictionOut]:
    return [
        PredictionOut(
            label=r.prediction.label,
            scores=r.prediction.scores or None,
            value=r.prediction.value,
            gates=r.gates,
        )
        for r in results
    ]


def sticky_key(in_body: str | None, in_header: str | None) -> str | None:
    """The request's sticky key: the body's `sticky_key`, else the X-Sticky-Key header."""
    return in_body if in_body is not None else in_header or None
