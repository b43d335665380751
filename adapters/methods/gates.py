"""Gates: G = mean over real tokens of sigmoid(x W + b), one scalar per row and gated method.

Each gated method declares its gate columns (`Gate`: its column in the artifact's `gate_w`,
the site whose input it reads, its constant scale without gates). A gate's logit rides in the
projection of the input it reads (`Site`), in front of the rows of the method whose part
follows there (`SitePart`), so one baddbmm gives the gate logits and that down-projection.
A site's scales are `off + means @ on` with per-slot tables: the constant where a task has no
gates, the learned gate where it has, routed to every column that gate scales. The gates'
columns are grouped by site, in the order of `SITES`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import torch
from torch import Tensor

from adapters.dims import BackboneDims, BankSizes
from adapters.methods.base import SITES, BankTensor, Gate, Method, Projected, Site
from adapters.methods.fields import flag

if TYPE_CHECKING:
    from adapters.backbone import Backbone
    from adapters.config import MethodConfig
    from adapters.plan import BatchPlan
    from adapters.rows import BatchRows


def mean_weights(real: Tensor) -> Tensor:
    """(B, 1, T) weights of a per-row mean over real tokens: 1/count on real tokens, 0 on
    padding. real: (B, T), 1 on real tokens, 0 on padding, in the dtype of the means."""
    return (real / real.sum(1, keepdim=True).clamp_min(1.0)).unsqueeze(1)


def gate_means(logits: Tensor, weights: Tensor) -> Tensor:
    """Per-row gate scores: the mean over real tokens of sigmoid(logits), as one bmm.

    logits: (B, T, c) (a site's columns; the caller ignores the non-gate ones); weights:
    (B, 1, T) 1/count on real tokens, 0 on padding, so padding never enters the mean and a
    row's gate never depends on its batch neighbours. Returns (B, 1, c).
    """
    return torch.bmm(weights, torch.sigmoid(logits))


class Gates(Method):
    name = "gates"
    switch = "gates"
    fields = (flag("gates", True),)
    paper_name = "UniPELT"  # gated methods combined; "UniPELT-NoGate" without the gates
    # UniPELT's variants (the paper's): gated combinations, and the NoGate ablations
    presets: ClassVar[dict[str, tuple[str, ...]]] = {
        "ap": ("adapter", "prefix", "gates"),
        "al": ("adapter", "lora", "gates"),
        "pl": ("prefix", "lora", "gates"),
        "apl": ("adapter", "prefix", "lora", "gates"),
        "apl-nogate": ("adapter", "prefix", "lora"),
        "ap-nogate": ("adapter", "prefix"),
    }

    def __init__(self, methods: tuple[Method, ...]) -> None:
        """`methods`: every other registered method, whose gates and site parts these serve."""
        self.methods = methods
        self.all = tuple(sorted((g for m in methods for g in m.gates), key=lambda g: g.column))
        self.owner = {g.name: m for m in methods for g in m.gates}
        self.at = {s.name: [g for g in self.all if g.site == s] for s in SITES}
        self.part = {p.site.name: (m, p) for m in methods for p in m.parts}
        self.positions = {s.name: {g.name: i for i, g in enumerate(self.at[s.name])} for s in SITES}
        self.span: dict[str, tuple[int, int]] = {}  # each site's run of gate columns
        start = 0
        for site in SITES:
            columns = [g.column for g in self.at[site.name]]
            if columns != list(range(start, start + len(columns))):
                raise ValueError(f"gate columns must be grouped by site in order: {self.all}")
            self.span[site.name], start = (start, start + len(columns)), start + len(columns)
        self.table_columns = 2 * len(self.all)  # on, then the constant, per gate column

    # --- config
    def on(self, cfg: MethodConfig) -> bool:
        """The task has learned gates: gates on and some gated method on."""
        return bool(cfg.gates) and any(self.owner[g.name].on(cfg) for g in self.all)

    def present(self, cfg: MethodConfig) -> list[Gate]:
        """The gates whose methods this task uses (learned or constant)."""
        return [g for g in self.all if self.owner[g.name].on(cfg)]

    # --- artifact
    def artifact_shapes(self, cfg, dims: BackboneDims, num_labels: int):
        G = len(self.all)
        return {"gate_w": (dims.layers, dims.hidden, G), "gate_b": (dims.layers, G)}

    def init(self, cfg: MethodConfig, backbone: Backbone, num_labels: int) -> dict[str, Tensor]:
        """Gate Linear(hidden -> 1) per gate per layer, N(0, 0.02) weights, zero bias."""
        L, d, G = backbone.dims.layers, backbone.dims.hidden, len(self.all)
        return {"gate_w": torch.randn(L, d, G) * 0.02, "gate_b": torch.zeros(L, G)}

    # --- bank layout: the sites' projections and their mixing tables
    def width(self, site: Site, sizes: BankSizes) -> tuple[int, int]:
        """(columns, scaled columns) of a site's projection at `sizes`: the gates' columns,
        then the part's; only the gates' are scaled when the part scales its own output."""
        gates = len(self.at[site.name])
        if site.name not in self.part:
            return gates, gates
        method, part = self.part[site.name]
        assert method.size is not None
        rows = part.per_unit * getattr(sizes, method.size)
        return gates + rows, gates + rows if part.scaled else gates

    def bank_tensors(self) -> dict[str, BankTensor]:
        out = {}
        for site in SITES:
            out.update(self._site_tensors(site))
        return out

    def _site_tensors(self, site: Site) -> dict[str, BankTensor]:
        method, part = self.part.get(site.name, (None, None))
        size = method.size if method is not None else None
        scaled = part is not None and part.scaled

        def cols(s: BankSizes) -> int:
            return self.width(site, s)[0]

        def scales(s: BankSizes) -> int:
            return self.width(site, s)[1]

        return {
            site.weight: BankTensor(
                lambda d, s: (d.layers, cols(s), d.hidden), size, (-2,), transposed=True
            ),
            site.bias: BankTensor(lambda d, s: (d.layers, 1, cols(s)), size, (-1,)),
            site.off: BankTensor(
                lambda d, s: (1, scales(s)), size, (-1,) if scaled else (), per_layer=False
            ),
            site.on: BankTensor(
                lambda d, s: (cols(s), scales(s)),
                size,
                (-2, -1) if scaled else (-2,),
                per_layer=False,
            ),
        }

    def fuse(self, tensors, dims: BackboneDims, sizes: BankSizes, like: Tensor):
        """The sites' projections: the gates' columns of `gate_w` / `gate_b`, then the
        part's rows (`Method.site_rows`); stored transposed, (c, d)."""
        L, d, G = dims.layers, dims.hidden, len(self.all)
        gate_w = tensors.get("gate_w")
        gate_w = gate_w if gate_w is not None else like.new_zeros(L, d, G)
        gate_b = tensors.get("gate_b")
        gate_b = gate_b if gate_b is not None else like.new_zeros(L, G)
        out = {}
        for site in SITES:
            lo, hi = self.span[site.name]
            w, b = gate_w[..., lo:hi], gate_b[..., lo:hi]  # (L, d, g), (L, g)
            if site.name in self.part:
                rows_w, rows_b = self.part[site.name][0].site_rows(tensors, dims, sizes, like)
                w, b = torch.cat([w, rows_w], -1), torch.cat([b, rows_b], -1)
            out[site.weight], out[site.bias] = w.transpose(1, 2), b.unsqueeze(1)
        return out

    def unfuse(self, fused: dict[str, Tensor], name: str) -> Tensor:
        parts = []
        for site in SITES:
            g = len(self.at[site.name])
            if name == "gate_w":
                parts.append(fused[site.weight][:, :g].transpose(1, 2))
            else:
                parts.append(fused[site.bias][:, 0, :g])
        return torch.cat(parts, -1)

    def table_row(self, cfg: MethodConfig) -> list[float]:
        learned = self.on(cfg)
        on = [float(learned and self.owner[g.name].on(cfg)) for g in self.all]
        return on + [float(g.constant(cfg)) for g in self.all]

    def config_tensors(self, row: list[float], sizes: BankSizes) -> dict[str, Tensor]:
        """One slot's mixing tables at `sizes`, from its `table_row`: column j of a site's
        scale is `off[j] + means @ on[:, j]`, the constant of the gate that scales it where
        the gate is off, its learned mean where on; 0 for columns no gate scales. A gate's
        own column is scaled by itself (prefix-tuning reads its scale there)."""
        G = len(self.all)
        on, const = row[:G], row[G:]
        out = {}
        for site in SITES:
            gates = self.at[site.name]
            cols, scaled = self.width(site, sizes)
            scaler = [g.column for g in gates]  # the gate column scaling each column
            if site.name in self.part and self.part[site.name][1].scaled:
                part = self.part[site.name][1]
                column = {g.name: g.column for g in gates}
                units = (scaled - len(gates)) // part.per_unit
                scaler += [column[n] for _ in range(units) for n in part.gates]
            lo = self.span[site.name][0]
            off, table = torch.zeros(1, scaled), torch.zeros(cols, scaled)
            for j, c in enumerate(scaler):
                off[0, j] = const[c] * (1.0 - on[c])
                table[c - lo, j] = on[c]
            out[site.off], out[site.on] = off, table
        return out

    # --- plan and forward
    def active(self, plan: BatchPlan) -> bool:
        return bool(plan.switch(self.name))

    def uses(self, site: Site, plan: BatchPlan) -> tuple[bool, bool]:
        """(some method of the batch reads this site's scales, the site must be projected:
        a part of it is in use, or a gate reading it is learned)."""
        readers = [m for m in self.methods if m.active(plan) and _reads(m, site)]
        parts = any(p.site == site for m in readers for p in m.parts)
        return bool(readers), parts or (bool(readers) and self.active(plan))

    def gathers(self, plan: BatchPlan) -> tuple[str, ...]:
        names: list[str] = []
        for site in SITES:
            read, projected = self.uses(site, plan)
            names += [site.weight, site.bias] if projected else []
            names += [site.off] if read else []
            names += [site.on] if read and self.active(plan) else []
        return tuple(names)

    def project(
        self, site: Site, rows: BatchRows, w: dict[str, Tensor], x: Tensor | None
    ) -> Projected:
        """The site's projection of its input x (B, T, d) when gathered, and every column's
        scale (the constants alone when no row is gated)."""
        scale, positions = rows.slot[site.off], self.positions[site.name]
        if x is None or site.weight not in w:
            return Projected(None, scale, None, positions)
        columns = torch.baddbmm(w[site.bias], x, w[site.weight])  # (B, T, c)
        if not self.active(rows.plan):
            return Projected(columns, scale, None, positions)
        assert rows.gate_weights is not None  # built whenever the plan is gated
        means = gate_means(columns, rows.gate_weights)
        scale = torch.baddbmm(scale, means, rows.slot[site.on])
        return Projected(columns, scale, means, positions)

    def values(self, rows: BatchRows, sites: dict[str, Projected]) -> Tensor:
        """The gates a layer applied, (B, G) in gate-column order: learned means where on,
        constants elsewhere."""
        G = len(self.all)
        on, const = rows.table_columns(self.name, 0, G).bool(), rows.table_columns(self.name, G)
        parts = []
        for site in SITES:
            lo, hi = self.span[site.name]
            projected = sites.get(site.name)
            means = projected.means if projected is not None else None
            parts.append(means[:, 0, : hi - lo] if means is not None else const[:, lo:hi])
        return torch.where(on, torch.cat(parts, 1), const)


def _reads(method: Method, site: Site) -> bool:
    return any(g.site == site for g in method.gates) or any(p.site == site for p in method.parts)
