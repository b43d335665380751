"""Bounded thread pools for blocking work, one per kind, off the default executor.

Store calls (a Redis that stalls blocks each one for its socket timeout) and uploads (a
conversion and validation hold a whole artifact in memory) each get their own pool with a
fixed number of threads; further work waits in that pool's queue. So a stalled store never
delays a request the event loop can answer on its own (a resident adapter), and at most
`workers` uploads are converted and validated at once, which bounds their memory.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


class WorkerPool:
    def __init__(self, name: str, workers: int) -> None:
        self.name, self.workers = name, workers
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """`fn(*args, **kwargs)` on one of this pool's threads."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))

    def submit(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        """`fn(*args, **kwargs)` queued on this pool; the caller keeps the future (so work
        that outlives a cancelled request can still be cleaned up when it finishes)."""
        return self._pool.submit(fn, *args, **kwargs)

    def shutdown(self) -> None:
        """Queued work is dropped; running calls finish on their own (no wait)."""
        self._pool.shutdown(wait=False, cancel_futures=True)
