"""`python -m bench.gpu_summary KIND FILE`: one line from a GPU check step's JSON."""

from __future__ import annotations

import json
import sys


def forward(data: dict) -> str:
    rows = data["rows"]
    best = [r for r in rows if r["row"].startswith("ours") and "unpacked" not in r["row"]]
    most = max(r["tasks"] for r in rows)
    low = min(r["tasks"] for r in rows)
    parts = []
    for r in best:
        if r["tasks"] != most:
            continue
        flat = [x for x in best if x["tasks"] == low and x["row"] == r["row"]]
        flat = [x for x in flat if x["batch"] == r["batch"] and x["dtype"] == r["dtype"]]
        drift = r["seq_per_s"] / flat[0]["seq_per_s"] if flat else float("nan")
        parts.append(
            f"{r['row'].removeprefix('ours ')} b{r['batch']} {r['dtype']}: "
            f"{r['x_ceiling']:.2f}x ceiling, {r['seq_per_s']:.0f} seq/s, "
            f"{drift:.2f} of {low}-task"
        )
    return f"{data['meta']['backbone']} at {most} tasks: " + "; ".join(parts)


def train(data: dict) -> str:
    rows = {(r["method"], r["adamw"]): r["s_per_step_wall"] for r in data["rows"]}
    parts = [f"{m}/{a} {s * 1000:.1f} ms/step" for (m, a), s in rows.items()]
    apl, ft = rows.get(("apl", "sliced")), rows.get(("ft", "sliced"))
    ratio = f"; apl/ft {apl / ft:.2f}" if apl and ft else ""
    return ", ".join(parts) + ratio + f"; bit-identical {data['bit_identical']}"


def tiers(data: dict) -> str:
    names = ("host_tier_copy", "host_tier_hit_via_resolver", "store_load")
    return (
        "; ".join(
            f"{n} p50 {data[n]['p50_ms']:.3f} / p99 {data[n]['p99_ms']:.3f} ms" for n in names
        )
        + f" (pinned {data['pinned']}, {data['image_bytes'] / 2**20:.2f} MiB)"
    )


KINDS = {"forward": forward, "train": train, "tiers": tiers}

if __name__ == "__main__":
    kind, path = sys.argv[1], sys.argv[2]
    with open(path) as f:
        print(KINDS[kind](json.load(f)))
