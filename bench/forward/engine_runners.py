"""In-process rows on our side: the bare-backbone ceiling, the mixed-task forward, grouped
batches. Tokenisation is excluded from every in-process row (texts are tokenised once up
front); padding and tensor building are included everywhere."""

from __future__ import annotations

import torch

from adapters.backbone import Backbone
from adapters.bank import TaskBank
from adapters.model import UniPELTModel
from bench.tasks import apply_head
from bench.timing import Runner, by_task, run_groups
from bench.workload import Encoder, Request


def ceiling_runner(backbone: Backbone, encoder: Encoder, heads: dict, batch: int) -> Runner:
    """The transformers model's own forward plus one task's head: no PELT modules at all."""

    @torch.inference_mode()
    def forward(rows: list[Request]) -> torch.Tensor:
        ids, mask = encoder.batch(rows)
        hidden = backbone.model(input_ids=ids, attention_mask=mask).last_hidden_state
        return apply_head(hidden[:, 0], heads, 0)

    return lambda window: run_groups(window, chunks(len(window), batch), forward)


def mixed_runner(model: UniPELTModel, bank: TaskBank, encoder: Encoder, batch: int) -> Runner:
    """Our mixed-task forward: each batch holds whatever tasks arrived, one pass."""
    return lambda window: run_groups(
        window, chunks(len(window), batch), bank_forward(model, bank, encoder)
    )


def grouped_runner(model: UniPELTModel, bank: TaskBank, encoder: Encoder) -> Runner:
    """The same window split into one batch per task (the "grouped" policy), run in turn."""
    return lambda window: run_groups(window, by_task(window), bank_forward(model, bank, encoder))


def bank_forward(model: UniPELTModel, bank: TaskBank, encoder: Encoder):
    @torch.inference_mode()
    def forward(rows: list[Request]) -> torch.Tensor:
        ids, mask = encoder.batch(rows)
        slots = torch.tensor([r.task for r in rows], dtype=torch.long)  # task i lives in slot i
        return model(ids, mask, bank, slots).logits

    return forward


def chunks(n: int, size: int) -> list[list[int]]:
    return [list(range(i, min(i + size, n))) for i in range(0, n, size)]
