"""TaskBank: every resident task's tensors in the fused layout, stacked over slots.

Tensors are slot-major, (S, L, ...) for per-layer tensors and (S, ...) for the head, so a
batch gathers each tensor once for all layers. Tasks with smaller sizes (rank, bottleneck,
prefix length, label count) are zero-padded to the bank's sizes; zero padding is exact. The
per-slot scalars live twice: as Python values on the host (`SlotMeta`, what a batch plans
with, never read back from the device) and as a small device table the forward gathers rows
of (each method's `table_columns`: gate switches and constants, the adapter's activation).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import Tensor

from adapters.config import MethodConfig
from adapters.dims import BackboneDims, BankSizes
from adapters.errors import ArtifactError
from adapters.fused import FROM_CONFIG, TENSORS, fuse, fused_shapes, trimmed_width, unfused
from adapters.methods import METHODS, SIZED

__all__ = ["BankSizes", "SlotMeta", "TaskBank", "table_row", "task_sizes"]


def _table_layout() -> dict[str, slice]:
    """Each method's columns of the device table, in registration order."""
    layout, start = {}, 0
    for m in METHODS:
        layout[m.name] = slice(start, start + m.table_columns)
        start += m.table_columns
    return layout


TABLE = _table_layout()
TABLE_WIDTH = sum(m.table_columns for m in METHODS)
EMPTY = MethodConfig.preset("head")  # what a cleared slot holds
KEYED = tuple(m for m in METHODS if m.prepends_keys)
VALUED = tuple(m for m in METHODS if m.slot_value(EMPTY) is not None)


def table_row(cfg: MethodConfig) -> list[float]:
    """One slot's row of the device table."""
    return [v for m in METHODS for v in m.table_row(cfg)]


@dataclass
class SlotMeta:
    """Host-side per-slot values, plain Python lists with one entry per slot: each sized
    method's size, and each method's slot value (`Method.slot_value`)."""

    sizes: dict[str, list[int]]
    values: dict[str, list[Any]]

    @classmethod
    def empty(cls, slots: int) -> SlotMeta:
        return cls(
            {m.size: [0] * slots for m in SIZED if m.size is not None},
            {m.name: [m.slot_value(EMPTY)] * slots for m in VALUED},
        )

    def write(self, slot: int, cfg: MethodConfig, num_labels: int) -> None:
        for m in SIZED:
            assert m.size is not None
            self.sizes[m.size][slot] = m.used_size(cfg, num_labels)
        for m in VALUED:
            self.values[m.name][slot] = m.slot_value(cfg)

    def row(self, slot: int) -> dict[str, Any]:
        return {k: v[slot] for part in (self.sizes, self.values) for k, v in part.items()}


class TaskBank:
    """Fused per-slot tensors, the device table and the host mirror of the slots' sizes."""

    def __init__(
        self,
        tensors: dict[str, Tensor],
        meta: SlotMeta,
        table: Tensor,
        key_tables: dict[str, Tensor],
        sizes: BankSizes,
        dims: BackboneDims,
    ) -> None:
        self.tensors, self.meta, self.sizes, self.dims = tensors, meta, sizes, dims
        self.table = table  # (S, TABLE_WIDTH), the bank's dtype
        self.key_tables = key_tables  # method -> (S, size) bool: which key positions are real
        self._trimmed: dict[tuple[str, int], Tensor] = {}

    @property
    def slots(self) -> int:
        return self.table.shape[0]

    @property
    def dtype(self) -> torch.dtype:
        return self.table.dtype

    @property
    def device(self) -> torch.device:
        return self.table.device

    def slot_view(self, name: str, slot: int) -> Tensor:
        """One slot's tensor `name` in the artifact's layout, at the bank's sizes."""
        return unfused(self.tensors, name, slot)

    def trimmed(self, name: str, sizes: BankSizes) -> Tensor:
        """All slots' `name` tensor with its size dimensions cut to `sizes` (a cached view)."""
        spec = TENSORS[name]
        if spec.size is None or not spec.trim:
            return self.tensors[name]
        size = getattr(sizes, spec.size)
        view = self._trimmed.get((name, size))
        if view is None:
            view = self.tensors[name]
            width = trimmed_width(name, self.dims, size)
            for dim in spec.trim:
                view = view.narrow(dim, 0, width)
            self._trimmed[(name, size)] = view
        return view

    def key_table(self, method: str, size: int) -> Tensor:
        """(S, size) which of a method's first `size` key positions are real, per slot."""
        key = (f"keys:{method}", size)
        view = self._trimmed.get(key)
        if view is None:
            view = self._trimmed[key] = self.key_tables[method].narrow(1, 0, size)
        return view

    @classmethod
    def allocate(
        cls,
        slots: int,
        dims: BackboneDims,
        sizes: BankSizes,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        lazy: bool = False,
    ) -> TaskBank:
        """An all-zero pool of `slots` slots. `lazy`: leave the weight memory unwritten
        (`write` overwrites a whole slot, and a batch only reads written slots), so on a CPU
        the pages are committed only as slots fill."""
        new = torch.empty if lazy else torch.zeros
        tensors = {
            name: new((slots, *shape), device=device, dtype=dtype)
            for name, shape in fused_shapes(dims, sizes).items()
        }
        table = torch.tensor([table_row(EMPTY)] * slots, dtype=dtype).to(device)
        keys = {
            m.name: torch.zeros(slots, getattr(sizes, m.size), device=device, dtype=torch.bool)
            for m in KEYED
            if m.size is not None
        }
        return cls(tensors, SlotMeta.empty(slots), table, keys, sizes, dims)

    @classmethod
    def from_tasks(
        cls,
        tasks: list[tuple[MethodConfig, dict[str, Tensor]]],
        dims: BackboneDims,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> TaskBank:
        """A bank holding exactly these tasks, slot i = tasks[i]."""
        bank = cls.allocate(len(tasks), dims, task_sizes(tasks), device, dtype)
        for slot, (cfg, weights) in enumerate(tasks):
            bank.write(slot, cfg, weights)
        return bank

    @classmethod
    def of_task(cls, cfg: MethodConfig, tensors: dict[str, Tensor], dims: BackboneDims) -> TaskBank:
        """A one-slot bank over live tensors (gradients flow through it), sized to the task."""
        sizes = task_sizes([(cfg, tensors)])
        like = tensors["head_dense_w"]
        fused = {k: v.unsqueeze(0) for k, v in fuse(tensors, dims, sizes, like).items()}
        for name, shape in fused_shapes(dims, sizes).items():
            if name in FROM_CONFIG:
                fused[name] = like.new_zeros(1, *shape)
        keys = {
            m.name: torch.zeros(1, getattr(sizes, m.size), dtype=torch.bool, device=like.device)
            for m in KEYED
            if m.size is not None
        }
        bank = cls(fused, SlotMeta.empty(1), like.new_zeros(1, TABLE_WIDTH), keys, sizes, dims)
        bank.write_config(0, cfg, int(tensors["head_out_b"].shape[0]))
        return bank

    def fitting_sizes(self, cfg: MethodConfig, weights: dict[str, Tensor]) -> BankSizes:
        """A task's own sizes; ArtifactError if no slot holds them."""
        mine = cfg.sizes(int(weights["head_out_b"].shape[0]))
        if any(getattr(mine, f.name) > getattr(self.sizes, f.name) for f in fields(BankSizes)):
            raise ArtifactError(
                f"a task of sizes {mine.as_tuple()} ({', '.join(BankSizes.names())}) does not "
                f"fit the pool's slot sizes {self.sizes.as_tuple()}"
            )
        return mine

    @torch.no_grad()
    def write(self, slot: int, cfg: MethodConfig, weights: dict[str, Tensor]) -> None:
        """Copy one task's tensors into `slot` (cast to the bank's dtype); the rest is zeroed."""
        num_labels = int(weights["head_out_b"].shape[0])
        self.fitting_sizes(cfg, weights)
        like = self.table
        cast = {k: v.to(device=like.device, dtype=like.dtype) for k, v in weights.items()}
        try:
            fused = fuse(cast, self.dims, self.sizes, like)
        except (RuntimeError, ValueError) as exc:
            raise ArtifactError(f"task tensors do not fit the pool's slot shapes: {exc}") from exc
        for name, source in fused.items():
            target = self.tensors[name]
            if tuple(source.shape) != tuple(target.shape[1:]):
                raise ArtifactError(
                    f"tensor {name} of shape {tuple(source.shape)} does not fit the "
                    f"pool's slot shape {tuple(target.shape[1:])}"
                )
            target[slot].copy_(source)
        self.write_config(slot, cfg, num_labels)

    @torch.no_grad()
    def write_config(
        self, slot: int, cfg: MethodConfig, num_labels: int, row: Tensor | None = None
    ) -> None:
        """Everything of a slot that comes from its config: host values, the device table row,
        the config-built tensors (unless `row`, a prepared table row, is given: its caller
        writes those) and the key tables."""
        self.meta.write(slot, cfg, num_labels)
        if row is None:
            values = table_row(cfg)
            self.table[slot] = torch.tensor(values, dtype=self.dtype).to(self.device)
            for name, t in config_tensors(values, self.sizes).items():
                self.tensors[name][slot].copy_(t)
        else:
            self.table[slot].copy_(row)
        for m in KEYED:
            assert m.size is not None
            keys = self.key_tables[m.name]
            keys[slot] = torch.arange(keys.shape[1]) < self.meta.sizes[m.size][slot]

    @torch.no_grad()
    def clear(self, slot: int) -> None:
        for t in self.tensors.values():
            t[slot].zero_()
        self.write_config(slot, EMPTY, 0)


def config_tensors(row: list[float] | tuple[float, ...], sizes: BankSizes) -> dict[str, Tensor]:
    """The config-built tensors of a slot whose table row is `row`, at `sizes`."""
    out: dict[str, Tensor] = {}
    for m in METHODS:
        out.update(m.config_tensors(list(row[TABLE[m.name]]), sizes))
    return out


def task_sizes(tasks: list[tuple[MethodConfig, dict[str, Tensor]]]) -> BankSizes:
    """The smallest sizes that hold these tasks."""
    used = [cfg.sizes(int(w["head_out_b"].shape[0])) for cfg, w in tasks]
    return BankSizes(**{f.name: max(getattr(u, f.name) for u in used) for f in fields(BankSizes)})
