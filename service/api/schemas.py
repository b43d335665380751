"""Request and response bodies of the HTTP API."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from adapters.constants import TASK_NAME_PATTERN


def _not_blank(text: str) -> str:
    if not text.strip():
        raise ValueError("text must not be empty or only whitespace")
    return text


# "" and whitespace-only text are both refused (422): neither carries anything to classify.
NonEmptyText = Annotated[str, StringConstraints(min_length=1), AfterValidator(_not_blank)]
STICKY_KEY_CHARS = 256
StickyKey = Annotated[str, StringConstraints(min_length=1, max_length=STICKY_KEY_CHARS)]
TaskNameText = Annotated[str, StringConstraints(pattern=TASK_NAME_PATTERN)]


class TextItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: NonEmptyText = Field(description="The input text.")
    text_pair: NonEmptyText | None = Field(None, description="Second segment of a pair.")


class PredictRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"inputs": ["a gripping, funny film"]}]},
    )

    inputs: NonEmptyText | TextItem | list[NonEmptyText | TextItem] = Field(
        description="One text, one {text, text_pair}, or a list of them."
    )
    return_gates: bool = Field(False, description="Include per-layer gate values per input.")
    sticky_key: StickyKey | None = Field(
        None,
        description="Hashed onto a traffic split, so one key always gets one version while "
        "the split stands (default: the X-Sticky-Key header; none: a random draw).",
    )

    def items(self) -> list[TextItem]:
        raw = self.inputs if isinstance(self.inputs, list) else [self.inputs]
        return [TextItem(text=i) if isinstance(i, str) else i for i in raw]


class TaskRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task: TaskNameText
    version: int | None = Field(None, ge=1, description="Pinned version; none: routed.")


class FanoutRequest(PredictRequest):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"tasks": ["sst2", "topic"], "inputs": ["a fine film"]}]},
    )

    tasks: list[TaskNameText | TaskRef] = Field(
        description="Tasks to run every input through: a name (its routed version), or "
        '{"task", "version"} to pin a version (each at most once).'
    )

    def targets(self) -> list[tuple[str, int | None]]:
        return [(t, None) if isinstance(t, str) else (t.task, t.version) for t in self.tasks]


class PredictionOut(BaseModel):
    label: str | None = Field(None, description="Predicted label (classification).")
    scores: dict[str, float] | None = Field(None, description="Probability per label.")
    value: float | None = Field(None, description="Predicted value (regression).")
    gates: dict[str, list[float]] | None = Field(
        None, description="Gate value per layer for each submodule the task has."
    )


class PredictResponse(BaseModel):
    task: str
    version: int
    predictions: list[PredictionOut]


class RollbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int | None = Field(
        None, ge=1, description="Version to make live; default: the one before the live one."
    )


class TrafficRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"split": {"7": 90, "8": 10}}]},
    )

    split: dict[str, Any] = Field(
        description="Version -> percent of unpinned requests: 1 to 4 retained versions, "
        "non-negative integer weights summing to 100."
    )
    if_generation: int | None = Field(
        None, ge=0, description="Apply only if the routing is still at this generation (409)."
    )


class PromoteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1, description="The version that takes all traffic.")


class ErrorOut(BaseModel):
    error: str
    detail: str


class FanoutResponse(BaseModel):
    results: list[PredictResponse] = Field(description="One answer per task, in request order.")
