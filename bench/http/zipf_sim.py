"""Simulate the two tiers under Zipf traffic: hit shares per window, and at steady state.

A bank LRU of `--bank` slots and a host tier LRU of `--host` adapters that takes every store
load and every adapter the bank evicts (as most recent), after the scale benchmark's warm-up
(one request to each of the `--bank` most popular tasks, least popular first).

    python -m bench.http.zipf_sim --tasks 10000 --bank 1000 --host 4630
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import random
from collections import OrderedDict


class Tiers:
    def __init__(self, bank: int, host: int) -> None:
        self.bank_size, self.host_size = bank, host
        self.bank: OrderedDict[int, None] = OrderedDict()
        self.host: OrderedDict[int, None] = OrderedDict()

    def _keep(self, task: int) -> None:
        self.host[task] = None
        self.host.move_to_end(task)
        if len(self.host) > self.host_size:
            self.host.popitem(last=False)

    def request(self, task: int) -> str:
        if task in self.bank:
            self.bank.move_to_end(task)
            return "bank"
        source = "host" if task in self.host else "store"
        self._keep(task)
        if len(self.bank) >= self.bank_size:
            self._keep(self.bank.popitem(last=False)[0])
        self.bank[task] = None
        return source


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.http.zipf_sim", description=__doc__)
    p.add_argument("--tasks", type=int, default=10_000)
    p.add_argument("--bank", type=int, default=1000)
    p.add_argument("--host", type=int, default=4630)
    p.add_argument("--window", type=int, default=830, help="requests per reported window")
    p.add_argument("--windows", type=int, default=4)
    p.add_argument("--steady", type=int, default=300_000, help="requests before steady state")
    args = p.parse_args(argv)
    cdf = list(itertools.accumulate(1 / (k + 1) for k in range(args.tasks)))
    rng = random.Random(0)
    tiers = Tiers(args.bank, args.host)
    for task in range(args.bank - 1, -1, -1):
        tiers.request(task)

    def window(n: int) -> str:
        counts = {"bank": 0, "host": 0, "store": 0}
        for _ in range(n):
            counts[tiers.request(bisect.bisect_left(cdf, rng.random() * cdf[-1]))] += 1
        return ", ".join(f"{k} {v / n:.3f}" for k, v in counts.items())

    for i in range(args.windows):
        print(f"window {i} ({args.window} requests): {window(args.window)}")
    window(args.steady)
    print(f"after {args.steady:,} more requests (200,000 counted): {window(200_000)}")


if __name__ == "__main__":
    main()
