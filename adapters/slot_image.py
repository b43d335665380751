"""A task prepared for a bank slot: fused and checked once, at the task's own sizes.

`TaskBank.write` fuses a task's artifact tensors at every write. A cache that keeps the fused
image instead makes a later write plain copies: `write_image` zero-pads each tensor at the end
of its size dimensions, which is where the fused layout keeps padding (`fused.TRIM` narrows
from 0), so the slot ends up exactly as `TaskBank.write` leaves it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from torch import Tensor

from adapters.bank import TaskBank, config_tensors, table_row
from adapters.config import MethodConfig
from adapters.dims import BankSizes
from adapters.errors import ArtifactError
from adapters.fused import fuse


@dataclass(frozen=True)
class ImageLayout:
    """Where an image lies in its slot, and its dtypes: enough to read it back (no weights)."""

    num_labels: int
    shapes: dict[str, tuple[int, ...]]
    dtypes: dict[str, torch.dtype]


@dataclass(frozen=True)
class SlotImage:
    config: MethodConfig
    num_labels: int
    tensors: dict[str, Tensor]  # fused at the task's sizes; config-built ones at the bank's
    table_row: Tensor  # (TABLE_WIDTH,)

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.tensors.values())

    @property
    def layout(self) -> ImageLayout:
        return ImageLayout(
            self.num_labels,
            {k: tuple(t.shape) for k, t in self.tensors.items()},
            {k: t.dtype for k, t in self.tensors.items()},
        )

    def pinned(self) -> SlotImage:
        """The same image in page-locked host memory (a direct copy to a GPU bank)."""
        tensors = {k: t.pin_memory() for k, t in self.tensors.items()}
        return SlotImage(self.config, self.num_labels, tensors, self.table_row.pin_memory())


@torch.no_grad()
def prepare_image(
    bank: TaskBank, cfg: MethodConfig, weights: dict[str, Tensor], device: torch.device | str
) -> SlotImage:
    """The slot image of one task for `bank`, on `device`: in the stored dtype when that is
    narrower than the bank's (fusing only moves values, so casting at the slot write gives
    the same slot, from half the bytes), else in the bank's dtype."""
    num_labels = int(weights["head_out_b"].shape[0])
    mine = bank.fitting_sizes(cfg, weights)
    dtype = image_dtype(weights, bank.dtype)
    like = torch.zeros(1, dtype=dtype, device=device)
    cast = {k: v.to(device=device, dtype=dtype) for k, v in weights.items()}
    try:
        tensors = fuse(cast, bank.dims, mine, like)
    except (RuntimeError, ValueError) as exc:
        raise ArtifactError(f"task tensors do not fit the pool's slot shapes: {exc}") from exc
    row = table_row(cfg)
    tensors.update(_config_tensors(tuple(row), bank.sizes, bank.dtype, str(device)))
    for name, source in tensors.items():
        room_shape = tuple(bank.tensors[name].shape[1:])
        if len(source.shape) != len(room_shape) or any(
            s > r for s, r in zip(source.shape, room_shape)
        ):
            raise ArtifactError(
                f"tensor {name} of shape {tuple(source.shape)} does not fit the pool's slot "
                f"shape {room_shape}"
            )
    image_tensors = {k: v.contiguous() for k, v in tensors.items()}
    return SlotImage(cfg, num_labels, image_tensors, torch.tensor(row, dtype=bank.dtype))


@functools.lru_cache(maxsize=64)
def _config_tensors(
    row: tuple[float, ...], sizes: BankSizes, dtype: torch.dtype, device: str
) -> dict[str, Tensor]:
    """A slot's config-built tensors (the gate-mixing tables), shared by every image with the
    same table row (few distinct rows exist; building them is most of an image's fixed
    cost). Never written to."""
    return {k: v.to(device=device, dtype=dtype) for k, v in config_tensors(row, sizes).items()}


def image_dtype(weights: dict[str, Tensor], bank_dtype: torch.dtype) -> torch.dtype:
    """The weights' one floating dtype if it is narrower than the bank's, else the bank's."""
    found = {t.dtype for t in weights.values()}
    if len(found) == 1:
        (dtype,) = found
        if dtype.is_floating_point and dtype.itemsize < bank_dtype.itemsize:
            return dtype
    return bank_dtype


@torch.no_grad()
def write_image(bank: TaskBank, slot: int, image: SlotImage) -> None:
    """Copy a prepared image into `slot` (cast to the bank's dtype), zeroing the padding: no
    fusing, only copies."""
    for name, target in bank.tensors.items():
        dest, source = target[slot], image.tensors[name]
        if source.shape == dest.shape:
            dest.copy_(source)
            continue
        dest[tuple(slice(0, s) for s in source.shape)].copy_(source)
        zero_outside(dest, tuple(source.shape))
    bank.write_config(slot, image.config, image.num_labels, image.table_row)


def zero_outside(dest: Tensor, shape: tuple[int, ...]) -> None:
    """Zero `dest` outside its leading block of `shape`, and nothing inside it: for each
    dimension i the block is short in, the slab [:shape[0], ..., :shape[i-1], shape[i]:]."""
    for i, (size, room) in enumerate(zip(shape, dest.shape)):
        if size < room:
            dest[(*(slice(0, k) for k in shape[:i]), slice(size, None))].zero_()


@torch.no_grad()
def read_image(bank: TaskBank, slot: int, config: MethodConfig, layout: ImageLayout) -> SlotImage:
    """The image `write_image` left in `slot`, copied back to host memory in its own dtypes
    (exact: the bank holds those values, cast from them)."""
    tensors = {}
    for name, shape in layout.shapes.items():
        out = torch.empty(shape, dtype=layout.dtypes[name])
        tensors[name] = out.copy_(bank.tensors[name][slot][tuple(slice(0, s) for s in shape)])
    row = bank.table[slot].to(device="cpu", copy=True)
    return SlotImage(config, layout.num_labels, tensors, row)
