"""The low-resource protocol: K training examples, a held-out dev set, GLUE dev as test."""

from __future__ import annotations

import random
from dataclasses import dataclass

from adapters.data.errors import DataError
from adapters.data.examples import Example


@dataclass(frozen=True)
class LowResourceSplit:
    """Training, model-selection and evaluation sets of one run."""

    train: list[Example]
    dev: list[Example]
    test: list[Example]


def low_resource_split(
    train: list[Example],
    test: list[Example],
    k: int | None,
    seed: int,
    dev_size: int = 1000,
) -> LowResourceSplit:
    """Shuffle `train` with `seed`; take `k` training examples and the next `dev_size` as dev.

    `k=None` uses all data: the first `dev_size` shuffled examples are dev, the rest train.
    Dev gets fewer than `dev_size` examples when not enough remain. `test` (the original
    GLUE dev set) is returned unchanged. The same inputs and seed give the same split.
    """
    if dev_size < 0:
        raise DataError(f"dev_size must be >= 0, got {dev_size}")
    shuffled = list(train)
    random.Random(seed).shuffle(shuffled)
    if k is None:
        if dev_size >= len(shuffled):
            raise DataError(
                f"dev_size {dev_size} leaves no training data out of {len(shuffled)} examples"
            )
        return LowResourceSplit(shuffled[dev_size:], shuffled[:dev_size], list(test))
    if k < 1:
        raise DataError(f"k must be a positive number of examples, got {k}")
    if k >= len(shuffled):
        raise DataError(f"k={k} needs more than the {len(shuffled)} training examples available")
    return LowResourceSplit(shuffled[:k], shuffled[k : k + dev_size], list(test))
