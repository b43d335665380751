"""The sizes tensors are shaped by: the backbone's, and the largest a bank slot holds."""

from __future__ import annotations

from dataclasses import astuple, dataclass, fields

from adapters import constants as C


@dataclass(frozen=True)
class BackboneDims:
    """The sizes of a BERT-layout encoder that adapter shapes depend on."""

    hidden: int
    layers: int
    heads: int
    intermediate: int


@dataclass(frozen=True)
class BankSizes:
    """One size per method that has a size dimension (each method module names its field):
    the largest a bank holds (a serving pool's limits), or what a task or a batch uses."""

    lora_rank: int = C.BANK_LORA_RANK
    bottleneck: int = C.BANK_BOTTLENECK
    prefix_length: int = C.BANK_PREFIX_LENGTH
    num_labels: int = C.BANK_LABELS

    def as_tuple(self) -> tuple[int, ...]:
        return astuple(self)

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def zero(cls) -> BankSizes:
        return cls(*(0 for _ in fields(cls)))
