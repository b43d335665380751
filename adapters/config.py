"""The method configuration: which PELT methods a task uses, and their sizes.

One flat set of fields (the manifest's `method` object), each declared and checked by the
method module it belongs to (`adapters.methods`); `full_finetune` is the trainer's own.
"""

from __future__ import annotations

from typing import Any

from adapters.dims import BankSizes
from adapters.errors import ConfigError
from adapters.methods import GATES, METHODS, SIZED
from adapters.methods.fields import Field, flag

# A training mode, not a method: the whole backbone trains (its result is not an adapter).
FULL_FINETUNE = flag("full_finetune", False)
FIELDS: dict[str, Field] = {f.name: f for m in METHODS for f in m.fields}
FIELDS[FULL_FINETUNE.name] = FULL_FINETUNE


class MethodConfig:
    """Which methods a task uses and their settings, validated on construction: a wrong
    value is named. `MethodConfig()` is UniPELT (APL) with the paper's sizes; no method and
    no full fine-tuning means head-only."""

    __slots__ = ("_values",)

    def __init__(self, **values: Any) -> None:
        unknown = sorted(set(values) - set(FIELDS))
        if unknown:
            raise ConfigError(f"unknown method config fields: {unknown}")
        merged = {name: values.get(name, f.default) for name, f in FIELDS.items()}
        for f in FIELDS.values():
            problem = f.check(merged[f.name])
            if problem is not None:
                raise ConfigError(problem)
        object.__setattr__(self, "_values", merged)
        for method in METHODS:
            problem = method.check(self)
            if problem is not None:
                raise ConfigError(problem)
        if self.full_finetune and self.methods_on:
            raise ConfigError(
                f"full_finetune trains the whole backbone; it cannot be combined with "
                f"{', '.join(self.methods_on)}"
            )

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(f"MethodConfig has no field {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("MethodConfig is immutable; use replace()")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MethodConfig) and self._values == other._values

    def __hash__(self) -> int:
        return hash(tuple(self._values.items()))

    def __repr__(self) -> str:
        return f"MethodConfig({', '.join(f'{k}={v!r}' for k, v in self._values.items())})"

    def __reduce__(self):
        return (_from_values, (self.to_dict(),))

    @property
    def methods_on(self) -> list[str]:
        """The switched methods this task uses (gates only when some gated method is on)."""
        return [m.name for m in METHODS if m.switch is not None and m.on(self)]

    @property
    def uses_pelt(self) -> bool:
        return bool(self.methods_on)

    @property
    def uses_gates(self) -> bool:
        return GATES.on(self)

    def sizes(self, num_labels: int = 0) -> BankSizes:
        """The sizes a task uses: 0 for a method that is off (an off LoRA keeps its lora_r)."""
        return BankSizes(**{m.size: m.used_size(self, num_labels) for m in SIZED if m.size})

    @property
    def used_sizes(self) -> BankSizes:
        return self.sizes()

    @property
    def name(self) -> str:
        """Short method name as the paper writes it: APL, AP, A, L-NoGate, BitFit, ..."""
        if self.full_finetune:
            return "FT"
        letters = "".join(m.letter for m in METHODS if m.letter and m.on(self))
        parts = [letters] if letters else []
        parts += [m.label for m in METHODS if m.label and m.on(self)]
        if not parts:
            return "Head"
        if len(letters) > 1 and not self.gates:
            parts[0] += "-NoGate"
        if len(letters) == 1 and self.gates:
            parts[0] += "-Gate"
        return "+".join(parts)

    def replace(self, **changes: Any) -> MethodConfig:
        return MethodConfig(**{**self._values, **changes})

    def to_dict(self) -> dict[str, Any]:
        return dict(self._values)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MethodConfig:
        if not isinstance(data, dict):
            raise ConfigError(f"method config must be an object, got {type(data).__name__}")
        return cls(**data)

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> MethodConfig:
        """A named method: apl, ap, al, pl, a, p, l, apl-nogate, bitfit, head, ft, ..."""
        key = name.lower().replace("_", "-")
        if key not in PRESETS:
            raise ConfigError(f"unknown method {name!r}; choose from {sorted(PRESETS)}")
        return PRESETS[key].replace(**overrides) if overrides else PRESETS[key]


def _from_values(values: dict[str, Any]) -> MethodConfig:
    return MethodConfig(**values)


def _preset(on: tuple[str, ...], **extra: Any) -> MethodConfig:
    """Every switch off but the named ones (so a new method is off in the old presets)."""
    switches = {m.switch: m.switch in on for m in METHODS if m.switch is not None}
    return MethodConfig(**switches, **extra)


# Presets in report order: the trainer's baseline, then each method module's.
PRESETS: dict[str, MethodConfig] = {"ft": _preset((), full_finetune=True)}
PRESETS.update({name: _preset(on) for m in METHODS for name, on in m.presets.items()})
