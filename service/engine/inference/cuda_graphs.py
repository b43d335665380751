"""Captured forwards per static shape: CUDA graphs, a bounded number, least recently used out.

A graph is captured for one batch shape (rows, tokens, the plan's sizes and switches). Its
inputs live in static device buffers; a replay copies the batch's ids, mask, token types and
slots into them (non-blocking from pinned host memory) and runs the recorded kernels, which read
the bank in place, so a slot written after capture is what the replay sees. Without CUDA the
same object runs the model eagerly on the same padded inputs.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import Tensor

from adapters.bank import TaskBank
from adapters.model import UniPELTModel
from adapters.packing import Packing
from adapters.plan import BatchPlan


@dataclass
class Inputs:
    """One batch's host tensors (pinned on CUDA): ids, mask, token types (B, T), slots (B,)."""

    ids: Tensor
    mask: Tensor
    types: Tensor
    slots: Tensor


@dataclass
class Captured:
    graph: torch.cuda.CUDAGraph
    static: Inputs  # device buffers the graph reads
    logits: Tensor
    gates: Tensor | None


class GraphCache:
    """`run(inputs, plan, want_gates)` -> (logits, gates) on the device."""

    def __init__(
        self, model: UniPELTModel, bank: TaskBank, device: torch.device, max_graphs: int
    ) -> None:
        self.model, self.bank, self.device = model, bank, device
        self.max_graphs = max_graphs
        self.enabled = device.type == "cuda" and max_graphs > 0
        self._graphs: OrderedDict[tuple, Captured] = OrderedDict()
        self.captures = 0

    def __len__(self) -> int:
        return len(self._graphs)

    def run(
        self, inputs: Inputs, plan: BatchPlan, want_gates: bool, packing: Packing | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """`packing` (eager only: a packed plan's index is not graph-static) may be built ahead."""
        if not self.enabled:
            return self._eager(_to(inputs, self.device), plan, want_gates, packing)
        key = (*plan.key, tuple(inputs.ids.shape), want_gates)
        captured = self._graphs.get(key)
        if captured is None:
            captured = self._capture(inputs, plan, want_gates)
            self._graphs[key] = captured
            while len(self._graphs) > self.max_graphs:
                self._graphs.popitem(last=False)
        self._graphs.move_to_end(key)
        for name in ("ids", "mask", "types", "slots"):
            getattr(captured.static, name).copy_(getattr(inputs, name), non_blocking=True)
        captured.graph.replay()
        return captured.logits, captured.gates

    def _eager(
        self, x: Inputs, plan: BatchPlan, want_gates: bool, packing: Packing | None = None
    ) -> tuple[Tensor, Tensor | None]:
        out = self.model(
            x.ids, x.mask, self.bank, x.slots, x.types, want_gates, plan=plan, packing=packing
        )
        return out.logits, out.gates

    def _capture(self, inputs: Inputs, plan: BatchPlan, want_gates: bool) -> Captured:
        static = _to(inputs, self.device)
        stream = torch.cuda.Stream(self.device)
        stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(stream):  # warm up outside the graph (allocator, kernels)
            for _ in range(2):
                self._eager(static, plan, want_gates)
        torch.cuda.current_stream(self.device).wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            logits, gates = self._eager(static, plan, want_gates)
        self.captures += 1
        return Captured(graph, static, logits, gates)


def _to(x: Inputs, device: torch.device) -> Inputs:
    if x.ids.device == device:
        return x
    return Inputs(
        *(getattr(x, n).to(device, non_blocking=True) for n in ("ids", "mask", "types", "slots"))
    )
