"""The JSON manifest that describes one trained task artifact."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from adapters import constants as C
from adapters.config import MethodConfig

# A label or metric name: 1..N characters, not only whitespace.
Label = Annotated[str, StringConstraints(min_length=1, max_length=C.MAX_LABEL_CHARS)]
MetricName = Annotated[str, StringConstraints(min_length=1, max_length=C.MAX_LABEL_CHARS)]
# A metric value: a finite JSON number (no "NaN", "inf" or "0.9" strings, no NaN, no booleans).
MetricValue = Annotated[float, Field(strict=True, allow_inf_nan=False)]


class BackboneIdentity(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    fingerprint: str = Field(pattern=r"^[0-9a-f]{64}$")
    family: str = Field(default="bert", pattern=r"^[a-z0-9-]{1,40}$")  # `adapters.families`
    hidden: int = Field(ge=1)
    layers: int = Field(ge=1)
    heads: int = Field(ge=1)
    intermediate: int = Field(ge=1)


class TokenizerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_length: int = Field(default=128, ge=8, le=8192)
    text_pair: bool = False


class Manifest(BaseModel):
    """Everything needed to check and serve an artifact, next to its safetensors weights."""

    model_config = ConfigDict(extra="forbid")

    format_version: int = C.ARTIFACT_FORMAT_VERSION
    task: str = Field(pattern=C.TASK_NAME_PATTERN)
    method: dict
    problem_type: Literal["classification", "regression"]
    label_names: list[Label] = Field(default_factory=list, max_length=C.MAX_LABELS)
    backbone: BackboneIdentity
    tokenizer: TokenizerSettings = Field(default_factory=TokenizerSettings)
    metrics: dict[MetricName, MetricValue] = Field(default_factory=dict, max_length=C.MAX_METRICS)
    trainable_parameters: int = Field(default=0, ge=0, le=C.MAX_PARAMETERS)
    weights_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    # Storage dtype of every tensor in the weights (a serving bank casts at slot write).
    dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    created_at: str = Field(
        default_factory=lambda: datetime.now(timezone.utc).isoformat(), max_length=64
    )

    @field_validator("format_version")
    @classmethod
    def _known_version(cls, v: int) -> int:
        if v != C.ARTIFACT_FORMAT_VERSION:
            raise ValueError(
                f"unsupported format_version {v}; expected {C.ARTIFACT_FORMAT_VERSION}"
            )
        return v

    @field_validator("label_names", "metrics")
    @classmethod
    def _no_blank_names(cls, v: list[str] | dict[str, float]) -> list[str] | dict[str, float]:
        if any(not name.strip() for name in v):
            raise ValueError("names must not be empty or only whitespace")
        return v

    @field_validator("created_at")
    @classmethod
    def _iso_datetime(cls, v: str) -> str:
        try:
            datetime.fromisoformat(v)
        except ValueError:
            raise ValueError(f"created_at {v[:64]!r} is not an ISO 8601 date and time") from None
        return v

    @field_validator("method")
    @classmethod
    def _valid_method(cls, v: dict) -> dict:
        cfg = MethodConfig.from_dict(v)
        if cfg.full_finetune:
            raise ValueError("a full fine-tuning run is not an adapter and cannot be served")
        return cfg.to_dict()

    @model_validator(mode="after")
    def _labels_fit_problem(self) -> Manifest:
        if self.problem_type == "classification" and len(self.label_names) < 2:
            raise ValueError("classification needs at least two label_names")
        if self.problem_type == "regression" and self.label_names:
            raise ValueError("regression takes no label_names")
        if len(set(self.label_names)) != len(self.label_names):
            raise ValueError("label_names must be unique")
        return self

    @property
    def method_config(self) -> MethodConfig:
        return MethodConfig.from_dict(self.method)

    @property
    def num_labels(self) -> int:
        return 1 if self.problem_type == "regression" else len(self.label_names)
