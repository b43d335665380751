"""Seed a store directly through its API (no HTTP uploads): N registered tasks at the paper's
sizes, a mix of UniPELT APL, LoRA-only and AP (prefix + adapter), stored in half precision.

Each task's weights are one of a few random bases with its own head bias, so every task has
distinct bytes (its own sha256) without building N models.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import torch
from torch import Tensor

from adapters.artifact import serialize
from adapters.backbone import Backbone
from adapters.config import MethodConfig
from bench.tasks import APL, LABELS, LORA_ONLY, NUM_LABELS
from harness.tasks import make_manifest, random_task
from service.store.adapter_store import AdapterStore

AP = MethodConfig.preset("ap", bottleneck=48, prefix_length=10)
MIX: tuple[tuple[str, MethodConfig], ...] = (
    ("apl", APL),
    ("apl", APL),
    ("l", LORA_ONLY),
    ("ap", AP),
)
BASES = 4  # random weight sets per method


def task_name(index: int) -> str:
    return f"task-{index:05d}"


@dataclass
class SeedResult:
    tasks: int
    seconds: float
    weight_bytes: int
    by_method: dict[str, int]


def seed_store(
    store: AdapterStore, backbone: Backbone, n: int, dtype: torch.dtype, workers: int = 4
) -> SeedResult:
    """Publish tasks 0..n-1 (task i has method MIX[i % 4]); returns what was written."""
    bases = {
        name: [
            {k: v.to(dtype) for k, v in random_task(cfg, backbone, NUM_LABELS, seed=s).items()}
            for s in range(BASES)
        ]
        for name, cfg in dict(MIX).items()
    }
    manifests = {name: make_manifest("x", cfg, backbone, LABELS) for name, cfg in dict(MIX).items()}
    started = time.perf_counter()

    def publish(index: int) -> tuple[str, int]:
        method, _ = MIX[index % len(MIX)]
        weights: dict[str, Tensor] = dict(bases[method][index % BASES])
        weights["head_out_b"] = weights["head_out_b"] + (index + 1) * 1e-3
        name = task_name(index)
        manifest = manifests[method].model_copy(update={"task": name})
        manifest_bytes, blob = serialize(manifest, weights)
        store.publish(name, manifest_bytes, blob)
        return method, len(blob)

    by_method: dict[str, int] = {}
    total = 0
    with ThreadPoolExecutor(workers) as pool:
        for method, size in pool.map(publish, range(n)):
            by_method[method] = by_method.get(method, 0) + 1
            total += size
    return SeedResult(n, time.perf_counter() - started, total, by_method)
