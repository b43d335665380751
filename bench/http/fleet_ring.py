"""HAProxy's consistent-hash ring with bounded loads, for the fleet simulation.

Each replica owns `points` uniformly placed points on a 32-bit ring (HAProxy places 16 per
weight unit; the shipped config's `weight 100` gives 1,600). A task hashes to a point; HAProxy
takes the ring point closest to it, then, with `hash-balance-factor`, walks clockwise past every
replica that is not eligible (`chash_server_is_eligible`): with S requests in flight in the
backend and N equal-weight replicas, the request about to be sent makes T = ceil((S + 1) f /
100) slots, replica i (in configuration order) gets floor(T / N) plus its share of the
remainder (at least 1), and is eligible while it serves fewer than that.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RING = 2**32


@dataclass
class Ring:
    keys: np.ndarray  # (P,) sorted ring points
    owner: np.ndarray  # (P,) replica of each point
    replicas: int

    @classmethod
    def build(cls, replicas: int, points: int, rng: np.random.Generator) -> Ring:
        keys = rng.integers(0, RING, replicas * points, dtype=np.int64)
        owner = np.repeat(np.arange(replicas), points)
        order = np.argsort(keys, kind="stable")
        return cls(keys[order], owner[order], replicas)

    def start(self, hashes: np.ndarray) -> np.ndarray:
        """Index of the ring point closest to each hash (HAProxy's lookup, both directions)."""
        n = len(self.keys)
        nxt = np.searchsorted(self.keys, hashes) % n
        prev = (nxt - 1) % n
        dn = (self.keys[nxt] - hashes) % RING
        dp = (hashes - self.keys[prev]) % RING
        return np.where(dp <= dn, prev, nxt)


def slot_limits(in_flight: int, factor: int, replicas: int) -> list[int]:
    """Requests each replica may serve before the next one is sent elsewhere."""
    total = ((in_flight + 1) * factor + 99) // 100
    base, rem = divmod(total, replicas)
    return [max(1, base + (i + 1) * rem // replicas - i * rem // replicas) for i in range(replicas)]


class BoundedLoad:
    """Pick a replica for each request: the task's ring point, skipping full replicas."""

    def __init__(self, ring: Ring, factor: int) -> None:
        self.ring, self.factor = ring, factor
        self.owner = ring.owner.tolist()
        self.loads = [0] * ring.replicas
        self.in_flight = 0
        self._limits: dict[int, list[int]] = {}

    def pick(self, point: int) -> int:
        limits = self._limits.get(self.in_flight)
        if limits is None:
            limits = self._limits[self.in_flight] = slot_limits(
                self.in_flight, self.factor, self.ring.replicas
            )
        owner, loads, n = self.owner, self.loads, len(self.owner)
        for step in range(n):
            replica = owner[(point + step) % n]
            if loads[replica] < limits[replica]:
                return replica
        return owner[point]  # unreachable: the limits add up to more than the load

    def start(self, replica: int) -> None:
        self.loads[replica] += 1
        self.in_flight += 1

    def finish(self, replica: int) -> None:
        self.loads[replica] -= 1
        self.in_flight -= 1
