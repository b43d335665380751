"""`python -m bench.forward.fused_forward`: the mixed-task forward against the transformers forward.

Rows, each measured on the same arrival windows, interleaved (the order rotates per window):
the ceiling (the transformers model's forward plus one task's head, no PELT module) and our
mixed-task APL forward over N resident tasks, eager or (CUDA) captured as CUDA graphs per
shape bucket the way the service runs it. Also the top-level aten ops one forward calls
(each at least one kernel launch on a GPU). Prints a table; `--json` writes the figures.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from adapters.backbone import Backbone
from adapters.bank import BankSizes, TaskBank
from adapters.model import UniPELTModel
from adapters.packing import packing_for
from adapters.plan import Buckets, plan_batch
from adapters.tokenization import load_tokenizer
from bench.backbones import bench_backbone
from bench.tasks import APL, TaskSet, apply_head, stacked_heads
from bench.workload import GLUE_DIR, Encoder, Request, load_texts, make_workload
from service.engine.inference.cuda_graphs import GraphCache, Inputs


@dataclass
class Forward:
    """`prepare` builds a batch's host inputs (padding, plan); `run` is the forward proper."""

    prepare: Callable[[list[Request]], tuple]
    run: Callable[..., torch.Tensor]
    notes: list[str] = field(default_factory=list)

    def __call__(self, rows: list[Request]) -> torch.Tensor:
        return self.run(*self.prepare(rows))


TOKEN_STEP = 16  # the runner's sequence-length bucket when graphs are on


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument(
        "--backbone",
        default=os.environ.get("UNIPELT_BACKBONE"),
        help="checkpoint directory (a config.json alone: random weights); default packaged",
    )
    p.add_argument("--glue-dir", type=Path, default=os.environ.get("UNIPELT_GLUE_DIR", GLUE_DIR))
    p.add_argument("--tasks", type=int, nargs="+", default=[100, 1000])
    p.add_argument("--batch", type=int, nargs="+", default=[32])
    p.add_argument("--dtype", nargs="+", default=["float32"])
    p.add_argument("--graphs", nargs="+", choices=["off", "on"], default=["off"])
    p.add_argument("--windows", type=int, default=8)
    p.add_argument("--popularity", default="uniform", choices=["uniform", "zipf"])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", type=Path, default=None)
    return p.parse_args(argv)


def pad_batch(encoder: Encoder, rows: list[Request], step: int) -> tuple:
    """(ids, mask) padded to a multiple of `step` tokens (1: the batch's longest row)."""
    ids, mask = encoder.batch(rows)
    extra = -ids.shape[1] % step
    if extra:
        ids = torch.nn.functional.pad(ids, (0, extra), value=encoder.pad)
        mask = torch.nn.functional.pad(mask, (0, extra))
    return ids, mask


def ceiling(backbone: Backbone, heads: dict, encoder: Encoder, device, graphs: bool) -> Forward:
    """The transformers forward plus task 0's head (one graph per shape when `graphs`; if the
    transformers forward cannot be captured, it runs eagerly and the row says so)."""
    cache: dict[tuple, tuple] = {}
    notes: list[str] = []

    def eager(ids, mask):
        hidden = backbone.model(input_ids=ids, attention_mask=mask).last_hidden_state
        return apply_head(hidden[:, 0], heads, 0)

    def prepare(rows: list[Request]) -> tuple:
        ids, mask = pad_batch(encoder, rows, TOKEN_STEP if graphs else 1)
        return ids.to(device), mask.to(device)

    @torch.inference_mode()
    def forward(ids, mask) -> torch.Tensor:
        if not graphs or notes:
            return eager(ids, mask)
        key = tuple(ids.shape)
        if key not in cache:
            static = (ids.clone(), mask.clone())
            for _ in range(2):
                eager(*static)
            graph = torch.cuda.CUDAGraph()
            try:
                with torch.cuda.graph(graph):
                    out = eager(*static)
            except RuntimeError as exc:  # e.g. a host read inside the transformers forward
                notes.append(f"capture failed, ran eagerly: {str(exc).splitlines()[0][:200]}")
                return eager(ids, mask)
            cache[key] = (graph, static, out)
        graph, static, out = cache[key]
        static[0].copy_(ids)
        static[1].copy_(mask)
        graph.replay()
        return out

    return Forward(prepare, forward, notes)


def ours(
    model: UniPELTModel, bank: TaskBank, encoder: Encoder, device, graphs: bool, packed: bool
) -> Forward:
    """Our mixed forward as the service runs it: the plan from Python values, and with
    `graphs` the runner's shape buckets and graph cache; `packed`: token-wise work on real
    tokens only (`adapters.packing`; the service packs whenever it runs without graphs)."""
    cache = GraphCache(model, bank, torch.device(device), max_graphs=64 if graphs else 0)
    buckets = Buckets.static() if graphs else Buckets.exact()

    def prepare(rows: list[Request]) -> tuple:
        ids, mask = pad_batch(encoder, rows, TOKEN_STEP if graphs else 1)
        slots = [r.task for r in rows]  # task i lives in slot i
        lengths = mask.sum(1).tolist()  # right-padded host rows
        padded = not all(n == ids.shape[1] for n in lengths)
        plan = plan_batch(
            bank, slots, padded, buckets, not graphs, lengths if packed and not graphs else None
        )
        packing = packing_for(plan, ids.shape[1], bank.dtype)
        return Inputs(ids, mask, torch.zeros_like(ids), torch.tensor(slots)), plan, packing

    @torch.inference_mode()
    def forward(inputs: Inputs, plan, packing) -> torch.Tensor:
        return cache.run(inputs, plan, want_gates=False, packing=packing)[0]

    return Forward(prepare, forward)


def top_level_ops(forward: Forward, rows: list[Request]) -> int:
    """aten ops called from Python (not from inside another op) in one forward proper (the
    host-side padding and planning excluded; on the GPU without graphs: kernel launches)."""
    forward.run(*forward.prepare(rows))  # warm
    args = forward.prepare(rows)  # fresh, as each batch is
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        forward.run(*args)
    return sum(1 for e in prof.events() if e.cpu_parent is None and e.name.startswith("aten::"))


def measure(rows: dict[str, Forward], windows: list[list[Request]], device) -> dict:
    """Seconds per window for each row, rows interleaved window by window (rotating order)."""
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else lambda: None
    for forward in rows.values():  # warm: allocator, graphs, caches
        forward(windows[-1])
    sync()
    times: dict[str, list[float]] = {k: [] for k in rows}
    names = list(rows)
    for i, window in enumerate(windows[:-1]):
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            rows[name](window)
            sync()
            times[name].append(time.perf_counter() - start)
    return times


def bank_of(tasks: TaskSet, n: int, device, dtype) -> TaskBank:
    bank = TaskBank.allocate(n, tasks.backbone.dims, BankSizes(), device, dtype)
    for slot, weights in enumerate(tasks.weights(n)):
        bank.write(slot, APL, weights)
    return bank


def run_case(args, backbone, model, bank, tasks, encoder, texts, n, b, dtype) -> list[dict]:
    device = args.device
    heads = {k: v.to(device, dtype) for k, v in stacked_heads(tasks.weights(1)).items()}
    workload = make_workload(texts, n, args.popularity, b * (args.windows + 1))
    windows = workload.windows(b)
    rows: dict[str, Forward] = {}
    for g in args.graphs:
        on = g == "on" and torch.device(device).type == "cuda"
        if g == "on" and not on:
            continue
        rows[f"ceiling graphs={g}"] = ceiling(backbone, heads, encoder, device, on)
        rows[f"ours graphs={g}"] = ours(model, bank, encoder, device, on, packed=not on)
        if not on:
            rows[f"ours graphs={g} unpacked"] = ours(model, bank, encoder, device, on, False)
    ops = {name: top_level_ops(forward, windows[0]) for name, forward in rows.items()}
    times = measure(rows, windows, device)
    out = []
    for name, t in times.items():
        base = times[name.replace("ours", "ceiling").removesuffix(" unpacked")]
        out.append(
            {
                "row": name,
                "tasks": n,
                "batch": b,
                "dtype": str(dtype).removeprefix("torch."),
                "seq_per_s": b / statistics.median(t),
                "x_ceiling": statistics.median([c / x for c, x in zip(base, t)]),
                "ops": ops[name],
                "notes": rows[name].notes,
            }
        )
    return out


def table(results: list[dict]) -> str:
    lines = [
        "| row | tasks | batch | dtype | seq/s | x ceiling (paired) | top-level aten ops |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['row']} | {r['tasks']} | {r['batch']} | {r['dtype']} | {r['seq_per_s']:.1f} "
            f"| {r['x_ceiling']:.3f} | {r['ops']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    base = bench_backbone(args.backbone)
    encoder = Encoder(load_tokenizer(base.path))
    texts, source = load_texts(Path(args.glue_dir))
    tasks = TaskSet(base, "apl")
    results = []
    for name in args.dtype:
        dtype = getattr(torch, name)
        backbone = copy.copy(base)
        backbone.model = copy.deepcopy(base.model).to(args.device, dtype)
        model = UniPELTModel(backbone).eval()
        for n in args.tasks:
            bank = bank_of(tasks, n, args.device, dtype)
            for b in args.batch:
                print(f"tasks {n}, batch {b}, {name}", file=sys.stderr, flush=True)
                results += run_case(args, backbone, model, bank, tasks, encoder, texts, n, b, dtype)
            del bank
    print(
        f"{base.name} ({base.dims}); {source}; device {args.device}; "
        f"{args.threads} thread(s); {args.windows} windows"
    )
    print(table(results))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        meta = {
            "device": args.device,
            "backbone": base.name,
            "dims": str(base.dims),
            "texts": source,
            "torch": torch.__version__,
        }
        args.json.write_text(json.dumps({"meta": meta, "rows": results}, indent=2))
    return results


if __name__ == "__main__":
    main()
