"""Reference training loops for the parity harness: plain transformers and plain PEFT.

Each loop is what a user would write from the libraries' documentation: a sequence
classification model (PEFT LoRA r8/alpha16 on query and value, or the whole model), AdamW
at a constant learning rate, batch 16, a fixed number of epochs, dev evaluation after every
epoch and the best dev epoch kept. Batches come from our `train_order` with the same seed,
so both sides see the same examples in the same order, and the same metric code scores them.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from adapters.training.batching import Batch, collate, train_order
from adapters.training.evaluate import evaluate
from adapters.training.run import EncodedTask
from adapters.training.trainer import task_loss

LORA_R, LORA_ALPHA = 8, 16.0
REFERENCE_LR = {"ref-ft": 2e-5, "ref-lora": 5e-4}


@dataclass(frozen=True)
class Schedule:
    """The plain loop's schedule (the same one is given to ours in the `same` mode)."""

    lr: float
    epochs: int = 10
    batch_size: int = 16
    max_grad_norm: float = 1.0


def reference_model(kind: str, path: Path, num_labels: int, seed: int) -> nn.Module:
    """`ref-ft`: the whole model trains; `ref-lora`: PEFT LoRA plus the classifier."""
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(seed)  # the classifier's (and LoRA A's) initial values
    model = AutoModelForSequenceClassification.from_pretrained(
        path, num_labels=num_labels, local_files_only=True, attn_implementation="sdpa"
    )
    if kind == "ref-ft":
        return model
    if kind != "ref-lora":
        raise ValueError(f"unknown reference {kind!r}")
    from peft import LoraConfig, TaskType, get_peft_model

    config = LoraConfig(
        task_type=TaskType.SEQ_CLS,
        r=LORA_R,
        lora_alpha=LORA_ALPHA,  # type: ignore[arg-type]  # annotated int; a float scales alike
        lora_dropout=0.0,
        target_modules=["query", "value"],
    )
    return get_peft_model(model, config)


def encoder_of(model: Any) -> Any:
    """The transformers encoder inside a (PEFT-wrapped) sequence classification model."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return getattr(base, base.base_model_prefix)


def head_init(model: Any) -> dict[str, Tensor]:
    """The reference's initial head and LoRA A matrices, in our tensor layout."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    classifier = base.classifier
    if hasattr(classifier, "modules_to_save"):  # PEFT's trainable copy of the classifier
        classifier = classifier.modules_to_save["default"]
    out = {
        "head_out_w": classifier.weight.detach().t().clone(),
        "head_out_b": classifier.bias.detach().clone(),
    }
    layers = encoder_of(model).encoder.layer
    for proj in ("query", "value"):
        module = getattr(layers[0].attention.self, proj)
        if hasattr(module, "lora_A"):
            key = f"lora_{proj[0]}_A"
            per_layer = [getattr(layer.attention.self, proj) for layer in layers]
            out[key] = torch.stack([m.lora_A["default"].weight.t() for m in per_layer]).detach()
    return out


def _forward(model: nn.Module):
    def run(batch: Batch) -> Tensor:
        return model(
            input_ids=batch.input_ids,
            attention_mask=batch.attention_mask,
            token_type_ids=batch.token_type_ids,
        ).logits

    return run


def train_reference(model: nn.Module, task: EncodedTask, schedule: Schedule, seed: int) -> dict:
    """Train, keep the best dev epoch, test it; returns the run's record fields."""
    params = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(params, lr=schedule.lr, weight_decay=0.0)
    order = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # dropout
    forward = _forward(model)
    best, best_state, best_step, step, history = -math.inf, None, 0, 0, []
    train_seconds = eval_seconds = 0.0
    for _epoch in range(schedule.epochs):
        model.train()
        start = time.perf_counter()
        for index in train_order(task.train, schedule.batch_size, order, False):
            batch = collate(task.train, index)
            loss = task_loss(task.spec, forward(batch), batch.labels)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, schedule.max_grad_norm)
            optimiser.step()
            step += 1
        train_seconds += time.perf_counter() - start
        model.eval()
        ev = evaluate(forward, task.dev, task.spec, 64)
        eval_seconds += ev.seconds
        score = ev.main(task.spec)
        history.append({"step": step, "dev": score})
        if score > best:
            best, best_step = score, step
            best_state = {
                n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad
            }
    if best_state is not None:
        with torch.no_grad():
            named = dict(model.named_parameters())
            for name, value in best_state.items():
                named[name].copy_(value)
    model.eval()
    test = evaluate(forward, task.test, task.spec, 64)
    return {
        "dev_main": best,
        "test_main": test.main(task.spec),
        "best_step": best_step,
        "steps": step,
        "train_seconds": train_seconds,
        "eval_seconds": eval_seconds,
        "trainable_parameters": sum(p.numel() for p in params),
        "history": history,
    }
