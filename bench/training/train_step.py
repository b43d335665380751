"""The training step with torch's AdamW against the sliced one, on real low-resource batches.

    python -m bench.training.train_step --data-dir /path/to/glue --task sst2 --k 100 \
        --methods apl,l,ft --steps 8 --rounds 3 --threads 1

Each round builds every method's learner afresh (same seed) and runs the same first `steps`
training batches of the run `unipelt train --task T --k K` would make, once per optimiser,
the two taken in alternating order; the first step of each is a warm-up. The table gives the
median round's seconds per step (wall and process CPU) and the optimiser's CPU seconds, and says
whether both gave the same losses and weights bit for bit (they must on the CPU). `--device cuda`
trains on the GPU (wall time after a device sync); `--json` writes the medians.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from dataclasses import dataclass, field

import torch

from adapters.backbone import Backbone
from adapters.config import MethodConfig
from adapters.tokenization import load_tokenizer
from adapters.training.batching import train_order
from adapters.training.defaults import TrainSettings
from adapters.training.learner import Learner
from adapters.training.optim import OptimiserFactory, make_optimiser, torch_adamw
from adapters.training.run import EncodedTask, encode_task
from adapters.training.tasks import glue_task_data
from adapters.training.trainer import Trainer
from bench.backbones import bench_backbone

ARMS: dict[str, OptimiserFactory] = {"torch": torch_adamw, "sliced": make_optimiser}


@dataclass
class Arm:
    wall: list[float] = field(default_factory=list)  # seconds per step, one per round
    cpu: list[float] = field(default_factory=list)
    optimiser: list[float] = field(default_factory=list)  # CPU seconds in optimiser.step
    losses: list[float] = field(default_factory=list)
    weights: list[torch.Tensor] = field(default_factory=list)


def run_arm(
    arm: Arm,
    factory: OptimiserFactory,
    method: str,
    backbone: Backbone,
    task: EncodedTask,
    batches: list[list[int]],
    settings: TrainSettings,
) -> None:
    torch.manual_seed(settings.seed)
    data = task.train
    learner = Learner(MethodConfig.preset(method), backbone, task.spec.num_labels)
    trainer = Trainer(learner, task.spec, settings, 100, factory)
    started, spent = [0.0], [0.0]
    trainer.optimiser.register_step_pre_hook(lambda *_: started.__setitem__(0, time.perf_counter()))
    trainer.optimiser.register_step_post_hook(
        lambda *_: spent.__setitem__(0, spent[0] + time.perf_counter() - started[0])
    )
    learner.train()
    losses = [trainer.step(data, batches[0], 0)]  # warm-up
    spent[0] = 0.0
    wall, cpu = time.perf_counter(), time.process_time()
    for step, index in enumerate(batches[1:], 1):
        losses.append(trainer.step(data, index, step))
    if learner.device.type == "cuda":
        torch.cuda.synchronize()
    n = len(batches) - 1
    arm.wall.append((time.perf_counter() - wall) / n)
    arm.cpu.append((time.process_time() - cpu) / n)
    arm.optimiser.append(spent[0] / n)
    arm.losses, arm.weights = losses, [p.detach().clone() for p in learner.trainable()]


def identical(a: Arm, b: Arm) -> bool:
    return a.losses == b.losses and all(torch.equal(x, y) for x, y in zip(a.weights, b.weights))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", default=os.environ.get("UNIPELT_GLUE_DIR"))
    p.add_argument("--task", default="sst2")
    p.add_argument("--k", type=int, default=100)
    p.add_argument("--methods", default="apl,l,ft")
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=TrainSettings().batch_size)
    p.add_argument("--backbone", default=os.environ.get("UNIPELT_BACKBONE"))
    p.add_argument("--json", default=None, help="write the medians here")
    args = p.parse_args()
    if not args.data_dir:
        p.error("give --data-dir (or UNIPELT_GLUE_DIR)")
    torch.set_num_threads(args.threads)
    backbone = bench_backbone(args.backbone)
    backbone.model.to(args.device)
    task = encode_task(
        load_tokenizer(backbone.path), glue_task_data(args.data_dir, args.task, args.k, 0, 0), 128
    )
    settings = TrainSettings(seed=0, batch_size=args.batch_size)
    order = torch.Generator().manual_seed(settings.seed)
    batches: list[list[int]] = []
    while len(batches) < args.steps + 1:
        batches += train_order(task.train, settings.batch_size, order, settings.group_by_length)
    batches = batches[: args.steps + 1]
    methods = args.methods.split(",")
    arms = {m: {name: Arm() for name in ARMS} for m in methods}
    for r in range(args.rounds):
        for m in methods:
            names = list(ARMS) if r % 2 == 0 else list(reversed(ARMS))
            for name in names:
                run_arm(arms[m][name], ARMS[name], m, backbone, task, batches, settings)
    med = statistics.median
    print(
        f"{args.task} K={args.k}, {args.steps} timed steps x {args.rounds} rounds, "
        f"{torch.get_num_threads()} thread(s), device {args.device}; medians over rounds\n"
    )
    print("| method | AdamW | s/step wall | s/step CPU | optimiser CPU s/step | CPU vs torch |")
    print("|---|---|---|---|---|---|")
    for m in methods:
        base = med(arms[m]["torch"].cpu)
        for name, arm in arms[m].items():
            print(
                f"| {m} | {name} | {med(arm.wall):.3f} | {med(arm.cpu):.3f} "
                f"| {med(arm.optimiser):.3f} | {med(arm.cpu) / base:.2f}x |"
            )
    same = {m: identical(arms[m]["torch"], arms[m]["sliced"]) for m in methods}
    print("\nlosses and weights bit-identical:", same)
    if args.json:
        rows = [
            {
                "method": m,
                "adamw": name,
                "s_per_step_wall": med(a.wall),
                "s_per_step_cpu": med(a.cpu),
            }
            for m in methods
            for name, a in arms[m].items()
        ]
        meta = {
            "device": args.device,
            "backbone": backbone.name,
            "steps": args.steps,
            "batch_size": args.batch_size,
        }
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "rows": rows, "bit_identical": same}, f, indent=2)


if __name__ == "__main__":
    main()
