"""Where the mixed forward's time goes: an ablation by submodule (each measured interleaved
with the ceiling on the same windows), torch.profiler's op table for APL and for the ceiling,
and the top-level aten ops one forward launches (each at least one kernel on a GPU)."""

from __future__ import annotations

import sys
from collections import defaultdict

from torch.profiler import ProfilerActivity, profile

from adapters.model import UniPELTModel
from bench.forward import engine_runners
from bench.forward.inprocess import Spec, add_ratios, measure
from bench.report import RowResult, fmt, table
from bench.sizes import RunSize, parse_workload
from bench.tasks import TaskSet, stacked_heads
from bench.workload import Encoder, Workload

ABLATION = (
    ("head", "head only (our layer loop + per-row head)"),
    ("l", "LoRA r8 (q, v), no gates"),
    ("a", "bottleneck adapter 48, no gate"),
    ("p", "prefix 10, no gate"),
    ("apl-nogate", "APL, no gates"),
    ("apl", "APL with gates (UniPELT)"),
)
CATEGORIES = {
    "linear and mm (frozen GEMMs)": (
        "aten::addmm",
        "aten::mm",
        "aten::linear",
    ),
    "per-row bmm (LoRA, adapter, gates, head)": ("aten::bmm", "aten::baddbmm"),
    "gathers (bank[slots])": ("aten::index", "aten::index_select", "aten::gather"),
    "attention (sdpa)": ("aten::_scaled_dot_product_flash_attention_for_cpu",),
    "concat (prefix, masks)": ("aten::cat",),
    "elementwise and reductions": (
        "aten::add",
        "aten::add_",
        "aten::mul",
        "aten::div",
        "aten::sigmoid",
        "aten::where",
        "aten::relu",
        "aten::clamp_min",
        "aten::sum",
        "aten::tanh",
        "aten::gelu",
        "aten::lt",
        "aten::repeat_interleave",
        "aten::bitwise_and",
        "aten::eq",
        "aten::ne",
    ),
    "copies": ("aten::copy_", "aten::clone", "aten::contiguous", "aten::zeros", "aten::fill_"),
    "layer norm": ("aten::native_layer_norm",),
}


def profile_section(
    size: RunSize,
    workloads: dict[str, Workload],
    encoder: Encoder,
    apl: TaskSet,
    lora: TaskSet,
    model: UniPELTModel,
) -> dict:
    key = max(size.apl_mixed, key=lambda w: (parse_workload(w)[0], w.endswith("u")))
    n, _ = parse_workload(key)
    b = size.batch
    log(f"profile on workload {key}: ablation, op table, op count")
    heads = stacked_heads(apl.weights(n))
    specs = [
        Spec(
            RowResult("ceiling", "ceiling (transformers forward + head)", key, f"{b}"),
            engine_runners.ceiling_runner(apl.backbone, encoder, heads, b),
        )
    ]
    for method, label in ABLATION:
        tasks = apl if method == "apl" else lora if method == "l" else TaskSet(apl.backbone, method)
        bank = tasks.bank(n)
        specs.append(
            Spec(
                RowResult(f"abl_{method}", f"ours: {label}", key, f"{b} mixed"),
                engine_runners.mixed_runner(model, bank, encoder, b),
            )
        )
    rows = measure(specs, {key: workloads[key]}, size, log)
    add_ratios(rows)
    runners = {s.result.key: s.runner for s in specs}
    names = {"ceiling": "ceiling", "ours APL": "abl_apl"}
    ops = {label: _empty_ops() for label in names}
    for window in workloads[key].windows(b)[: size.windows]:
        for label, row in names.items():  # interleaved, window by window
            _add_ops(ops[label], runners[row], window)
    window = workloads[key].windows(b)[0][:b]
    counts = {label: top_level_ops(runners[row], window) for label, row in names.items()}
    result = {"rows": [r.summary() for r in rows], "ops": ops, "top_level_ops": counts}
    result["markdown"] = _markdown(result, key)
    return result


def top_level_ops(run, window) -> int:
    """aten ops called from Python (not from inside another op) in one forward of `window`."""
    run(window)  # warm
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run(window)
    return sum(1 for e in prof.events() if e.cpu_parent is None and e.name.startswith("aten::"))


def _empty_ops() -> dict:
    return {"total_ms": 0.0, "ms": defaultdict(float), "calls": defaultdict(int), "windows": 0}


def _add_ops(acc: dict, run, window) -> None:
    """Add one profiled window's self CPU ms and op calls, per category, to `acc`."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run(window)
    acc["windows"] += 1
    for event in prof.key_averages():
        self_ms = event.self_cpu_time_total / 1000
        cat = next((c for c, names in CATEGORIES.items() if event.key in names), "other ops")
        acc["total_ms"] += self_ms
        acc["ms"][cat] += self_ms
        acc["calls"][cat] += event.count


def _markdown(result: dict, key: str) -> str:
    out = [
        "### Where the mixed forward's time goes",
        "",
        f"Workload {key}; each row measured interleaved with the ceiling on the same windows.",
        "",
        table(result["rows"]),
        "",
        "Top-level aten ops in one forward of one batch (each is at least one kernel launch "
        "on a GPU): "
        + ", ".join(f"{k} {v}" for k, v in result["top_level_ops"].items())
        + f" ({result['top_level_ops']['ours APL'] / result['top_level_ops']['ceiling']:.2f}x "
        "the ceiling).",
        "",
        "torch.profiler, self CPU ms summed over the measured windows, profiled interleaved "
        "(op calls in brackets):",
        "",
    ]
    names = list(result["ops"])
    cats = [*CATEGORIES, "other ops"]
    out += ["| category | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for cat in cats:
        cells = [
            f"{fmt(result['ops'][n]['ms'].get(cat, 0.0), 0)} "
            f"({result['ops'][n]['calls'].get(cat, 0)})"
            for n in names
        ]
        out.append(f"| {cat} | " + " | ".join(cells) + " |")
    out.append(
        "| total | " + " | ".join(fmt(result["ops"][n]["total_ms"], 0) for n in names) + " |"
    )
    return "\n".join(out)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
