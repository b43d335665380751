"""Fault loops against the real service and its Redis, all on this machine, bounded in count:

    python -m bench.http.faults --kills 20 --outages 2 --drains 3 --json faults.json

- kills: SIGKILL right after a random step of an upload's publish sequence, then check the
  store (no half-published version, acknowledged uploads durable, orphans collectable) and
  that a fresh process serves the live version;
- outages: Redis frozen (SIGSTOP) then stopped (SHUTDOWN SAVE) under predictions, probing
  every kind of request, then recovery without a service restart;
- drains: SIGTERM while predictions are queued; every one must complete with 200.

Prints a JSON summary; exits 1 when any scenario found a problem.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from collections import Counter
from pathlib import Path

from harness.faults import (
    PUBLISH_STEPS,
    drain_on_sigterm,
    drain_problems,
    half_version_problems,
    kill_mid_upload,
    make_resident,
    outage_problems,
    recovery_problems,
    run_outage,
)
from harness.reliability import RedisHolder, ServiceSlot


def kills(slot, redis, backbone, count: int, rng: random.Random) -> dict:
    steps: Counter[str] = Counter()
    outcomes: Counter[str] = Counter()
    problems = []
    for i in range(count):
        step = rng.choice(PUBLISH_STEPS)
        task = f"kill-{i % 3}"  # some tasks get several versions, some a first one
        figures = kill_mid_upload(slot, redis, backbone, task, step, seed=i)
        found = half_version_problems(figures, slot, redis, task)
        steps[" ".join(step).strip()] += 1
        published = figures["after"] != figures["before"]
        outcomes["published" if published else "not published"] += 1
        outcomes["orphan blobs collected"] += len(figures["orphans"])
        problems += [f"kill {i} after {step}: {p}" for p in found]
        print(f"kill {i} after {step}: {found or 'ok'}", file=sys.stderr, flush=True)
    return {"kills": count, "steps": dict(steps), "outcomes": dict(outcomes), "problems": problems}


def outages(slot, redis, backbone, count: int) -> dict:
    url = slot.get().url
    make_resident(url, backbone, "outage-hot")
    kinds = {"frozen": (redis.freeze, redis.thaw), "stopped": (redis.halt, redis.start)}
    summary: dict = {"problems": []}
    for i in range(count):
        for kind, (outage, restore) in kinds.items():
            try:
                figures = run_outage(
                    url,
                    redis.url,
                    backbone,
                    "outage-hot",
                    f"outage-cold-{kind}-{i}",
                    outage,
                    restore,
                    clients=4,
                )
            finally:
                redis.thaw()
                if not redis.server.running:
                    redis.start()
            latencies = figures["hot_during_outage_s"]
            entry = summary.setdefault(kind, {"served_during_outage": 0, "max_s": 0.0})
            entry["served_during_outage"] += len(latencies)
            entry["max_s"] = round(max([entry["max_s"], *latencies]), 2)
            entry["slowest_probe_s"] = round(max(t for _, t, _ in figures["down"].values()), 2)
            found = outage_problems(figures) + recovery_problems(figures)
            summary["problems"] += [f"{kind} {i}: {p}" for p in found]
    return summary


def drains(slot, backbone, count: int) -> dict:
    in_flight, problems = [], []
    for i in range(count):
        figures = drain_on_sigterm(slot.get(), backbone, "drain")
        in_flight.append(figures["pending_at_signal"])
        problems += [f"drain {i}: {p}" for p in drain_problems(figures)]
    return {"drains": count, "requests_in_flight_at_sigterm": in_flight, "problems": problems}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--outages", type=int, default=2)
    parser.add_argument("--drains", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="also write the summary here")
    args = parser.parse_args(argv)
    from adapters.backbone import load_backbone

    backbone = load_backbone()
    summary: dict = {}
    with tempfile.TemporaryDirectory(prefix="unipelt-faults-") as tmp:
        redis = RedisHolder(Path(tmp) / "redis")
        slot = ServiceSlot(Path(tmp) / "service", redis)
        try:
            summary["outages"] = outages(slot, redis, backbone, min(args.outages, 20))
            summary["kills"] = kills(
                slot, redis, backbone, min(args.kills, 200), random.Random(args.seed)
            )
            summary["drains"] = drains(slot, backbone, min(args.drains, 20))
        finally:
            slot.stop()
            redis.stop()
        summary["service_starts"] = slot.starts
    text = json.dumps(summary, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 1 if any(part["problems"] for part in summary.values() if isinstance(part, dict)) else 0


if __name__ == "__main__":
    sys.exit(main())
