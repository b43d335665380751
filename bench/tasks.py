"""Task weights for the benchmark (random, non-trivial: `harness.tasks.random_task`) and banks."""

from __future__ import annotations

import torch
from torch import Tensor

from adapters.artifact import serialize
from adapters.backbone import Backbone
from adapters.bank import BankSizes, TaskBank
from adapters.config import MethodConfig
from harness.tasks import make_manifest, random_task

NUM_LABELS = 2
LABELS = ["negative", "positive"]
# The paper's sizes: LoRA r 8 (alpha 16), bottleneck 48, prefix 10.
APL = MethodConfig.preset("apl", lora_r=8, bottleneck=48, prefix_length=10)
LORA_ONLY = MethodConfig.preset("l", lora_r=8, lora_alpha=16.0)
METHODS = {
    "apl": APL,
    "l": LORA_ONLY,
    # Ablations for the profile: each submodule alone (ungated, as the paper's baselines).
    "head": MethodConfig.preset("head"),
    "a": MethodConfig.preset("a", bottleneck=48),
    "p": MethodConfig.preset("p", prefix_length=10),
    "apl-nogate": MethodConfig.preset("apl-nogate", lora_r=8, bottleneck=48, prefix_length=10),
}
SEEDS = {name: 1000 * i for i, name in enumerate(METHODS)}


class TaskSet:
    """`n` tasks of one method; weights made lazily, seeded by method and index."""

    def __init__(self, backbone: Backbone, method: str) -> None:
        self.backbone, self.method, self.cfg = backbone, method, METHODS[method]
        self._weights: list[dict[str, Tensor]] = []

    def weights(self, n: int) -> list[dict[str, Tensor]]:
        seed0 = SEEDS[self.method]
        while len(self._weights) < n:
            i = len(self._weights)
            self._weights.append(random_task(self.cfg, self.backbone, NUM_LABELS, seed=seed0 + i))
        return self._weights[:n]

    def bank(self, n: int, slots: int | None = None) -> TaskBank:
        """A service-shaped pool bank (default pool limits) with task i in slot i."""
        bank = TaskBank.allocate(max(slots or n, n), self.backbone.dims, BankSizes())
        for slot, w in enumerate(self.weights(n)):
            bank.write(slot, self.cfg, w)
        return bank

    def artifact(self, index: int, name: str) -> tuple[bytes, bytes]:
        """(manifest, safetensors) upload bytes of task `index`, published as `name`."""
        manifest = make_manifest(name, self.cfg, self.backbone, LABELS)
        return serialize(manifest, self.weights(index + 1)[index])


def stacked_heads(weights: list[dict[str, Tensor]]) -> dict[str, Tensor]:
    """Each task's head tensors stacked on a leading task dimension."""
    names = ("head_dense_w", "head_dense_b", "head_out_w", "head_out_b")
    return {k: torch.stack([w[k] for w in weights]) for k in names}


def apply_heads(pooled: Tensor, heads: dict[str, Tensor], tasks: Tensor) -> Tensor:
    """Per-row head on the first token. pooled: (B, d); tasks: (B,) -> logits (B, n)."""
    dense = torch.bmm(pooled.unsqueeze(1), heads["head_dense_w"][tasks]).squeeze(1)
    h = torch.tanh(dense + heads["head_dense_b"][tasks])  # (B, d)
    out = torch.bmm(h.unsqueeze(1), heads["head_out_w"][tasks]).squeeze(1)
    return out + heads["head_out_b"][tasks]


def apply_head(pooled: Tensor, heads: dict[str, Tensor], task: int) -> Tensor:
    """One task's head for the whole batch. pooled: (B, d) -> (B, n)."""
    h = torch.tanh(pooled @ heads["head_dense_w"][task] + heads["head_dense_b"][task])
    return h @ heads["head_out_w"][task] + heads["head_out_b"][task]
