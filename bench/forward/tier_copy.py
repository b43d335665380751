"""`python -m bench.forward.tier_copy --device cuda`: an adapter's way into a device bank.

Three figures, each p50/p99 over every load, with a device sync inside the timed span:
- host-tier copy: `write_image` of a prepared image in pinned host memory into a bank slot
  (the copy a bank miss that hits the host tier makes);
- host-tier hit through the resolver: `AdapterResolver.acquire` on a bank miss that the host
  tier serves (the copy plus the pool's bookkeeping);
- store load: `acquire` on a miss in both tiers (Redis fetch, checksum, validation, fusing,
  slot write), against the embedded redis-server on a unix socket.
The bank has fewer slots than there are tasks, so every acquire misses the bank.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch

from adapters.bank import BankSizes, TaskBank
from adapters.slot_image import prepare_image, write_image
from bench.backbones import bench_backbone
from bench.tasks import TaskSet
from bench.timing import percentile
from service.engine.lifecycle.routing import Target
from service.engine.lifecycle.tiers import build_tiers
from service.metrics import Metrics
from service.store.adapter_store import AdapterStore
from service.store.blobs import RedisBlobStore
from service.store.embedded import start_embedded_redis
from service.store.factory import make_client


def summary(seconds: list[float]) -> dict[str, float]:
    return {
        "n": len(seconds),
        "p50_ms": percentile(seconds, 50) * 1000,
        "p99_ms": percentile(seconds, 99) * 1000,
        "max_ms": max(seconds) * 1000,
    }


def measure(tasks: TaskSet, n_tasks: int, passes: int, slots: int, device, url: str) -> dict:
    dev = torch.device(device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else lambda: None
    backbone = tasks.backbone
    client = make_client(url)
    store = AdapterStore(client, RedisBlobStore(client))
    names = [f"copy-{i}" for i in range(n_tasks)]
    for i, name in enumerate(names):
        store.publish(name, *tasks.artifact(i, name))
    bank = TaskBank.allocate(slots, backbone.dims, BankSizes(), dev)
    tiers = build_tiers(store, backbone, Metrics(), bank, 1 << 34, pin_host=dev.type == "cuda")
    store_loads: list[float] = []
    host_hits: list[float] = []
    for p in range(passes + 1):  # pass 0 fills the host tier from the store
        for name in names:
            start = time.perf_counter()
            resident = tiers.router.acquire(Target(name))
            sync()
            (store_loads if p == 0 else host_hits).append(time.perf_counter() - start)
            tiers.router.release(resident)
    assert len(tiers.host) == n_tasks, "every task should be in the host tier"
    images = [e.image for e in (tiers.host.get(k) for k in tiers.host.recent()) if e]
    copies: list[float] = []
    for _ in range(passes):
        for i, image in enumerate(images):
            start = time.perf_counter()
            write_image(bank, i % slots, image)
            sync()
            copies.append(time.perf_counter() - start)
    image = prepare_image(bank, tasks.cfg, tasks.weights(1)[0], "cpu")
    client.close()
    return {
        "device": str(dev),
        "backbone": backbone.name,
        "tasks": n_tasks,
        "bank_slots": slots,
        "image_bytes": image.nbytes,
        "pinned": images[0].tensors[next(iter(images[0].tensors))].is_pinned(),
        "host_tier_copy": summary(copies),
        "host_tier_hit_via_resolver": summary(host_hits),
        "store_load": summary(store_loads),
    }


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--backbone", default=os.environ.get("UNIPELT_BACKBONE"))
    p.add_argument("--tasks", type=int, default=32)
    p.add_argument("--passes", type=int, default=4)
    p.add_argument("--slots", type=int, default=4)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    tasks = TaskSet(bench_backbone(args.backbone), "apl")
    with tempfile.TemporaryDirectory(prefix="bench-copy-") as tmp:
        server = start_embedded_redis(Path(tmp) / "redis")
        try:
            result = measure(tasks, args.tasks, args.passes, args.slots, args.device, server.url)
        finally:
            server.stop()
    for name in ("host_tier_copy", "host_tier_hit_via_resolver", "store_load"):
        r = result[name]
        print(
            f"{name}: p50 {r['p50_ms']:.3f} ms, p99 {r['p99_ms']:.3f} ms, "
            f"max {r['max_ms']:.3f} ms over {r['n']}"
        )
    print(f"image {result['image_bytes'] / 2**20:.2f} MiB, pinned {result['pinned']}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
