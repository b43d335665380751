"""What a PELT method declares: the one interface every method module implements.

A method module (`adapters/methods/<name>.py`) holds everything about its method: its config
fields and their checks, its artifact tensors (shapes, initial values), its part of the fused
bank layout and how that trims to a batch's sizes, its per-slot switch and plan switch, what
the forward gathers, its terms at the layer loop's attach points, and its training defaults.
The library loops over the registered methods (`adapters.methods.METHODS`) and names none.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from adapters.dims import BackboneDims, BankSizes
from adapters.methods.fields import Field

if TYPE_CHECKING:
    from adapters.backbone import Backbone
    from adapters.config import MethodConfig
    from adapters.peft_layout import PeftFormat
    from adapters.plan import BatchPlan
    from adapters.rows import BatchRows

# Attach points of the layer loop (`adapters/model.py`), in the order it reaches them. Token
# points see the real tokens, (n, w) when the forward packs them, else (B, T, w); row points
# see (B, T, w). Terms at one point run in registration order.
QKV = "qkv"  # tokens: the fused [q | v | k] projection
QKV_ROWS = "qkv_rows"  # rows: the same, once the layer-input site is projected
KEYS_VALUES = "keys_values"  # rows: the tokens' [v | k]
ATTENTION_KV = "attention_kv"  # rows: the [v | k] attention reads (a prefix goes in front)
CONTEXT = "context"  # tokens: attention's output, the input of its dense layer
ATTN_OUT = "attn_out"  # tokens: after that dense layer
LN_ATTN = "ln_attn"  # tokens: after its LayerNorm
FFN_IN = "ffn_in"  # tokens: after the feed-forward block's first dense layer
FFN_ACT = "ffn_act"  # tokens: after its activation (the intermediate activations)
FFN_OUT = "ffn_out"  # tokens: after its second dense layer
LN_FFN = "ln_ffn"  # tokens: after its LayerNorm
FFN_BLOCK = "ffn_block"  # rows: the block's output, once the adapter-input site is projected
HEAD = "head"  # rows: last hidden states (B, T, d) -> logits (B, n)


@dataclass(frozen=True)
class Site:
    """A projection site: one baddbmm on an input gives the logits of the gates that read it
    and the down-projection of the method whose part follows them (`SitePart`)."""

    name: str  # its projection runs just before the attach point of its terms (model.py)
    weight: str  # bank tensor (c, d), stored transposed: [gate rows | part rows]
    bias: str  # (1, c)
    off: str  # gate-mixing tables: each scale is `off + means @ on` (`methods.gates`)
    on: str


LAYER_INPUT = Site("layer_input", "in_w", "in_b", "in_off", "in_on")  # before qkv_rows
ADAPTER_INPUT = Site("adapter_input", "ad_w", "ad_b", "ad_off", "ad_on")  # before ffn_block
SITES = (LAYER_INPUT, ADAPTER_INPUT)


@dataclass(frozen=True)
class Gate:
    """One gate column: its place in the artifact's `gate_w` / `gate_b` (a format fact), the
    site whose input it reads, and the constant scale that applies when the task has no gates."""

    name: str
    column: int
    site: Site
    constant: Callable[[MethodConfig], float]


@dataclass(frozen=True)
class SitePart:
    """A method's rows of a site's projection: `per_unit` rows per unit of its size, each
    scaled by the named gate's value (`scaled`), or unscaled (the method scales its output)."""

    site: Site
    per_unit: int
    gates: tuple[str, ...] = ()  # the gate of each row within a unit, when scaled

    @property
    def scaled(self) -> bool:
        return bool(self.gates)


@dataclass(frozen=True)
class BankTensor:
    """One fused per-slot bank tensor: its shape at given sizes, and how the forward reads it."""

    shape: Callable[[BackboneDims, BankSizes], tuple[int, ...]]
    size: str | None = None  # the BankSizes field its trimmed dimensions follow
    trim: tuple[int, ...] = ()  # those dimensions (cut to a prefix for a batch)
    per_layer: bool = True  # (S, L, ...): split per layer; else (S, ...), read whole
    transposed: bool = False  # stored (units, in) so a trim stays contiguous; read (in, units)
    per_token: bool = False  # applied to token-wise values: repeated per token when packed


def pad_to(t: Tensor, dim: int, size: int) -> Tensor:
    """Zero-pad dimension `dim` (negative) of t up to `size`: a task's rows to a slot's."""
    missing = size - t.shape[dim]
    if missing < 0:
        raise ValueError(f"size {t.shape[dim]} exceeds the slot's {size}")
    if missing == 0:
        return t
    return F.pad(t, [0, 0] * (-dim - 1) + [0, missing])


def stored(tensors: dict[str, Tensor], name: str, empty: tuple[int, ...], like: Tensor) -> Tensor:
    """`tensors[name]`, or an empty stand-in (zero size along a padded dimension) when the
    task lacks it: padding it gives zeros, which is what a method that is off contributes."""
    t = tensors.get(name)
    return t if t is not None else like.new_zeros(empty)


def gates_at(site: Site) -> int:
    """How many gate rows lead a site's projection (its part's rows follow them)."""
    from adapters.methods import GATES

    return len(GATES.at[site.name])


@dataclass
class Projected:
    """A site's projection in one layer: its columns (B, T, c), their scales (B, 1, c') and
    the gate means (B, 1, c) when the batch is gated."""

    columns: Tensor | None
    scale: Tensor
    means: Tensor | None
    positions: dict[str, int]  # gate name -> the column of `scale` that gate scales itself

    def scale_of(self, gate: str) -> Tensor:
        """(B, 1, 1) the scale of one gate's own column."""
        j = self.positions[gate]
        return self.scale if self.scale.shape[-1] == 1 else self.scale[..., j : j + 1]


@dataclass
class Term:
    """What a term reads besides the value it transforms."""

    rows: BatchRows  # the batch: plan, per-row tables
    w: dict[str, Tensor]  # this layer's gathered tensors
    sites: dict[str, Projected]  # the sites projected so far in this layer
    training: bool = False
    dropout: float = 0.0
    activation: Callable[[Tensor], Tensor] = torch.tanh  # the head's: its family's pooler's


TermFn = Callable[[Tensor, Term], Tensor]


class Method:
    """A PELT method. Subclasses set the class attributes and override the hooks they need;
    every default describes a method that contributes nothing there."""

    name = ""
    switch: str | None = None  # the bool config field that turns it on (None: always on)
    fields: tuple[Field, ...] = ()
    letter = ""  # a gated method's letter in method names (A, P, L)
    label = ""  # another method's part of method names (BitFit)
    paper_name = ""  # its name in study tables when it runs alone
    size: str | None = None  # the BankSizes field it owns
    size_field: str | None = None  # the config field that holds that size
    gates: tuple[Gate, ...] = ()
    parts: tuple[SitePart, ...] = ()
    table_columns = 0  # its columns of the bank's per-slot device table
    prepends_keys = False  # it puts `size` key positions in front of the tokens' keys
    learning_rate: float | None = None  # its default when it trains alone
    presets: ClassVar[dict[str, tuple[str, ...]]] = {}  # name -> the switches it turns on

    # --- config
    def on(self, cfg: MethodConfig) -> bool:
        return self.switch is None or bool(getattr(cfg, self.switch))

    def check(self, cfg: MethodConfig) -> str | None:
        """What is wrong across this method's fields, or None."""
        return None

    def used_size(self, cfg: MethodConfig, num_labels: int) -> int:
        """Its size for a task: the config's when on, else 0."""
        if self.size_field is None:
            return 0
        return int(getattr(cfg, self.size_field)) if self.on(cfg) else 0

    # --- artifact
    def artifact_shapes(
        self, cfg: MethodConfig, dims: BackboneDims, num_labels: int
    ) -> dict[str, tuple[int, ...]]:
        """Its artifact tensors and their shapes (called when it is on)."""
        return {}

    def init(self, cfg: MethodConfig, backbone: Backbone, num_labels: int) -> dict[str, Tensor]:
        """Initial values of its trainable artifact tensors (called when it is on)."""
        return {}

    def encoder(self, cfg: MethodConfig, dims: BackboneDims) -> nn.Module | None:
        """A training-time module whose forward() gives some of its artifact tensors."""
        return None

    # --- bank layout
    def bank_tensors(self) -> dict[str, BankTensor]:
        """The fused tensors it owns alone."""
        return {}

    def fuse(
        self, tensors: dict[str, Tensor], dims: BackboneDims, sizes: BankSizes, like: Tensor
    ) -> dict[str, Tensor]:
        """Its fused tensors at `sizes` from artifact tensors (zeros where the task lacks
        them: `like` gives dtype and device). Differentiable."""
        return {}

    def site_rows(
        self, tensors: dict[str, Tensor], dims: BackboneDims, sizes: BankSizes, like: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Its part of its site's projection, (in, out): weight (L, d, rows), bias (L, rows)."""
        raise NotImplementedError

    def unfuse(self, fused: dict[str, Tensor], name: str) -> Tensor:
        """One slot's artifact tensor `name` read back from its fused tensors."""
        raise KeyError(name)

    def table_row(self, cfg: MethodConfig) -> list[float]:
        """Its `table_columns` values for a slot (switches, constants, one-hots)."""
        return []

    def config_tensors(self, row: list[float], sizes: BankSizes) -> dict[str, Tensor]:
        """Bank tensors built from a slot's `table_row`, not its weights, at `sizes`."""
        return {}

    # --- host meta and plan
    def slot_value(self, cfg: MethodConfig) -> Any:
        """A per-slot host value the plan reads (None: it keeps none). By default a switched
        method without a size keeps whether it is on; a sized one's size says that."""
        return self.on(cfg) if self.switch is not None and self.size is None else None

    def plan_value(self, values: list[Any]) -> Any:
        """Its switch for a batch, from the slot values of the batch's slots."""
        return any(values)

    def active(self, plan: BatchPlan) -> bool:
        """Whether any row of the batch uses it."""
        if self.size is not None:
            return getattr(plan.sizes, self.size) > 0
        return bool(plan.switch(self.name))

    def needs_table(self, plan: BatchPlan) -> bool:
        """Whether its terms read the per-row device table for this batch."""
        return False

    def masks_keys(self, sizes: list[int], planned: BankSizes) -> bool:
        """Whether some key is masked because of it (its slot sizes under the plan's)."""
        return False

    @cached_property
    def owned(self) -> tuple[str, ...]:
        return tuple(self.bank_tensors())

    def gathers(self, plan: BatchPlan) -> tuple[str, ...]:
        """Bank tensors the forward reads for this batch."""
        return self.owned if self.active(plan) else ()

    @property
    def peft(self) -> PeftFormat | None:
        """Its PEFT save format, when PEFT adapters of it convert exactly (`peft_layout`)."""
        return None

    # --- forward
    @cached_property
    def term_fns(self) -> dict[str, TermFn]:
        return self.terms()

    def terms(self) -> dict[str, TermFn]:
        """Its terms at the layer loop's attach points."""
        return {}
