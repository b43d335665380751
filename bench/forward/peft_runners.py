"""PEFT baselines on LoRA-only adapters (r 8, alpha 16, query and value) of the same weights.

One PeftModel holds all N adapters (`harness.peft_models.build_peft_model`, whose logits
tests/unit/test_peft_mixed_batch.py asserts equal ours).
"""

from __future__ import annotations

import torch
from torch import Tensor

from bench.tasks import apply_head, apply_heads
from bench.timing import Runner, by_task, run_groups
from bench.workload import Encoder, Request
from harness.peft_models import adapter_name


def peft_available() -> str | None:
    """None when peft imports, else why not."""
    try:
        import peft  # noqa: F401
    except Exception as exc:  # ImportError, or a broken dependency of peft
        return f"peft is not importable ({type(exc).__name__}: {exc})"
    return None


def per_request_runner(model, encoder: Encoder, heads: dict) -> Runner:
    """The naive way: `set_adapter` then a batch of one, for every request."""
    return lambda window: run_groups(
        window, [[i] for i in range(len(window))], _switching_forward(model, encoder, heads)
    )


def grouped_runner(model, encoder: Encoder, heads: dict) -> Runner:
    """`set_adapter` once per task present in the window, one batch per task."""
    return lambda window: run_groups(
        window, by_task(window), _switching_forward(model, encoder, heads)
    )


def mixed_runner(model, encoder: Encoder, heads: dict, batch: int) -> Runner:
    """PEFT's own mixed-batch inference: `model(..., adapter_names=[...])`."""
    return lambda window: run_groups(
        window,
        [list(range(i, min(i + batch, len(window)))) for i in range(0, len(window), batch)],
        lambda rows: mixed_logits(model, encoder, heads, rows),
    )


@torch.inference_mode()
def mixed_logits(model, encoder: Encoder, heads: dict, rows: list[Request]) -> Tensor:
    ids, mask = encoder.batch(rows)
    names = [adapter_name(r.task) for r in rows]
    hidden = model(input_ids=ids, attention_mask=mask, adapter_names=names).last_hidden_state
    tasks = torch.tensor([r.task for r in rows], dtype=torch.long)
    return apply_heads(hidden[:, 0], heads, tasks)


def _switching_forward(model, encoder: Encoder, heads: dict):
    @torch.inference_mode()
    def forward(rows: list[Request]) -> Tensor:
        task = rows[0].task
        model.set_adapter(adapter_name(task))
        ids, mask = encoder.batch(rows)
        hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state
        return apply_head(hidden[:, 0], heads, task)

    return forward
