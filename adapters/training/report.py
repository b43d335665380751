"""Study records -> results.csv, a markdown report and a plot."""

from __future__ import annotations

import csv
import json
import math
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from adapters.config import PRESETS, MethodConfig
from adapters.data.glue import GLUE_TASKS, glue_dir_name
from adapters.methods import GATES, METHODS
from adapters.training.report_runs import runs_table, winners
from adapters.training.study import RUNS_DIR

CSV_FILE, TABLE_FILE, PLOT_FILE = "results.csv", "results.md", "results.png"
TASK_ORDER = ("sst2", "cola", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte")
METHOD_ORDER = tuple(PRESETS)  # the trainer's baseline, then each method module's presets
# UniPELT's parts: the presets that use one gated method alone (A, P, L)
SINGLE_METHODS = tuple(
    name
    for name, cfg in PRESETS.items()
    if any(cfg.methods_on == [m.name] for m in METHODS if m.letter)
)
CSV_COLUMNS = (
    "run_id", "task", "k", "method", "method_name", "seed", "main_metric", "test_main",
    "dev_main", "steps", "best_step", "epochs", "stopped_early", "lr", "seconds_per_step",
    "test_seconds_per_example", "train_seconds", "eval_seconds", "wall_seconds",
    "trainable_parameters", "kept_parameters", "backbone_parameters", "train_size",
    "dev_size", "test_size",
)  # fmt: skip


def load_records(out: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((Path(out) / RUNS_DIR).glob("*.json"))]


def method_label(method: str) -> str:
    return paper_name(MethodConfig.preset(method))


def paper_name(cfg: MethodConfig) -> str:
    """The paper's name of a method: Fine-tuning, Adapter, UniPELT (AP), UniPELT-NoGate (APL),
    ...; the short name (`MethodConfig.name`) where the paper has none."""
    if cfg.full_finetune:
        return "Fine-tuning"
    on = [m for m in METHODS if m.switch is not None and m is not GATES and m.on(cfg)]
    if not on:
        return next(m.paper_name for m in METHODS if m.switch is None and m.paper_name)
    if len(on) == 1 and not cfg.uses_gates:
        return on[0].paper_name or cfg.name
    letters = "".join(m.letter for m in on)
    if len(letters) == len(on) > 1:
        return f"{GATES.paper_name}{'' if cfg.uses_gates else '-NoGate'} ({letters})"
    return cfg.name


def task_label(task: str) -> str:
    return glue_dir_name(task) if task in GLUE_TASKS else task


def _rank(order: tuple[str, ...], value: str) -> tuple[int, str]:
    return (order.index(value) if value in order else len(order), value)


def ordered(records: list[dict[str, Any]], field: str, order: tuple[str, ...]) -> list[str]:
    return sorted({r[field] for r in records}, key=lambda v: _rank(order, v))


def method_order(records: list[dict[str, Any]]) -> list[str]:
    def rank(m: str) -> tuple[int, int, str]:
        base = m.replace("-nogate", "")
        return (_rank(METHOD_ORDER, base)[0], int(m.endswith("-nogate")), m)

    return sorted({r["method"] for r in records}, key=rank)


def write_csv(records: list[dict[str, Any]], path: Path) -> None:
    metric_names = sorted({m for r in records for m in r["metrics"]})
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*CSV_COLUMNS, *metric_names])
        for r in sorted(records, key=lambda r: (r["k"], r["task"], r["method"], r["seed"])):
            row = [r.get(c) for c in CSV_COLUMNS]
            writer.writerow(row + [r["metrics"].get(m) for m in metric_names])


def cells(records: list[dict[str, Any]]) -> dict[tuple[int, str, str], list[float]]:
    """(k, task, method) -> the test main metric of each seed, x100."""
    out: dict[tuple[int, str, str], list[float]] = defaultdict(list)
    for r in records:
        if r.get("test_main") is not None:
            out[(r["k"], r["task"], r["method"])].append(100.0 * r["test_main"])
    return out


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def complete_tasks(
    table: dict[tuple[int, str, str], list[float]], k: int, tasks: list[str], methods: list[str]
) -> list[str]:
    """The tasks on which every method has run the same number of seeds: only these enter an
    average, so that a half-run task does not make the methods' averages incomparable."""
    out = []
    for t in tasks:
        counts = {len(table.get((k, t, m)) or []) for m in methods}
        if len(counts) == 1 and 0 not in counts:
            out.append(t)
    return out


def averages(
    table: dict[tuple[int, str, str], list[float]], k: int, tasks: list[str], methods: list[str]
) -> dict[str, float]:
    """Each method's mean over `tasks` of its per-task mean (only methods with every task);
    callers pass `complete_tasks`."""
    if not tasks:
        return {}
    out = {}
    for m in methods:
        per_task = [table.get((k, t, m)) or [] for t in tasks]
        if all(per_task):
            out[m] = statistics.fmean(statistics.fmean(v) for v in per_task)
    return out


def score_table(records: list[dict[str, Any]], k: int) -> str:
    rows = [r for r in records if r["k"] == k]
    tasks, methods = ordered(rows, "task", TASK_ORDER), method_order(rows)
    table = cells(rows)
    complete = complete_tasks(table, k, tasks, methods)
    avg = averages(table, k, complete, methods)
    seeds = max((len(v) for v in table.values()), default=0)
    head = f"| K={k} | " + " | ".join(task_label(t) for t in tasks) + " | Avg |"
    lines = [head, "|---" * (len(tasks) + 2) + "|"]
    for m in methods:
        parts = []
        for t in tasks:
            values = table.get((k, t, m))
            if not values:
                parts.append("–")
                continue
            mean, std = mean_std(values)
            note = f" (n={len(values)})" if len(values) != seeds else ""
            parts.append(f"{mean:.2f}" if seeds == 1 else f"{mean:.2f} ± {std:.2f}{note}")
        average = f"{avg[m]:.2f}" if m in avg else "–"
        lines.append(f"| {method_label(m)} | " + " | ".join(parts) + f" | {average} |")
    if complete != tasks:
        names = ", ".join(task_label(t) for t in complete) or "none"
        note = f"Avg: over the tasks every method has run on the same number of seeds ({names})."
        lines += ["", note]
    return "\n".join(lines)


def comparison(records: list[dict[str, Any]], k: int) -> list[str]:
    """UniPELT (APL) against the best single method and the per-task upper bound."""
    rows = [r for r in records if r["k"] == k]
    table, methods = cells(rows), method_order(rows)
    tasks = complete_tasks(table, k, ordered(rows, "task", TASK_ORDER), methods)
    avg = averages(table, k, tasks, methods)
    singles = [m for m in SINGLE_METHODS if m in avg]
    if "apl" not in avg or not singles:
        return []
    best = max(singles, key=lambda m: avg[m])
    bound = statistics.fmean(
        max(statistics.fmean(table[(k, t, m)]) for m in singles) for t in tasks
    )
    over = ", ".join(task_label(t) for t in tasks)
    lines = [
        f"- K={k}, averaged over {over}: UniPELT (APL) {avg['apl']:.2f}; the best single method, "
        f"{method_label(best)}, {avg[best]:.2f} ({avg['apl'] - avg[best]:+.2f}); the per-task "
        f"best of {'/'.join(method_label(m) for m in singles)} (upper bound) {bound:.2f} "
        f"({avg['apl'] - bound:+.2f})."
    ]
    if "ft" in avg:
        lines.append(
            f"- K={k}: fine-tuning averages {avg['ft']:.2f} (APL {avg['apl'] - avg['ft']:+.2f})."
        )
    wins = [
        task_label(t)
        for t in tasks
        if statistics.fmean(table[(k, t, "apl")])
        < max(statistics.fmean(table[(k, t, m)]) for m in singles)
    ]
    if wins:
        lines.append(f"- K={k}: a single method beats APL on {', '.join(wins)}.")
    return lines


def _geomean(values: list[float]) -> float:
    return math.exp(statistics.fmean(math.log(v) for v in values)) if values else math.nan


def efficiency_table(records: list[dict[str, Any]]) -> str:
    """Parameters (kept / while training) and time relative to fine-tuning, per method."""
    ft = {(r["task"], r["k"], r["seed"]): r for r in records if r["method"] == "ft"}
    lines = [
        "| Method | kept params | % of backbone | params while training | train time/step vs FT "
        "| inference time vs FT |",
        "|---|---|---|---|---|---|",
    ]
    for m in method_order(records):
        rows = [r for r in records if r["method"] == m]
        backbone = rows[0]["backbone_parameters"]
        kept = statistics.median(r["kept_parameters"] for r in rows)
        during = statistics.median(r["trainable_parameters"] for r in rows)
        found = [(r, ft.get((r["task"], r["k"], r["seed"]))) for r in rows]
        pairs = [(r, f) for r, f in found if f is not None]
        step = _geomean([r["seconds_per_step"] / f["seconds_per_step"] for r, f in pairs])
        infer = _geomean(
            [r["test_seconds_per_example"] / f["test_seconds_per_example"] for r, f in pairs]
        )
        lines.append(
            f"| {method_label(m)} | {kept:,.0f} | {100 * kept / backbone:.2f}% | {during:,.0f} "
            f"| {_pct(step)} | {_pct(infer)} |"
        )
    return "\n".join(lines)


def _pct(ratio: float) -> str:
    return "–" if math.isnan(ratio) else f"{100 * ratio:.0f}%"


def markdown(records: list[dict[str, Any]]) -> str:
    ks = sorted({r["k"] for r in records})
    parts = ["## Test scores (x100; mean ± std over seeds when there are several)", ""]
    for k in ks:
        parts += [score_table(records, k), ""]
    notes = [line for k in ks for line in comparison(records, k)]
    if notes:
        parts += ["## UniPELT against its parts", "", *notes, ""]
    best = [line for k in ks for line in winners(records, k, method_label, task_label)]
    if best:
        parts += ["## Winner per task (mean test score over seeds)", "", *best, ""]
    parts += ["## What ran", "", runs_table(records, method_label, task_label), ""]
    parts += ["## Efficiency (median parameters; geometric mean of time ratios)", ""]
    parts += [
        "Times are each run's own wall time per step and per test example, paired with the FT "
        "run of the same task, K and seed. Runs that ran at different machine loads are not "
        "comparable; `unipelt study --timing` times every method on the same batches back to "
        "back (timing.md).",
        "",
    ]
    parts += [efficiency_table(records), ""]
    return "\n".join(parts)


def plot(records: list[dict[str, Any]], path: Path) -> None:
    """Grouped bars per task and the average, one panel per K (needs matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise RuntimeError(
            "the study plot needs matplotlib: pip install 'unipelt-serve[study]'"
        ) from exc
    ks = sorted({r["k"] for r in records})
    methods = method_order(records)
    fig, axes = plt.subplots(len(ks), 1, figsize=(12, 3.8 * len(ks)), squeeze=False)
    width = 0.8 / max(len(methods), 1)
    for ax, k in zip(axes[:, 0], ks):
        rows = [r for r in records if r["k"] == k]
        tasks, table = ordered(rows, "task", TASK_ORDER), cells(rows)
        complete = complete_tasks(table, k, tasks, methods)
        avg = averages(table, k, complete, methods)
        for i, m in enumerate(methods):
            means, errs = [], []
            for t in tasks:
                missing = (math.nan, math.nan)  # no bar where a cell has not run
                mean, std = mean_std(table[(k, t, m)]) if table.get((k, t, m)) else missing
                means.append(mean)
                errs.append(std)
            means.append(avg.get(m, math.nan))
            errs.append(0.0)
            xs = [j + (i - (len(methods) - 1) / 2) * width for j in range(len(tasks) + 1)]
            yerr = errs if any(e > 0 for e in errs) else None
            ax.bar(xs, means, width, yerr=yerr, capsize=2, label=method_label(m))
        averaged = ", ".join(task_label(t) for t in complete)
        ax.set_xticks(
            range(len(tasks) + 1), [task_label(t) for t in tasks] + [f"Avg\n({averaged})"]
        )
        ax.set_ylabel("test score x100")
        ax.set_title(f"K = {k} training examples")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=min(len(methods), 8), fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(out: Path, with_plot: bool = True) -> list[Path]:
    """Rebuild results.csv, results.md (and results.png) from the run records in `out`."""
    out = Path(out)
    records = load_records(out)
    if not records:
        raise FileNotFoundError(f"no run records in {out / RUNS_DIR}")
    written = [out / CSV_FILE, out / TABLE_FILE]
    write_csv(records, written[0])
    written[1].write_text(markdown(records))
    if with_plot:
        plot(records, out / PLOT_FILE)
        written.append(out / PLOT_FILE)
    return written
