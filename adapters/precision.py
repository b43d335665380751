"""The bound a low-precision forward is held to against float32 (docs/architecture.md)."""

from __future__ import annotations

import torch

# Each format's unit roundoff u.
UNIT_ROUNDOFF = {torch.float32: 2.0**-24, torch.bfloat16: 2.0**-8, torch.float16: 2.0**-11}


def precision_bound(dtype: torch.dtype, reference: torch.Tensor) -> float:
    """8 u max(1, max |reference|): the largest elementwise difference from the float32
    `reference` a forward in `dtype` may show."""
    return 8 * UNIT_ROUNDOFF[dtype] * max(1.0, float(reference.abs().max()))
