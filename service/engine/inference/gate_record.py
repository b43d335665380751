"""A bounded record of the gates each task's inputs got on this replica, for the console's
"average gates" picture: per task, a running mean of every submodule's gate in every layer.

Gates are computed for requests that ask for them and for one request in `sample_every` of
each task (the forward computes them anyway for gated rows; returning them is a small copy).
The mean is over about the last `window` inputs: a plain mean of the first `window`, then each
new input weighs 1/window. Each version has its own record (a traffic split serves several at
once), so a new version starts fresh (its first request is sampled); at most `max_tasks` task
versions are kept, least recently updated dropped first.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

Gates = dict[str, list[float]]  # submodule -> one value per layer


@dataclass(frozen=True)
class GateAverages:
    """The mean gates of a task's version over its recent inputs (empty when none)."""

    task: str
    version: int
    inputs: int  # inputs recorded for this version (the mean covers the last `window`)
    window: int
    sample_every: int
    gates: Gates = field(default_factory=dict)


@dataclass
class _Entry:
    inputs: int = 0
    requests: int = 0  # requests seen, for sampling
    mean: Gates = field(default_factory=dict)


class GateRecord:
    def __init__(self, window: int = 256, sample_every: int = 8, max_tasks: int = 2048) -> None:
        if window < 1 or sample_every < 0 or max_tasks < 1:
            raise ValueError(f"bad gate record bounds {window=}, {sample_every=}, {max_tasks=}")
        self.window, self.sample_every, self.max_tasks = window, sample_every, max_tasks
        self._entries: OrderedDict[tuple[str, int], _Entry] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def due(self, task: str, version: int) -> bool:
        """Whether this request of `task` should compute its gates for the record (the first
        one of each version, then one in `sample_every`; never with sampling off)."""
        if self.sample_every == 0:
            return False
        with self._lock:
            entry = self._entry(task, version)
            entry.requests += 1
            return (entry.requests - 1) % self.sample_every == 0

    def add(self, task: str, version: int, rows: Sequence[Gates | None]) -> None:
        """Fold each row's gates into the task's mean (rows without gates are skipped)."""
        with self._lock:
            entry = self._entry(task, version)
            for gates in rows:
                if gates:
                    self._fold(entry, gates)

    def _fold(self, entry: _Entry, gates: Gates) -> None:
        if set(gates) != set(entry.mean) and entry.inputs:
            return  # another layout than this version's (cannot happen for one version)
        entry.inputs += 1
        weight = 1 / min(entry.inputs, self.window)
        for name, values in gates.items():
            mean = entry.mean.setdefault(name, [0.0] * len(values))
            for layer, value in enumerate(values):
                mean[layer] += (value - mean[layer]) * weight

    def averages(self, task: str, version: int) -> GateAverages:
        """The mean gates recorded for `task` at `version` (none when it has no record)."""
        with self._lock:
            entry = self._entries.get((task, version))
            if entry is None or entry.inputs == 0:
                return GateAverages(task, version, 0, self.window, self.sample_every)
            gates = {name: [round(v, 6) for v in mean] for name, mean in entry.mean.items()}
            return GateAverages(task, version, entry.inputs, self.window, self.sample_every, gates)

    def forget(self, task: str) -> None:
        """Drop every version's record of `task`."""
        with self._lock:
            for key in [k for k in self._entries if k[0] == task]:
                del self._entries[key]

    def _entry(self, task: str, version: int) -> _Entry:
        """The version's entry (a fresh one the first time)."""
        key = (task, version)
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry()
            while len(self._entries) > self.max_tasks:
                self._entries.popitem(last=False)
        self._entries.move_to_end(key)
        return entry
