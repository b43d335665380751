"""The method configuration: which UniPELT submodules a task uses, and their sizes."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from adapters.constants import (
    MAX_BOTTLENECK,
    MAX_LORA_RANK,
    MAX_LORA_SCALING,
    MAX_PREFIX_LENGTH,
)
from adapters.errors import ConfigError

NON_LINEARITIES = ("relu", "gelu", "tanh", "swish")


@dataclass(frozen=True)
class UsedSizes:
    """The sizes a task actually uses: 0 for a submodule that is off."""

    lora_r: int
    bottleneck: int
    prefix_length: int


@dataclass(frozen=True)
class MethodConfig:
    """Which of A (bottleneck adapter), P (prefix), L (LoRA) a task uses, and their sizes.

    `bitfit` tunes bias deltas of the frozen backbone; `full_finetune` trains the whole
    backbone (a training baseline only: its result is not an adapter). None of A/P/L/BitFit
    and no full fine-tuning means head-only.
    """

    adapter: bool = True
    prefix: bool = True
    lora: bool = True
    gates: bool = True
    bitfit: bool = False
    full_finetune: bool = False
    bottleneck: int = 48
    adapter_non_linearity: str = "relu"
    prefix_length: int = 10
    prefix_hidden: int = 512
    lora_r: int = 8
    lora_alpha: float = 16.0

    def __post_init__(self) -> None:
        for name in ("bottleneck", "prefix_length", "prefix_hidden", "lora_r"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if (
            self.lora_r > MAX_LORA_RANK
            or self.bottleneck > MAX_BOTTLENECK
            or self.prefix_length > MAX_PREFIX_LENGTH
        ):
            raise ConfigError(
                f"sizes too large: lora_r={self.lora_r}, bottleneck={self.bottleneck}, "
                f"prefix_length={self.prefix_length}"
            )
        if not isinstance(self.lora_alpha, int | float) or not self.lora_alpha > 0:
            raise ConfigError(f"lora_alpha must be a positive number, got {self.lora_alpha!r}")
        if not self.lora_alpha / self.lora_r <= MAX_LORA_SCALING:  # also refuses inf and NaN
            raise ConfigError(
                f"lora_alpha / lora_r = {self.lora_alpha / self.lora_r:g} exceeds the limit "
                f"of {MAX_LORA_SCALING:g} (a scale that large overflows the forward)"
            )
        if self.adapter_non_linearity not in NON_LINEARITIES:
            raise ConfigError(
                f"adapter_non_linearity must be one of {NON_LINEARITIES}, "
                f"got {self.adapter_non_linearity!r}"
            )
        if self.full_finetune and (self.uses_pelt or self.bitfit):
            raise ConfigError("full_finetune cannot be combined with A, P, L or BitFit")

    @property
    def uses_pelt(self) -> bool:
        return self.adapter or self.prefix or self.lora

    @property
    def uses_gates(self) -> bool:
        return self.gates and self.uses_pelt

    @property
    def used_sizes(self) -> UsedSizes:
        """A size counts only when its submodule is on (an off LoRA keeps its `lora_r`)."""
        return UsedSizes(
            lora_r=self.lora_r if self.lora else 0,
            bottleneck=self.bottleneck if self.adapter else 0,
            prefix_length=self.prefix_length if self.prefix else 0,
        )

    @property
    def lora_scaling(self) -> float:
        """LoRA's constant scale, used when gates are off (gates replace it)."""
        return self.lora_alpha / self.lora_r

    @property
    def name(self) -> str:
        """Short method name as the paper writes it: APL, AP, A, L-NoGate, BitFit, ..."""
        if self.full_finetune:
            return "FT"
        letters = "".join(c for c, on in zip("APL", (self.adapter, self.prefix, self.lora)) if on)
        parts = [letters] if letters else []
        if self.bitfit:
            parts.append("BitFit")
        if not parts:
            return "Head"
        if len(letters) > 1 and not self.gates:
            parts[0] += "-NoGate"
        if len(letters) == 1 and self.gates:
            parts[0] += "-Gate"
        return "+".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MethodConfig:
        if not isinstance(data, dict):
            raise ConfigError(f"method config must be an object, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown method config fields: {unknown}")
        return cls(**data)

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> MethodConfig:
        """A named method: apl, ap, al, pl, a, p, l, apl-nogate, bitfit, head, ft."""
        key = name.lower().replace("_", "-")
        if key not in PRESETS:
            raise ConfigError(f"unknown method {name!r}; choose from {sorted(PRESETS)}")
        return replace(PRESETS[key], **overrides)


_OFF: dict[str, Any] = {"adapter": False, "prefix": False, "lora": False}
PRESETS: dict[str, MethodConfig] = {
    "apl": MethodConfig(),
    "ap": MethodConfig(lora=False),
    "al": MethodConfig(prefix=False),
    "pl": MethodConfig(adapter=False),
    # Single methods run ungated, as the paper's A / P / L baselines.
    "a": MethodConfig(prefix=False, lora=False, gates=False),
    "p": MethodConfig(adapter=False, lora=False, gates=False),
    "l": MethodConfig(adapter=False, prefix=False, gates=False),
    "apl-nogate": MethodConfig(gates=False),
    "ap-nogate": MethodConfig(lora=False, gates=False),
    "bitfit": MethodConfig(**_OFF, bitfit=True),
    "head": MethodConfig(**_OFF),
    "ft": MethodConfig(**_OFF, full_finetune=True),
}
