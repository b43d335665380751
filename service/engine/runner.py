"""Run one batch of rows, each with its own adapter slot, through the mixed forward."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from adapters import constants as C
from adapters.bank import TaskBank
from adapters.model import UniPELTModel
from adapters.postprocess import RowPrediction, row_predictions
from service.engine.encode import BatchEncoder, Encoded, TextRow
from service.engine.pool import Resident


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


class BatchRunner:
    """Tokenises a batch, pads it into tensors and runs the model; called from the single
    forward thread. A row whose input is over its limit gets its error, the others run."""

    def __init__(
        self,
        model: UniPELTModel,
        bank: TaskBank,
        encoder: BatchEncoder,
        pad_token_id: int,
        device: torch.device,
    ) -> None:
        self.model = model
        self.bank = bank
        self.encoder = encoder
        self.pad = pad_token_id
        self.device = device

    def run(self, rows: list[Row]) -> list[RowResult | Exception]:
        encoded = self.encoder.encode(rows)
        ok = [(row, e) for row, e in zip(rows, encoded) if not isinstance(e, Exception)]
        done = iter(self.forward([r for r, _ in ok], [e for _, e in ok]) if ok else [])
        return [e if isinstance(e, Exception) else next(done) for e in encoded]

    @torch.inference_mode()
    def forward(self, rows: list[Row], encoded: list[Encoded]) -> list[RowResult]:
        longest = max(len(ids) for ids, _ in encoded)
        pad = [longest - len(ids) for ids, _ in encoded]
        ids = torch.tensor([e[0] + [self.pad] * n for e, n in zip(encoded, pad)])
        mask = torch.tensor([[1] * len(e[0]) + [0] * n for e, n in zip(encoded, pad)])
        types = torch.tensor([(e[1] or [0] * len(e[0])) + [0] * n for e, n in zip(encoded, pad)])
        residents = [_resident(r) for r in rows]
        slots = torch.tensor([r.slot for r in residents], dtype=torch.long)
        want_gates = any(r.want_gates for r in rows)
        out = self.model(
            ids.to(self.device),
            mask.to(self.device),
            self.bank,
            slots.to(self.device),
            types.to(self.device),
            return_gates=want_gates,
        )
        names = [r.label_names for r in residents]
        predictions = row_predictions(out.logits, names)
        gates = out.gates.float().cpu() if out.gates is not None else None
        return [
            RowResult(p, _gate_dict(gates[i], res) if gates is not None and r.want_gates else None)
            for i, (p, r, res) in enumerate(zip(predictions, rows, residents))
        ]


def _resident(row: Row) -> Resident:
    if row.resident is None:
        raise ValueError("a row reached the forward without its pinned adapter")
    return row.resident


def _gate_dict(gates: torch.Tensor, resident: Resident) -> dict[str, list[float]]:
    """Gate values per layer for the submodules this task has. gates: (L, G)."""
    cfg = resident.config
    present = {"prefix": cfg.prefix, "lora_q": cfg.lora, "lora_v": cfg.lora, "adapter": cfg.adapter}
    return {
        name: [round(float(v), 6) for v in gates[:, i]]
        for i, name in enumerate(C.GATE_NAMES)
        if present[name]
    }
