"""The parity table from the harness's run records: per seed, mean, std, ours minus reference."""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from pathlib import Path

ROWS = (
    ("ref-ft", "plain transformers FT (lr 2e-5 constant, 10 epochs)"),
    ("ft-same", "ours FT, same schedule and head init"),
    ("ft-defaults", "ours FT, `unipelt train` defaults"),
    ("ref-lora", "plain PEFT LoRA r8/a16 Q,V + classifier (lr 5e-4 constant, 10 epochs)"),
    ("l-same", "ours L, same schedule, head and LoRA init"),
    ("l-defaults", "ours L, `unipelt train` defaults"),
)
REFERENCE = {"ft-same": "ref-ft", "ft-defaults": "ref-ft", "l-same": "ref-lora",
             "l-defaults": "ref-lora"}  # fmt: skip
TABLE_FILE = "parity.md"


def load(out: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((out / "runs").glob("*.json"))]


def table(records: list[dict]) -> str:
    by: defaultdict[tuple[str, int], dict[tuple[str, int], dict]] = defaultdict(dict)
    for r in records:
        by[(r["task"], r["k"])][(r["impl"], r["seed"])] = r
    parts = []
    for (task, k), runs in sorted(by.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        seeds = sorted({s for _, s in runs})
        head = f"| {task} K={k} | " + " | ".join(f"seed {s}" for s in seeds)
        lines = [head + " | mean | std | mean - ref (same seeds) | steps (best) |",
                 "|---" * (len(seeds) + 5) + "|"]  # fmt: skip
        for impl, label in ROWS:
            got = {s: runs[(impl, s)] for s in seeds if (impl, s) in runs}
            if not got:
                continue
            cells = [f"{100 * got[s]['test_main']:.1f}" if s in got else "–" for s in seeds]
            values = [100 * r["test_main"] for r in got.values()]
            mean = statistics.fmean(values)
            std = statistics.stdev(values) if len(values) > 1 else 0.0
            steps = ", ".join(f"{r['steps']} ({r['best_step']})" for r in got.values())
            delta = _delta(runs, impl, got)
            row = f"| {label} | " + " | ".join(cells)
            lines.append(row + f" | {mean:.1f} | {std:.1f} | {delta} | {steps} |")
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


def _delta(runs: dict, impl: str, got: dict) -> str:
    ref = REFERENCE.get(impl)
    shared = [s for s in got if (ref, s) in runs] if ref else []
    if not shared:
        return ""
    ours = statistics.fmean(100 * got[s]["test_main"] for s in shared)
    theirs = statistics.fmean(100 * runs[(ref, s)]["test_main"] for s in shared)
    return f"{ours - theirs:+.1f} ({len(shared)} seeds)"


def write_table(out: Path) -> str:
    text = table(load(out))
    out.mkdir(parents=True, exist_ok=True)
    (out / TABLE_FILE).write_text(
        "Test score (x100; accuracy for SST-2 and RTE) of each run of "
        "`python -m bench.training.parity`."
        "\n\n" + text
    )
    return text
