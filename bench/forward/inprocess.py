"""The in-process rows, measured interleaved: every window is run by every row back to back
(rotating the order between windows), so ratios compare rows measured side by side."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from adapters.model import UniPELTModel
from bench.forward import engine_runners, peft_runners
from bench.report import RowResult, paired_ratio
from bench.sizes import RunSize, parse_workload
from bench.tasks import LORA_ONLY, TaskSet, stacked_heads
from bench.timing import Runner
from bench.workload import Encoder, Workload
from harness.peft_models import build_peft_model


@dataclass
class Spec:
    result: RowResult
    runner: Runner


def build_specs(
    size: RunSize,
    workloads: dict[str, Workload],
    encoder: Encoder,
    apl: TaskSet,
    lora: TaskSet,
    model: UniPELTModel,
    with_peft: bool,
) -> tuple[list[Spec], list[str]]:
    """The rows to measure, and notes from the checks made while building them."""
    b, n_apl = size.batch, size.max_tasks
    n_lora = max(parse_workload(w)[0] for w in size.peft)
    apl_bank, lora_bank = apl.bank(n_apl), lora.bank(n_lora)
    ceiling = engine_runners.ceiling_runner(apl.backbone, encoder, stacked_heads(apl.weights(1)), b)
    apl_mixed = engine_runners.mixed_runner(model, apl_bank, encoder, b)
    apl_grouped = engine_runners.grouped_runner(model, apl_bank, encoder)
    lora_mixed = engine_runners.mixed_runner(model, lora_bank, encoder, b)
    rows = [("ceiling", "backbone + 1 head, no PELT (transformers forward)", "-", f"{b}", ceiling)]
    rows += [
        (f"apl_mixed_{w}", "ours, UniPELT APL, mixed-task forward", w, f"{b} mixed", apl_mixed)
        for w in size.apl_mixed
    ]
    rows += [
        (f"apl_grouped_{w}", "ours, UniPELT APL, grouped by task", w, "per task", apl_grouped)
        for w in size.apl_grouped
    ]
    rows += [
        (
            f"l_mixed_{w}",
            f"ours, LoRA-only r{LORA_ONLY.lora_r}, mixed-task forward",
            w,
            f"{b} mixed",
            lora_mixed,
        )
        for w in size.peft
    ]
    checks = []
    if with_peft:
        weights = lora.weights(n_lora)
        heads = stacked_heads(weights)
        peft = build_peft_model(lora.backbone, weights, LORA_ONLY.lora_r, LORA_ONLY.lora_alpha)
        checks.append(_peft_check(model, lora_bank, peft, heads, encoder, workloads, size))
        request = peft_runners.per_request_runner(peft, encoder, heads)
        grouped = peft_runners.grouped_runner(peft, encoder, heads)
        mixed = peft_runners.mixed_runner(peft, encoder, heads, b)
        for w in size.peft:
            rows += [
                (f"peft_request_{w}", "PEFT LoRA, set_adapter per request", w, "1", request),
                (
                    f"peft_grouped_{w}",
                    "PEFT LoRA, set_adapter per task group",
                    w,
                    "per task",
                    grouped,
                ),
                (
                    f"peft_mixed_{w}",
                    "PEFT LoRA, mixed batch (adapter_names)",
                    w,
                    f"{b} mixed",
                    mixed,
                ),
            ]
    return [Spec(RowResult(k, label, w, bt), run) for k, label, w, bt, run in rows], checks


def _peft_check(model, lora_bank, peft, heads, encoder, workloads, size) -> str:
    """Our LoRA-only mixed forward and PEFT's give the same logits on the same weights."""
    window = workloads[size.peft[0]].windows(size.batch)[0]
    ours = engine_runners.bank_forward(model, lora_bank, encoder)(window)
    theirs = peft_runners.mixed_logits(peft, encoder, heads, window)
    diff = float((ours - theirs).abs().max())
    return (
        "Same weights, same answers: ours (LoRA-only) and PEFT's mixed batch differ by at most "
        f"{diff:.1e} in any logit on one window of {len(window)} requests."
    )


def measure(
    specs: list[Spec],
    workloads: dict[str, Workload],
    size: RunSize,
    log: Callable[[str], None] = lambda m: print(m, file=sys.stderr),
) -> list[RowResult]:
    """Warm every row on an extra window, then for each window run every row on it, back to
    back, rotating the order between windows (paired, interleaved measurements)."""
    texts_only = next(iter(workloads.values()))  # the ceiling ignores tasks; texts are shared

    def windows(spec: Spec) -> list:
        return workloads.get(spec.result.workload, texts_only).windows(size.batch)

    for spec in specs:
        spec.runner(windows(spec)[-1])
    for index in range(size.windows):
        started = time.perf_counter()
        shift = index % len(specs)
        for spec in specs[shift:] + specs[:shift]:
            window = windows(spec)[index]
            done = spec.runner(window)
            spec.result.add(len(window), max(done), done)
        log(
            f"  window {index + 1}/{size.windows} ({time.perf_counter() - started:.1f} s): "
            + ", ".join(f"{s.result.key} {s.result.per_window[-1]:.1f}" for s in specs)
        )
    return [s.result for s in specs]


def add_ratios(rows: list[RowResult]) -> None:
    by_key = {r.key: r for r in rows}
    ceiling = by_key["ceiling"]
    for row in rows:
        if row is not ceiling:
            row.ratios["ceiling"] = paired_ratio(row, ceiling)
        for base in ("peft_request", "peft_mixed"):
            other = by_key.get(f"{base}_{row.workload}")
            if other is not None and other is not row and not row.key.startswith(base):
                row.ratios[base] = paired_ratio(row, other)
