"""Where the mixed forward's time goes: an ablation by submodule (each measured interleaved
with the ceiling on the same windows), torch.profiler's op table for APL and for the ceiling,
and the prototype in `bench/fast_forward.py` (checked equal to the reference first)."""

from __future__ import annotations

import sys
from collections import defaultdict

import torch
from torch.profiler import ProfilerActivity, profile

from adapters.model import UniPELTModel
from bench import engine_bench
from bench.fast_forward import FastUniPELT, FusedBank
from bench.inprocess import Spec, add_ratios, measure
from bench.plan import Plan, parse_workload
from bench.report import RowResult, fmt, paired_ratio, table
from bench.segment_forward import SegmentUniPELT
from bench.tasks import TaskSet, stacked_heads
from bench.timing import run_groups
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
    "linear and mm (frozen GEMMs; prototype 2: per-task mm)": (
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
    plan: Plan,
    workloads: dict[str, Workload],
    encoder: Encoder,
    apl: TaskSet,
    lora: TaskSet,
    model: UniPELTModel,
) -> dict:
    key = max(plan.apl_mixed, key=lambda w: (parse_workload(w)[0], w.endswith("u")))
    n, _ = parse_workload(key)
    b = plan.batch
    log(f"profile on workload {key}: ablation, op table, prototype")
    heads = stacked_heads(apl.weights(n))
    specs = [
        Spec(
            RowResult("ceiling", "ceiling (transformers forward + head)", key, f"{b}"),
            engine_bench.ceiling_runner(apl.backbone, encoder, heads, b),
        )
    ]
    for method, label in ABLATION:
        tasks = apl if method == "apl" else lora if method == "l" else TaskSet(apl.backbone, method)
        bank = tasks.bank(n)
        specs.append(
            Spec(
                RowResult(f"abl_{method}", f"ours: {label}", key, f"{b} mixed"),
                engine_bench.mixed_runner(model, bank, encoder, b),
            )
        )
    apl_bank = apl.bank(n)
    window0 = workloads[key].windows(b)[0]
    protos = {
        "proto_apl": (
            "prototype 1, fused layouts (bench/fast_forward.py): APL",
            FastUniPELT(apl.backbone).eval(),
            FusedBank(apl_bank),
        ),
        "seg_apl": (
            "prototype 2, no weight copies (bench/segment_forward.py): APL",
            SegmentUniPELT(apl.backbone).eval(),
            apl_bank,
        ),
    }
    diffs = {}
    for name, (label, module, state) in protos.items():
        diffs[name] = check_prototype(model, apl_bank, module, state, encoder, window0)
        specs.append(
            Spec(
                RowResult(name, label, key, f"{b} mixed"),
                prototype_runner(module, state, encoder, b),
            )
        )
    rows = measure(specs, {key: workloads[key]}, plan, log)
    add_ratios(rows)
    by_key = {r.key: r for r in rows}
    for name in protos:
        by_key[name].ratios["engine"] = paired_ratio(by_key[name], by_key["abl_apl"])
    runners = {s.result.key: s.runner for s in specs}
    names = {
        "ceiling": "ceiling",
        "ours APL": "abl_apl",
        "prototype 1": "proto_apl",
        "prototype 2": "seg_apl",
    }
    ops = {label: _empty_ops() for label in names}
    for window in workloads[key].windows(b)[: plan.windows]:
        for label, row in names.items():  # interleaved, window by window
            _add_ops(ops[label], runners[row], window)
    result = {"rows": [r.summary() for r in rows], "ops": ops, "prototype_max_diff": diffs}
    result["markdown"] = _markdown(result, key)
    return result


def prototype_runner(module, state, encoder: Encoder, batch: int):
    """A prototype called as `module(input_ids, attention_mask, state, slots)` -> logits."""

    @torch.inference_mode()
    def forward(rows):
        ids, mask = encoder.batch(rows)
        return module(ids, mask, state, torch.tensor([r.task for r in rows], dtype=torch.long))

    return lambda window: run_groups(window, engine_bench.chunks(len(window), batch), forward)


@torch.inference_mode()
def check_prototype(model, bank, module, state, encoder, window) -> float:
    """A prototype must give the reference forward's logits (else it proves nothing)."""
    ids, mask = encoder.batch(window)
    slots = torch.tensor([r.task for r in window], dtype=torch.long)
    ref = model(ids, mask, bank, slots).logits
    got = module(ids, mask, state, slots)
    diff = float((ref - got[:, : ref.shape[1]]).abs().max())
    if diff > 1e-3:
        raise AssertionError(f"prototype differs from the reference forward by {diff}")
    return diff


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
        f"Workload {key}; each row measured interleaved with the ceiling on the same windows; "
        "x engine = prototype / our current APL forward on the same windows.",
        "",
        table(result["rows"]),
        "",
        "Prototypes' max |logit difference| vs the reference forward: "
        + ", ".join(f"{k} {v:.1e}" for k, v in result["prototype_max_diff"].items())
        + ".",
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
