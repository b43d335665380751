"""Two stages, two threads: batch N+1 is prepared on the host while batch N runs its forward.

`prepare` (tokenise, pad into host tensors, plan) runs on the "prepare" thread; `forward`
(host-to-device copy, the forward, reading the results) runs on the "forward" thread. The
handoff between them is bounded: at most `depth` batches wait prepared or preparing while one
runs its forward; the next batch is not admitted before a place frees.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

B = TypeVar("B")  # what a batch is before `prepare`
P = TypeVar("P")  # a prepared batch
R = TypeVar("R")  # a batch's results


class Pipeline(Generic[B, P, R]):
    def __init__(
        self, prepare: Callable[[B], P], forward: Callable[[P], R], depth: int = 1
    ) -> None:
        if depth < 1:
            raise ValueError(f"depth must be at least 1, got {depth}")
        self.prepare, self.forward = prepare, forward
        self._places = asyncio.Semaphore(1 + depth)  # one in the forward, `depth` behind it
        self._prepare = ThreadPoolExecutor(max_workers=1, thread_name_prefix="prepare")
        self._forward = ThreadPoolExecutor(max_workers=1, thread_name_prefix="forward")
        self.admitted = 0

    @property
    def idle(self) -> bool:
        """No batch is being prepared, waiting or running its forward."""
        return self.admitted == 0

    async def admit(self) -> None:
        """Wait for a place; each admit is followed by exactly one `run`, which frees it."""
        await self._places.acquire()
        self.admitted += 1

    async def run(self, batch: B) -> R:
        """Prepare `batch` on the prepare thread, then run its forward on the forward thread.
        Batches reach the forward in the order they were admitted (both threads are FIFO)."""
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
