"""A bounded worker pool runs at most `workers` calls at once; the rest wait their turn."""

from __future__ import annotations

import asyncio
import threading

from service.engine.workers import WorkerPool


def test_at_most_workers_calls_run_at_once():
    pool = WorkerPool("test", workers=2)
    running, peak, lock = 0, 0, threading.Lock()
    release = threading.Event()

    def job() -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        release.wait(10)
        with lock:
            running -= 1

    async def main() -> None:
        calls = [asyncio.ensure_future(pool.run(job)) for _ in range(6)]
        for _ in range(200):  # until two are running (bounded)
            if running == 2:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)  # time for a third to start, if the pool let it
        assert running == 2  # two run, four wait in the pool's queue
        release.set()
        await asyncio.gather(*calls)

    asyncio.run(main())
    pool.shutdown()
    assert peak == 2
