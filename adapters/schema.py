"""The exact tensor schema of one task's weights: every registered method's tensors."""

from __future__ import annotations

from adapters.config import MethodConfig
from adapters.dims import BackboneDims
from adapters.methods import METHODS

__all__ = ["BackboneDims", "expected_shapes", "kept_parameter_count"]


def expected_shapes(
    cfg: MethodConfig, dims: BackboneDims, num_labels: int
) -> dict[str, tuple[int, ...]]:
    """Every tensor a task with this config must carry, with its shape."""
    shapes: dict[str, tuple[int, ...]] = {}
    for method in METHODS:
        if method.on(cfg):
            shapes.update(method.artifact_shapes(cfg, dims, num_labels))
    return shapes


def kept_parameter_count(cfg: MethodConfig, dims: BackboneDims, num_labels: int) -> int:
    """Parameters stored in the artifact (a training-time reparameterisation is folded away)."""
    total = 0
    for shape in expected_shapes(cfg, dims, num_labels).values():
        n = 1
        for s in shape:
            n *= s
        total += n
    return total
