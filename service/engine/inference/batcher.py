"""Dynamic batching: collect rows for up to a few milliseconds or a full batch, then run it.

Policies: "mixed" takes rows first-come first-served whatever their task (one mixed-task
forward); "grouped" takes only rows of the oldest row's task. Each batch goes through a
two-thread pipeline (`pipeline.py`): the prepare thread tokenises it (one tokenizer call) and
builds its host inputs while the previous batch runs its forward on the forward thread, so the
event loop never blocks on the model or the tokenizer, and the forward thread never tokenises.
A full batch is taken as soon as a place in the pipeline frees; a partial one waits for its
window and for a forward thread to be free (as full a batch as the forwards would take).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from service.engine.inference.pipeline import Pipeline
from service.engine.inference.runner import Row, RowResult
from service.errors import QueueFullError, ShuttingDownError
from service.metrics import Metrics


@dataclass
class Pending:
    row: Row
    future: asyncio.Future
    enqueued: float = field(default_factory=time.perf_counter)


class DynamicBatcher:
    def __init__(
        self,
        prepare: Callable[[list[Row]], Any],
        forward: Callable[[Any], list[RowResult | Exception]],
        metrics: Metrics,
        max_batch_size: int,
        window_ms: float,
        policy: str,
        max_queue: int,
        forward_workers: int = 1,
    ) -> None:
        """`prepare(rows)` runs on the prepare thread, `forward(prepared)` on one of
        `forward_workers` forward threads."""
        self.forward = forward
        self.metrics = metrics
        self.max_batch_size = max_batch_size
        self.window_s = window_ms / 1000.0
        self.policy = policy
        self.max_queue = max_queue
        self._queue: deque[Pending] = deque()
        self._wakeup = asyncio.Event()
        self.pipeline: Pipeline[list[Row], Any, list[RowResult | Exception]] = Pipeline(
            prepare, self._forward_timed, workers=forward_workers
        )
        self._task: asyncio.Task | None = None
        self._running: set[asyncio.Task] = set()
        self._closing = False
        self.in_flight = 0

    @property
    def depth(self) -> int:
        return len(self._queue)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def submit(self, rows: list[Row]) -> list[RowResult]:
        """Queue rows (all or none) and wait for their results; a failed row fails the call."""
        if self._closing:
            raise ShuttingDownError("the service is shutting down")
        if len(self._queue) + len(rows) > self.max_queue:
            raise QueueFullError(f"queue is full ({self.max_queue} sequences waiting)")
        loop = asyncio.get_running_loop()
        pending = [Pending(row, loop.create_future()) for row in rows]
        self._queue.extend(pending)
        self.metrics.queue_depth.set(len(self._queue))
        self._wakeup.set()
        if len(pending) == 1:  # a single text: its future alone, no gathering future
            return [await pending[0].future]
        results = await asyncio.gather(*(p.future for p in pending), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return results  # type: ignore[return-value]

    async def drain_and_stop(self, timeout_s: float = 30.0) -> None:
        """Refuse new work, finish what is queued or running, then stop the worker."""
        self._closing = True
        deadline = time.monotonic() + timeout_s
        while (self._queue or self.in_flight) and time.monotonic() < deadline:
            self._wakeup.set()
            await asyncio.sleep(0.01)
        if self._task is not None:
            self._task.cancel()
        self.pipeline.shutdown()

    async def _loop(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                await self.pipeline.admit()
                await self._fill_window()
                batch = self._take_batch()
                self.in_flight += len(batch)  # before any await: a drain must see it
                task = asyncio.get_running_loop().create_task(self._run(batch))
                self._running.add(task)
                task.add_done_callback(self._running.discard)

    async def _fill_window(self) -> None:
        """Wait until the batch is full, or the oldest row has waited `window` and a forward
        thread would otherwise sit idle."""
        oldest = self._queue[0].enqueued
        while len(self._queue) < self.max_batch_size and not self._closing:
            remaining = oldest + self.window_s - time.perf_counter()
            if remaining <= 0 and self.pipeline.worker_free:
                return
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):  # then look again
                await asyncio.wait_for(self._wakeup.wait(), remaining if remaining > 0 else None)

    def _take_batch(self) -> list[Pending]:
        if self.policy == "mixed":
            n = min(self.max_batch_size, len(self._queue))
            return [self._queue.popleft() for _ in range(n)]
        task = self._queue[0].row.task
        batch: list[Pending] = []
        rest: deque[Pending] = deque()
        while self._queue:
            p = self._queue.popleft()
            (batch if p.row.task == task and len(batch) < self.max_batch_size else rest).append(p)
        self._queue = rest
        return batch

    async def _run(self, batch: list[Pending]) -> None:
        self.metrics.queue_depth.set(len(self._queue))
        now = time.perf_counter()
        for p in batch:
            self.metrics.queue_wait.observe(now - p.enqueued)
        self.metrics.batch_size.observe(len(batch))
        self.metrics.batch_tasks.observe(len({p.row.task for p in batch}))
        try:
            results = await self.pipeline.run([p.row for p in batch])
        except Exception as exc:  # the whole batch fails together, never silently
            for p in batch:
                if not p.future.done():
                    p.future.set_exception(exc)
            return
        finally:
            self.in_flight -= len(batch)
            self._wakeup.set()  # a partial batch may be waiting for the pipeline to empty
        for p, result in zip(batch, results):
            if p.future.done():
                continue
            if isinstance(result, Exception):
                p.future.set_exception(result)
            else:
                p.future.set_result(result)

    def _forward_timed(self, prepared: Any) -> list[RowResult | Exception]:
        """On the forward thread: copy, forward, read results, counting its CPU and wall time
        (the prepare thread's CPU counts as outside the forward)."""
        started, cpu = time.perf_counter(), time.thread_time()
        try:
            return self.forward(prepared)
        finally:
            self.metrics.forward_cpu.inc(time.thread_time() - cpu)
            self.metrics.forward_duration.observe(time.perf_counter() - started)
