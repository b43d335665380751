"""In-process measurements next to the HTTP windows: the engine's own batch path (the
baseline for the HTTP ratio), and exact cold-load and host-tier timings per load."""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass

import torch

from adapters.backbone import Backbone
from adapters.bank import BankSizes, TaskBank
from adapters.model import UniPELTModel
from adapters.tokenization import load_tokenizer
from bench.http.scale_seed import task_name
from bench.timing import percentile
from service.engine.inference.encode import BatchEncoder
from service.engine.inference.runner import BatchRunner, Row
from service.engine.lifecycle.tiers import build_tiers
from service.metrics import Metrics
from service.store.adapter_store import AdapterStore


@dataclass
class EngineWindow:
    seq_per_s: float
    cpu_s_per_seq: float


class InProcessEngine:
    """The service's batch path without HTTP: `BatchRunner.run` (tokenise + mixed forward +
    postprocess) on batches of `batch` one-text rows over the first `tasks` stored tasks."""

    def __init__(
        self, backbone: Backbone, store: AdapterStore, tasks: int, batch: int, texts: list[str]
    ) -> None:
        tokenizer = load_tokenizer(backbone.path)
        bank = TaskBank.allocate(tasks, backbone.dims, BankSizes(), lazy=True)
        tiers = build_tiers(store, backbone, Metrics(), bank, host_bytes=0)
        self.residents = [tiers.loader.acquire((task_name(i), 1)) for i in range(tasks)]
        model = UniPELTModel(backbone).eval()
        encoder = BatchEncoder(tokenizer, truncate=True)
        self.runner = BatchRunner(
            model, bank, encoder, tokenizer.pad_token_id or 0, torch.device("cpu")
        )
        self.batch, self.texts = batch, texts
        self.tokenizing = threading.Lock()

    def window(self, seconds: float, workers: int = 1, threads: int | None = None) -> EngineWindow:
        """Batches back to back for `seconds` on `workers` threads side by side, each with
        `threads` intra-op threads (default: the process's setting)."""
        threads = threads or torch.get_num_threads()
        counts = [0] * workers
        started, cpu0 = time.perf_counter(), time.process_time()

        def work(i: int) -> None:
            torch.set_num_threads(threads)
            rng = random.Random(i)
            while time.perf_counter() - started < seconds:
                with self.tokenizing:  # one tokenizer, one thread at a time (as the server)
                    prepared = self.runner.prepare(self.batch_rows(rng))
                counts[i] += len(self.runner.execute(prepared))

        pool = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        elapsed, done = time.perf_counter() - started, sum(counts)
        return EngineWindow(done / elapsed, (time.process_time() - cpu0) / done)

    def batch_rows(self, rng: random.Random) -> list[Row]:
        return [
            Row(
                text=rng.choice(self.texts),
                text_pair=None,
                max_length=128,
                index=0,
                task=r.key[0],
                resident=r,
            )
            for r in rng.choices(self.residents, k=self.batch)
        ]


def load_timings(store: AdapterStore, backbone: Backbone, n: int, first: int = 0) -> dict:
    """Exact per-load times over `n` distinct tasks: each a store load (fetch, checksum, parse,
    validate, slot write) on a cold pass, then each a host-tier copy into a slot."""
    bank = TaskBank.allocate(8, backbone.dims, BankSizes(), lazy=True)
    loader = build_tiers(store, backbone, Metrics(), bank, host_bytes=8 * 2**30).loader
    times: dict[str, list[float]] = {"store": [], "host": []}
    for source in ("store", "host"):
        for i in range(first, first + n):
            started = time.perf_counter()
            loader.pool.release(loader.acquire((task_name(i), 1)))
            times[source].append(time.perf_counter() - started)
    return {
        f"{source}_p{q}_ms": percentile(values, q) * 1000
        for source, values in times.items()
        for q in (50, 99)
    }
