"""Run one batch of rows, each with its own adapter slot, through the mixed forward."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from adapters.bank import TaskBank
from adapters.methods import GATES
from adapters.model import UniPELTModel
from adapters.packing import Packing, packing_for
from adapters.plan import BatchPlan, Buckets, plan_batch
from adapters.postprocess import RowPrediction, row_predictions
from service.engine.inference.cuda_graphs import GraphCache, Inputs
from service.engine.inference.encode import BatchEncoder, Encoded, TextRow
from service.engine.inference.forward_process import ForwardProcess
from service.engine.lifecycle.pool import Resident


@dataclass(frozen=True)
class Row(TextRow):
    """One input sequence, untokenised (the batch is tokenised at once), with the pinned
    adapter that must serve it."""

    task: str = ""
    resident: Resident | None = None
    want_gates: bool = False


@dataclass(frozen=True)
class RowResult:
    prediction: RowPrediction
    gates: dict[str, list[float]] | None  # submodule -> one value per layer


@dataclass
class Prepared:
    """One batch made ready for the forward on the host: each row's tokens or its own error,
    and for the rows that run, their padded (pinned) host tensors and plan."""

    encoded: list[Encoded | Exception]  # per row: its tokens, or why it cannot run
    rows: list[Row]  # the rows that run, in order
    residents: list[Resident]
    inputs: Inputs | None
    plan: BatchPlan | None
    packing: Packing | None  # real-token index of an eager forward (host tensors)


class BatchRunner:
    """Runs a batch in two steps. `prepare` (the prepare thread) tokenises it, pads it into
    (pinned) host tensors and plans it from Python values; `execute` (the forward thread)
    copies the tensors to the device, runs the forward (captured per shape bucket on CUDA)
    and reads the results, reading no device tensor before them. A row whose input is over
    its limit gets its error, the others run. `run` does both on the caller's thread."""

    def __init__(
        self,
        model: UniPELTModel,
        bank: TaskBank,
        encoder: BatchEncoder,
        pad_token_id: int,
        device: torch.device,
        max_graphs: int = 0,
        max_rows: int = 32,
        remote: ForwardProcess | None = None,
        on_remote_cpu: Callable[[float], None] | None = None,
    ) -> None:
        """`remote`: run the forward in that process (`forward_process.py`), reporting its
        CPU seconds per batch to `on_remote_cpu`."""
        self.model = model
        self.bank = bank
        self.encoder = encoder
        self.pad = pad_token_id
        self.device = device
        self.graphs = GraphCache(model, bank, device, max_graphs)
        # graphs: few static shapes (rows, tokens and sizes rounded up); else exact sizes
        self.buckets = Buckets.static(max_rows) if self.graphs.enabled else Buckets.exact()
        self.pin = device.type == "cuda"  # pinned host memory only exists with CUDA
        self.remote, self.on_remote_cpu = remote, on_remote_cpu

    def run(self, rows: list[Row]) -> list[RowResult | Exception]:
        return self.execute(self.prepare(rows))

    def prepare(self, rows: list[Row]) -> Prepared:
        """Host work only: tokens, padded host tensors, the plan and its packing index.
        Touches no device."""
        encoded: list[Encoded | Exception] = list(self.encoder.encode(rows))
        ok = [(row, e) for row, e in zip(rows, encoded) if not isinstance(e, Exception)]
        if not ok:
            return Prepared(encoded, [], [], None, None, None)
        residents = [_resident(row) for row, _ in ok]
        inputs, lengths = self.inputs([e for _, e in ok], [r.slot for r in residents])
        graphs = self.graphs.enabled
        plan = plan_batch(
            self.bank,
            inputs.slots.tolist(),  # a host tensor, padding rows included
            padded=any(n < inputs.ids.shape[1] for n in lengths),
            buckets=self.buckets,
            single_slot=not graphs,  # a graph must not bake in one slot
            lengths=None if graphs else lengths,  # eager: real tokens only (`packing`)
        )
        packing = None  # a forward process builds its own
        if self.remote is None:
            packing = packing_for(plan, inputs.ids.shape[1], self.bank.dtype, self.pin)
        return Prepared(encoded, [row for row, _ in ok], residents, inputs, plan, packing)

    @torch.inference_mode()
    def execute(self, batch: Prepared) -> list[RowResult | Exception]:
        """Device work only: copy in, forward, read the results out."""
        done = iter(self._forward(batch) if batch.rows else [])
        return [e if isinstance(e, Exception) else next(done) for e in batch.encoded]

    def _forward(self, batch: Prepared) -> list[RowResult]:
        assert batch.inputs is not None and batch.plan is not None
        rows, residents = batch.rows, batch.residents
        want_gates = any(r.want_gates for r in rows)
        if self.remote is not None:
            logits, gates_t, cpu_s = self.remote.run(batch.inputs, batch.plan, want_gates)
            if self.on_remote_cpu is not None:
                self.on_remote_cpu(cpu_s)
        else:
            logits, gates_t = self.graphs.run(batch.inputs, batch.plan, want_gates, batch.packing)
        n = len(rows)
        predictions = row_predictions(logits[:n], [r.label_names for r in residents])
        gates = gates_t[:n].float().cpu() if gates_t is not None else None
        return [
            RowResult(p, _gate_dict(gates[i], res) if gates is not None and r.want_gates else None)
            for i, (p, r, res) in enumerate(zip(predictions, rows, residents))
        ]

    def inputs(self, encoded: list[Encoded], slots: list[int]) -> tuple[Inputs, list[int]]:
        """Host tensors padded to the batch's shape bucket (padding rows: one token, on the
        first row's slot), allocated pinned on CUDA, and each row's real length."""
        lengths = [len(ids) for ids, _ in encoded]
        B, T = self.buckets.rows(len(encoded)), self.buckets.tokens(max(lengths))
        extra = B - len(encoded)
        rows = [ids + [self.pad] * (T - len(ids)) for ids, _ in encoded]
        types = [(t or [0] * len(ids)) + [0] * (T - len(ids)) for ids, t in encoded]
        mask = [[1] * n + [0] * (T - n) for n in lengths]
        blank = [self.pad] * T
        values = [
            rows + [blank] * extra,
            mask + [[1] + [0] * (T - 1)] * extra,
            types + [[0] * T] * extra,
            slots + [slots[0]] * extra,
        ]
        return Inputs(*(torch.tensor(v, pin_memory=self.pin) for v in values)), lengths


def _resident(row: Row) -> Resident:
    if row.resident is None:
        raise ValueError("a row reached the forward without its pinned adapter")
    return row.resident


def _gate_dict(gates: torch.Tensor, resident: Resident) -> dict[str, list[float]]:
    """Gate values per layer for the gated methods this task has. gates: (L, G)."""
    return {
        g.name: [round(float(v), 6) for v in gates[:, g.column]]
        for g in GATES.present(resident.config)
    }
