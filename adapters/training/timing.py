"""A controlled speed comparison of methods: the same batches, methods taken in turn.

The study's own timings come from whole runs and follow whatever else the machine is doing;
here every method times the same synthetic batch in round-robin rounds, and the median
round counts, so a busy neighbour slows all methods alike.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch

from adapters.backbone import Backbone
from adapters.config import MethodConfig
from adapters.data import TaskSpec
from adapters.training.batching import Batch
from adapters.training.learner import Learner
from adapters.training.optim import make_optimiser
from adapters.training.trainer import task_loss

SPEC = TaskSpec("timing", ("a", "b"), False, ("accuracy",), "accuracy")


@dataclass
class MethodTiming:
    method: str
    train_step: float  # seconds per optimiser step (forward, backward, AdamW)
    inference: float  # seconds per example in eval mode


def _batch(rows: int, length: int, vocab: int, seed: int) -> Batch:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(min(1000, vocab // 2), vocab, (rows, length), generator=g)
    ones = torch.ones_like(ids)
    return Batch(ids, ones, torch.zeros_like(ids), torch.zeros(rows, dtype=torch.long), ids[:, 0])


def _time(fn, repeats: int) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def time_methods(
    backbone: Backbone,
    methods: list[str],
    batch_size: int = 16,
    length: int = 32,
    eval_batch: int = 64,
    rounds: int = 3,
    repeats: int = 3,
) -> list[MethodTiming]:
    vocab = backbone.config.vocab_size
    train_batch, test_batch = (
        _batch(batch_size, length, vocab, 0),
        _batch(eval_batch, length, vocab, 1),
    )
    learners = {}
    for m in methods:
        torch.manual_seed(0)
        learners[m] = Learner(MethodConfig.preset(m), backbone, 2)
    steps: dict[str, list[float]] = {m: [] for m in methods}
    infer: dict[str, list[float]] = {m: [] for m in methods}
    for _ in range(rounds):
        for m, learner in learners.items():
            opt = make_optimiser(learner.trainable(), 1e-5, 0.0)  # what training uses

            def step(learner=learner, opt=opt) -> None:
                loss = task_loss(SPEC, learner(train_batch), train_batch.labels)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()

            learner.train()
            steps[m].append(_time(step, repeats))
            learner.eval()
            with torch.inference_mode():
                bank = learner.task.bank()
                seconds = _time(
                    lambda learner=learner, bank=bank: learner(test_batch, bank), repeats
                )
            infer[m].append(seconds / eval_batch)
    return [
        MethodTiming(m, statistics.median(steps[m]), statistics.median(infer[m])) for m in methods
    ]


def timing_table(timings: list[MethodTiming], reference: str = "ft") -> str:
    from adapters.training.report import method_label

    ref = next((t for t in timings if t.method == reference), timings[0])
    lines = [
        "| Method | train s/step | vs FT | inference ms/example | vs FT |",
        "|---|---|---|---|---|",
    ]
    for t in timings:
        step_ratio, infer_ratio = t.train_step / ref.train_step, t.inference / ref.inference
        lines.append(
            f"| {method_label(t.method)} | {t.train_step:.3f} | {100 * step_ratio:.0f}% "
            f"| {1000 * t.inference:.2f} | {100 * infer_ratio:.0f}% |"
        )
    return "\n".join(lines)
