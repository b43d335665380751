"""Two stages: batch N+1 is prepared on the host while batch N runs its forward.

`prepare` (tokenise, pad into host tensors, plan) runs on the "prepare" thread; `forward`
(host-to-device copy, the forward, reading the results) runs on one of `workers` forward
threads (on CPU several batches can run side by side, each on its own intra-op threads:
`service/threads.py`). The handoff is bounded: at most `depth` batches wait prepared or
preparing while `workers` run their forwards; the next batch is not admitted before a place
frees.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

from service.threads import name_this_thread

B = TypeVar("B")  # what a batch is before `prepare`
P = TypeVar("P")  # a prepared batch
R = TypeVar("R")  # a batch's results


class Pipeline(Generic[B, P, R]):
    def __init__(
        self,
        prepare: Callable[[B], P],
        forward: Callable[[P], R],
        depth: int = 1,
        workers: int = 1,
    ) -> None:
        if depth < 1 or workers < 1:
            raise ValueError(f"depth and workers must be at least 1, got {depth}, {workers}")
        self.prepare, self.forward = prepare, forward
        self.workers = workers
        self._places = asyncio.Semaphore(workers + depth)  # forwards running, and behind them
        self._prepare = ThreadPoolExecutor(
            1, "prepare", initializer=name_this_thread, initargs=("up-prepare",)
        )
        self._forward = ThreadPoolExecutor(  # their intra-op workers inherit the name
            workers, "forward", initializer=name_this_thread, initargs=("up-forward",)
        )
        self.admitted = 0

    @property
    def idle(self) -> bool:
        """No batch is being prepared, waiting or running its forward."""
        return self.admitted == 0

    @property
    def worker_free(self) -> bool:
        """Fewer batches are admitted than there are forward threads (counting one being
        filled): a batch taken now would start its forward at once."""
        return self.admitted <= self.workers

    async def admit(self) -> None:
        """Wait for a place; each admit is followed by exactly one `run`, which frees it."""
        await self._places.acquire()
        self.admitted += 1

    async def run(self, batch: B) -> R:
        """Prepare `batch` on the prepare thread, then run its forward on a forward thread.
        Batches start their forwards in the order they were admitted (both pools are FIFO)."""
        loop = asyncio.get_running_loop()
        try:
            prepared = await loop.run_in_executor(self._prepare, self.prepare, batch)
            return await loop.run_in_executor(self._forward, self.forward, prepared)
        finally:
            self.admitted -= 1
            self._places.release()

    def shutdown(self) -> None:
        self._prepare.shutdown(wait=False, cancel_futures=True)
        self._forward.shutdown(wait=False, cancel_futures=True)
