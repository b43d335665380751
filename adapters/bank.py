"""TaskBank: per-task tensors stacked over slots, and the per-batch view of it.

Per-layer tensors are stored layer-major, (L, S, ...), so one layer's slots form one
contiguous block that a batch gathers rows from; head tensors are (S, ...). Tasks with smaller
sizes (rank, bottleneck, prefix length, label count) are zero-padded to the bank's sizes; zero
padding is exact. A batch selects each row's slot with an index vector and only pays for the
largest size among the slots it uses.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from adapters import constants as C
from adapters.bottleneck import ACTIVATIONS
from adapters.config import MethodConfig
from adapters.errors import ArtifactError
from adapters.schema import BackboneDims, bitfit_sizes

ACTIVATION_IDS = {name: i for i, name in enumerate(ACTIVATIONS)}


@dataclass(frozen=True)
class BankSizes:
    """The largest sizes a bank holds (a serving pool's limits)."""

    lora_rank: int = 16
    bottleneck: int = 96
    prefix_length: int = 32
    num_labels: int = 16


def bank_shapes(dims: BackboneDims, sizes: BankSizes) -> dict[str, tuple[int, ...]]:
    """Per-slot shape of every bank tensor (without the slot dimension)."""
    L, d, r, m = dims.layers, dims.hidden, sizes.lora_rank, sizes.bottleneck
    P, n, G = sizes.prefix_length, sizes.num_labels, len(C.GATE_NAMES)
    shapes = {
        "lora_q_A": (L, d, r),
        "lora_q_B": (L, r, d),
        "lora_v_A": (L, d, r),
        "lora_v_B": (L, r, d),
        "prefix_k": (L, P, d),
        "prefix_v": (L, P, d),
        "adapter_down_w": (L, d, m),
        "adapter_down_b": (L, m),
        "adapter_up_w": (L, m, d),
        "adapter_up_b": (L, d),
        "gate_w": (L, d, G),
        "gate_b": (L, G),
        "head_dense_w": (d, d),
        "head_dense_b": (d,),
        "head_out_w": (d, n),
        "head_out_b": (n,),
    }
    for target, width in bitfit_sizes(dims).items():
        shapes[f"bitfit_{target}"] = (L, width)
    return shapes


@dataclass
class SlotMeta:
    """Per-slot scalars, each a tensor with leading dimension S."""

    lora_rank: Tensor  # (S,) long
    bottleneck: Tensor  # (S,) long
    prefix_length: Tensor  # (S,) long
    num_labels: Tensor  # (S,) long
    bitfit: Tensor  # (S,) bool
    activation: Tensor  # (S,) long, index into ACTIVATIONS
    gate_on: Tensor  # (S, G) bool
    gate_const: Tensor  # (S, G) float

    @classmethod
    def empty(cls, slots: int, device: torch.device | str = "cpu") -> SlotMeta:
        z = torch.zeros(slots, dtype=torch.long, device=device)
        G = len(C.GATE_NAMES)
        return cls(
            lora_rank=z.clone(),
            bottleneck=z.clone(),
            prefix_length=z.clone(),
            num_labels=z.clone(),
            bitfit=torch.zeros(slots, dtype=torch.bool, device=device),
            activation=z.clone(),
            gate_on=torch.zeros(slots, G, dtype=torch.bool, device=device),
            gate_const=torch.ones(slots, G, device=device),
        )

    def write(self, slot: int, cfg: MethodConfig, num_labels: int) -> None:
        """Record one task's sizes and gate settings in `slot`."""
        self.lora_rank[slot] = cfg.lora_r if cfg.lora else 0
        self.bottleneck[slot] = cfg.bottleneck if cfg.adapter else 0
        self.prefix_length[slot] = cfg.prefix_length if cfg.prefix else 0
        self.num_labels[slot] = num_labels
        self.bitfit[slot] = cfg.bitfit
        self.activation[slot] = ACTIVATION_IDS[cfg.adapter_non_linearity]
        on = (cfg.prefix, cfg.lora, cfg.lora, cfg.adapter)
        self.gate_on[slot] = torch.tensor([cfg.uses_gates and o for o in on])
        const = (1.0, cfg.lora_scaling, cfg.lora_scaling, 1.0)
        self.gate_const[slot] = torch.tensor(const, dtype=self.gate_const.dtype)


def is_layer_tensor(name: str) -> bool:
    """Per-layer tensors (everything but the head) carry a leading layer dimension."""
    return not name.startswith("head_")


class TaskBank:
    """Stacked per-slot tensors plus metadata; the mixed forward reads it by slot index.

    `tensors[name]` is (L, S, ...) for per-layer tensors and (S, ...) for the head.
    """

    def __init__(self, tensors: dict[str, Tensor], meta: SlotMeta) -> None:
        self.tensors = tensors
        self.meta = meta

    def slots_of(self, name: str, layer: int | None = None) -> Tensor:
        """All slots' `name` tensor (at `layer` for per-layer tensors): (S, ...), contiguous."""
        t = self.tensors[name]
        return t[layer] if layer is not None else t

    def slot_view(self, name: str, slot: int) -> Tensor:
        """One slot's `name` tensor as the artifact stores it: (L, ...) or the head's shape."""
        t = self.tensors[name]
        return t[:, slot] if is_layer_tensor(name) else t[slot]

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
        """An all-zero pool of `slots` slots. `lazy`: leave the memory unwritten (`write`
        zeroes a slot before filling it, and a batch only reads written slots), so on a CPU
        the pages are committed only as slots fill."""
        new = torch.empty if lazy else torch.zeros
        tensors = {}
        for name, shape in bank_shapes(dims, sizes).items():
            full = (shape[0], slots, *shape[1:]) if is_layer_tensor(name) else (slots, *shape)
            tensors[name] = new(full, device=device, dtype=dtype)
        return cls(tensors, SlotMeta.empty(slots, device))

    @classmethod
    def from_tasks(
        cls,
        tasks: list[tuple[MethodConfig, dict[str, Tensor]]],
        dims: BackboneDims,
        device: torch.device | str = "cpu",
    ) -> TaskBank:
        """A bank holding exactly these tasks, slot i = tasks[i]."""
        sizes = BankSizes(
            lora_rank=max(c.lora_r for c, _ in tasks),
            bottleneck=max(c.bottleneck for c, _ in tasks),
            prefix_length=max(c.prefix_length for c, _ in tasks),
            num_labels=max(w["head_out_b"].shape[0] for _, w in tasks),
        )
        bank = cls.allocate(len(tasks), dims, sizes, device)
        for slot, (cfg, weights) in enumerate(tasks):
            bank.write(slot, cfg, weights)
        return bank

    @property
    def slots(self) -> int:
        return self.meta.lora_rank.shape[0]

    @torch.no_grad()
    def write(self, slot: int, cfg: MethodConfig, weights: dict[str, Tensor]) -> None:
        """Copy one task's tensors into `slot`, zeroing everything it does not use."""
        for name in self.tensors:
            target = self.slot_view(name, slot)
            target.zero_()
            source = weights.get(name)
            if source is None:
                continue
            room = tuple(target.shape)
            if len(source.shape) != len(room) or any(s > r for s, r in zip(source.shape, room)):
                raise ArtifactError(
                    f"tensor {name} of shape {tuple(source.shape)} does not fit the pool's "
                    f"slot shape {room}"
                )
            index = tuple(slice(0, s) for s in source.shape)
            target[index].copy_(source)
        self.meta.write(slot, cfg, int(weights["head_out_b"].shape[0]))

    @torch.no_grad()
    def clear(self, slot: int) -> None:
        for name in self.tensors:
            self.slot_view(name, slot).zero_()
        self.meta.write(slot, MethodConfig.preset("head"), 0)
