"""The fused per-slot layout the mixed forward reads, built from a task's artifact tensors.

A task's tensors are stored in the artifact one per method (`schema.expected_shapes`). The
bank keeps them fused, per layer, as each method declares (`Method.bank_tensors`, `fuse`), so
one batched matmul does the work of several: a projection site (`methods.gates`) gives the
gate logits of the gates that read its input together with one method's down-projection.
Biases carry a singleton token dimension so they broadcast in baddbmm without a reshape.

Sizes are trimmed to a batch's largest (rank, bottleneck, prefix length, label count) by
cutting the declared dimensions of each tensor to a prefix, which keeps the gather of a
trimmed bank tensor a copy of contiguous runs. Everything a task does not use, and every
padding row or column, is zero, which is exact.
"""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache

from torch import Tensor

from adapters.config import MethodConfig
from adapters.dims import BackboneDims, BankSizes
from adapters.methods import METHODS
from adapters.methods.base import BankTensor, Method

# Every fused tensor, and the method that owns it.
TENSORS: dict[str, BankTensor] = {n: t for m in METHODS for n, t in m.bank_tensors().items()}
OWNER: dict[str, Method] = {n: m for m in METHODS for n in m.owned}
# Tensors built from a slot's config, not its weights (the gates' mixing tables).
FROM_CONFIG = tuple(
    n for m in METHODS for n in m.config_tensors([0.0] * m.table_columns, BankSizes.zero())
)


def _artifact_owners() -> dict[str, Method]:
    """Which method each artifact tensor belongs to (read off a config using every method)."""
    every = MethodConfig(**{m.switch: True for m in METHODS if m.switch is not None})
    dims = BackboneDims(hidden=8, layers=1, heads=1, intermediate=8)
    return {n: m for m in METHODS for n in m.artifact_shapes(every, dims, 2)}


ARTIFACT_OWNER = _artifact_owners()


def fused_shapes(dims: BackboneDims, sizes: BankSizes) -> dict[str, tuple[int, ...]]:
    """Per-slot shape of every fused tensor (per-layer tensors lead with L)."""
    return {name: t.shape(dims, sizes) for name, t in TENSORS.items()}


@lru_cache(maxsize=256)
def trimmed_width(name: str, dims: BackboneDims, size: int) -> int:
    """Width of `name`'s trimmed dimensions when its size is cut to `size` units."""
    t = TENSORS[name]
    assert t.size is not None
    return t.shape(dims, replace(BankSizes.zero(), **{t.size: size}))[t.trim[0]]


def fuse(
    tensors: dict[str, Tensor], dims: BackboneDims, sizes: BankSizes, like: Tensor
) -> dict[str, Tensor]:
    """The fused layout of one task (artifact-layout `tensors`), padded to `sizes`, without
    the config-built tables. Differentiable: training builds it from live parameters. `like`
    gives the dtype and device of tensors the task lacks."""
    out: dict[str, Tensor] = {}
    for method in METHODS:
        out.update(method.fuse(tensors, dims, sizes, like))
    return out


def unfused(tensors: dict[str, Tensor], name: str, slot: int) -> Tensor:
    """One slot's artifact-layout tensor `name` read back from the fused layout, at the
    bank's sizes (a view where the layout allows, else a copy)."""
    fused = {k: v[slot] for k, v in tensors.items()}
    return ARTIFACT_OWNER[name].unfuse(fused, name)
