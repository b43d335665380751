"""Run one batch of tokenised rows, each with its own adapter slot, through the mixed forward."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from adapters import constants as C
from adapters.bank import TaskBank
from adapters.model import UniPELTModel
from adapters.postprocess import RowPrediction, row_predictions
from service.engine.pool import Resident


@dataclass
class Row:
    """One input sequence, tokenised, with the pinned adapter that must serve it."""

    task: str
    input_ids: list[int]
    token_type_ids: list[int] | None
    resident: Resident
    want_gates: bool = False


@dataclass(frozen=True)
class RowResult:
    prediction: RowPrediction
    gates: dict[str, list[float]] | None  # submodule -> one value per layer


class BatchRunner:
    """Pads rows into tensors and runs the model; called from the single forward thread."""

    def __init__(
        self, model: UniPELTModel, bank: TaskBank, pad_token_id: int, device: torch.device
    ) -> None:
        self.model = model
        self.bank = bank
        self.pad = pad_token_id
        self.device = device

    @torch.inference_mode()
    def run(self, rows: list[Row]) -> list[RowResult]:
        longest = max(len(r.input_ids) for r in rows)
        ids = torch.full((len(rows), longest), self.pad, dtype=torch.long)
        mask = torch.zeros((len(rows), longest), dtype=torch.long)
        types = torch.zeros((len(rows), longest), dtype=torch.long)
        for i, row in enumerate(rows):
            n = len(row.input_ids)
            ids[i, :n] = torch.tensor(row.input_ids)
            mask[i, :n] = 1
            if row.token_type_ids is not None:
                types[i, :n] = torch.tensor(row.token_type_ids)
        slots = torch.tensor([r.resident.slot for r in rows], dtype=torch.long)
        want_gates = any(r.want_gates for r in rows)
        out = self.model(
            ids.to(self.device),
            mask.to(self.device),
            self.bank,
            slots.to(self.device),
            types.to(self.device),
            return_gates=want_gates,
        )
        names = [r.resident.label_names for r in rows]
        predictions = row_predictions(out.logits, names)
        gates = out.gates.float().cpu() if out.gates is not None else None
        return [
            RowResult(
                p, _gate_dict(gates[i], r.resident) if gates is not None and r.want_gates else None
            )
            for i, (p, r) in enumerate(zip(predictions, rows))
        ]


def _gate_dict(gates: torch.Tensor, resident: Resident) -> dict[str, list[float]]:
    """Gate values per layer for the submodules this task has. gates: (L, G)."""
    cfg = resident.config
    present = {"prefix": cfg.prefix, "lora_q": cfg.lora, "lora_v": cfg.lora, "adapter": cfg.adapter}
    return {
        name: [round(float(v), 6) for v in gates[:, i]]
        for i, name in enumerate(C.GATE_NAMES)
        if present[name]
    }
