"""TaskBank: every resident task's tensors in the fused layout, stacked over slots.

Tensors are slot-major, (S, L, ...) for per-layer tensors and (S, ...) for the head, so a
batch gathers each tensor once for all layers. Tasks with smaller sizes (rank, bottleneck,
prefix length, label count) are zero-padded to the bank's sizes; zero padding is exact. The
per-slot scalars live twice: as Python values on the host (`SlotMeta`, what a batch plans
with, never read back from the device) and as small device tables the forward gathers rows of.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from adapters import constants as C
from adapters.bottleneck import ACTIVATIONS
from adapters.config import MethodConfig
from adapters.errors import ArtifactError
from adapters.fused import TRIM, fuse, fused_shapes, mixing, mixing_shapes, unfused
from adapters.schema import BackboneDims

ACTIVATION_IDS = {name: i for i, name in enumerate(ACTIVATIONS)}
G = len(C.GATE_NAMES)
# Columns of the device gate table: gate on (G), gate constant (G), activation one-hot.
ON, CONST, ACT = 0, G, 2 * G
TABLE_WIDTH = 2 * G + len(ACTIVATIONS)


@dataclass(frozen=True)
class BankSizes:
    """The largest sizes a bank holds (a serving pool's limits)."""

    lora_rank: int = C.BANK_LORA_RANK
    bottleneck: int = C.BANK_BOTTLENECK
    prefix_length: int = C.BANK_PREFIX_LENGTH
    num_labels: int = C.BANK_LABELS

    def as_tuple(self) -> tuple[int, int, int, int]:
        return (self.lora_rank, self.bottleneck, self.prefix_length, self.num_labels)


@dataclass
class SlotMeta:
    """Host-side per-slot scalars: plain Python values, one entry per slot."""

    lora_rank: list[int] = field(default_factory=list)
    bottleneck: list[int] = field(default_factory=list)
    prefix_length: list[int] = field(default_factory=list)
    num_labels: list[int] = field(default_factory=list)
    bitfit: list[bool] = field(default_factory=list)
    gated: list[bool] = field(default_factory=list)
    activation: list[int] = field(default_factory=list)

    @classmethod
    def empty(cls, slots: int) -> SlotMeta:
        zeros, no = [0] * slots, [False] * slots
        return cls(
            lora_rank=zeros[:],
            bottleneck=zeros[:],
            prefix_length=zeros[:],
            num_labels=zeros[:],
            bitfit=no[:],
            gated=no[:],
            activation=zeros[:],
        )

    def write(self, slot: int, cfg: MethodConfig, num_labels: int) -> None:
        used = cfg.used_sizes
        self.lora_rank[slot] = used.lora_r
        self.bottleneck[slot] = used.bottleneck
        self.prefix_length[slot] = used.prefix_length
        self.num_labels[slot] = num_labels
        self.bitfit[slot] = cfg.bitfit
        self.gated[slot] = cfg.uses_gates
        self.activation[slot] = ACTIVATION_IDS[cfg.adapter_non_linearity] if cfg.adapter else -1


def gate_row(cfg: MethodConfig) -> list[float]:
    """One slot's row of the gate table."""
    on = (cfg.prefix, cfg.lora, cfg.lora, cfg.adapter)
    gates = [float(cfg.uses_gates and o) for o in on]
    const = [1.0, cfg.lora_scaling, cfg.lora_scaling, 1.0]
    act = [0.0] * len(ACTIVATIONS)
    act[ACTIVATION_IDS[cfg.adapter_non_linearity]] = 1.0
    return gates + const + act


class TaskBank:
    """Fused per-slot tensors, the device tables and the host mirror of the slots' sizes."""

    def __init__(
        self,
        tensors: dict[str, Tensor],
        meta: SlotMeta,
        gate_table: Tensor,
        prefix_table: Tensor,
        sizes: BankSizes,
        dims: BackboneDims,
    ) -> None:
        self.tensors, self.meta, self.sizes, self.dims = tensors, meta, sizes, dims
        self.gate_table = gate_table  # (S, TABLE_WIDTH), the bank's dtype
        self.prefix_table = prefix_table  # (S, P) bool: which prefix positions are real
        self._trimmed: dict[tuple[str, int], Tensor] = {}

    @property
    def slots(self) -> int:
        return len(self.meta.lora_rank)

    @property
    def dtype(self) -> torch.dtype:
        return self.gate_table.dtype

    @property
    def device(self) -> torch.device:
        return self.gate_table.device

    def slot_view(self, name: str, slot: int) -> Tensor:
        """One slot's tensor `name` in the artifact's layout, at the bank's sizes."""
        return unfused(self.tensors, name, slot)

    def trimmed(self, name: str, width: int | None = None) -> Tensor:
        """All slots' `name` tensor with its size dimension cut to `width` (a cached view)."""
        if name == "prefix_table" and width is not None:
            dims: tuple[int, ...] = (1,)
        elif width is None or name not in TRIM:
            return self.tensors[name]
        else:
            dims = TRIM[name][0]
        key = (name, width)
        view = self._trimmed.get(key)
        if view is None:
            view = self.prefix_table if name == "prefix_table" else self.tensors[name]
            for dim in dims:
                view = view.narrow(dim, 0, width)
            self._trimmed[key] = view
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
        shapes = fused_shapes(dims, *sizes.as_tuple())
        shapes.update(mixing_shapes(sizes.lora_rank, sizes.bottleneck))
        new = torch.empty if lazy else torch.zeros
        tensors = {
            name: new((slots, *shape), device=device, dtype=dtype) for name, shape in shapes.items()
        }
        table = torch.zeros(slots, TABLE_WIDTH, device=device, dtype=dtype)
        table[:, CONST : CONST + G] = 1.0
        prefix = torch.zeros(slots, sizes.prefix_length, device=device, dtype=torch.bool)
        return cls(tensors, SlotMeta.empty(slots), table, prefix, sizes, dims)

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
        fused = {k: v.unsqueeze(0) for k, v in fuse(tensors, dims, sizes.as_tuple(), like).items()}
        for name, shape in mixing_shapes(sizes.lora_rank, sizes.bottleneck).items():
            fused[name] = like.new_zeros(1, *shape)
        bank = cls(
            fused,
            SlotMeta.empty(1),
            like.new_zeros(1, TABLE_WIDTH),
            torch.zeros(1, sizes.prefix_length, dtype=torch.bool, device=like.device),
            sizes,
            dims,
        )
        bank._write_meta(0, cfg, int(tensors["head_out_b"].shape[0]))
        return bank

    def fitting_sizes(
        self, cfg: MethodConfig, weights: dict[str, Tensor]
    ) -> tuple[int, int, int, int]:
        """A task's own (rank, bottleneck, prefix, labels); ArtifactError if no slot holds it."""
        mine = task_sizes([(cfg, weights)]).as_tuple()
        room = self.sizes.as_tuple()
        if any(m > r for m, r in zip(mine, room)):
            raise ArtifactError(
                f"a task of sizes {mine} (rank, bottleneck, prefix, labels) does not fit the "
                f"pool's slot sizes {room}"
            )
        return mine

    @torch.no_grad()
    def write(self, slot: int, cfg: MethodConfig, weights: dict[str, Tensor]) -> None:
        """Copy one task's tensors into `slot` (cast to the bank's dtype); the rest is zeroed."""
        num_labels = int(weights["head_out_b"].shape[0])
        self.fitting_sizes(cfg, weights)
        room = self.sizes.as_tuple()
        like = self.gate_table
        cast = {k: v.to(device=like.device, dtype=like.dtype) for k, v in weights.items()}
        try:
            fused = fuse(cast, self.dims, room, like)
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
        self._write_meta(slot, cfg, num_labels)

    @torch.no_grad()
    def _write_meta(self, slot: int, cfg: MethodConfig, num_labels: int) -> None:
        self.meta.write(slot, cfg, num_labels)
        row = gate_row(cfg)
        self.gate_table[slot] = torch.tensor(row, dtype=self.dtype).to(self.device)
        mix = mixing(row[ON:CONST], row[CONST : CONST + G], *self.sizes.as_tuple()[:2])
        for name, table in mix.items():
            self.tensors[name][slot].copy_(table)
        length = self.meta.prefix_length[slot]
        self.prefix_table[slot] = torch.arange(self.prefix_table.shape[1]) < length

    @torch.no_grad()
    def clear(self, slot: int) -> None:
        for t in self.tensors.values():
            t[slot].zero_()
        self._write_meta(slot, MethodConfig.preset("head"), 0)


def task_sizes(tasks: list[tuple[MethodConfig, dict[str, Tensor]]]) -> BankSizes:
    """The smallest sizes that hold these tasks."""
    used = [c.used_sizes for c, _ in tasks]
    return BankSizes(
        lora_rank=max(u.lora_r for u in used),
        bottleneck=max(u.bottleneck for u in used),
        prefix_length=max(u.prefix_length for u in used),
        num_labels=max(int(w["head_out_b"].shape[0]) for _, w in tasks),
    )
