"""Report sections on what a study ran (cells, seeds, cost, where) and each task's winner."""

from __future__ import annotations

import statistics
from collections import defaultdict
from typing import Any

Record = dict[str, Any]


def _by_cell(records: list[Record]) -> dict[tuple[int, str, str], list[Record]]:
    out: dict[tuple[int, str, str], list[Record]] = defaultdict(list)
    for r in records:
        out[(r["k"], r["task"], r["method"])].append(r)
    return out


def winners(records: list[Record], k: int, label, task_label) -> list[str]:
    """Per task at this K: the best mean test score, the runner-up, and whether the gap is
    larger than the winner's seed standard deviation."""
    lines = []
    cells = _by_cell([r for r in records if r["k"] == k and r.get("test_main") is not None])
    for task in sorted({t for _, t, _ in cells}):
        scores = {
            m: [100 * r["test_main"] for r in rs] for (_, t, m), rs in cells.items() if t == task
        }
        if len(scores) < 2:
            continue
        ranked = sorted(scores, key=lambda m: -statistics.fmean(scores[m]))
        best, second = ranked[0], ranked[1]
        mean, runner = statistics.fmean(scores[best]), statistics.fmean(scores[second])
        std = statistics.stdev(scores[best]) if len(scores[best]) > 1 else 0.0
        seeds = len(scores[best])
        if seeds > 1:
            clear = "clear" if mean - runner > std else "within the seed spread"
            spread = f"{clear} (std {std:.2f})"
        else:
            spread = "one seed, no spread to judge it by"
        lines.append(
            f"- K={k} {task_label(task)}: **{label(best)}** {mean:.2f} ({seeds} seed(s)), "
            f"then {label(second)} {runner:.2f}: gap {mean - runner:.2f}, {spread}."
        )
    return lines


def runs_table(records: list[Record], label, task_label) -> str:
    """One row per cell: seeds, steps, early stopping, wall time per run, where it ran."""
    lines = [
        "| K | task | method | seeds | steps (best step), mean | stopped early | lr "
        "| wall s/run, mean | s/step | where |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (k, task, method), rs in sorted(_by_cell(records).items()):
        rs = sorted(rs, key=lambda r: r["seed"])
        where = sorted({f"{r.get('device', 'cpu')}, {r.get('threads', '?')} thread(s)" for r in rs})
        lines.append(
            f"| {k} | {task_label(task)} | {label(method)} "
            f"| {','.join(str(r['seed']) for r in rs)} "
            f"| {statistics.fmean(r['steps'] for r in rs):.0f} "
            f"({statistics.fmean(r['best_step'] for r in rs):.0f}) "
            f"| {sum(bool(r['stopped_early']) for r in rs)}/{len(rs)} | {rs[0]['lr']:g} "
            f"| {statistics.fmean(r['wall_seconds'] for r in rs):.0f} "
            f"| {statistics.fmean(r['seconds_per_step'] for r in rs):.2f} | {'; '.join(where)} |"
        )
    return "\n".join(lines)
