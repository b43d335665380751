"""The batcher over the real runner (packaged MiniLM, its real tokenizer, random adapters):
tokenisation never runs on the forward thread, results equal the one-thread path exactly,
and an over-long input fails only its own request."""

from __future__ import annotations

import asyncio
import threading

import pytest
import torch

from adapters.artifact import parse_artifact
from adapters.bank import BankSizes, TaskBank
from adapters.config import MethodConfig
from adapters.model import UniPELTModel
from adapters.slot_image import prepare_image
from adapters.tokenization import load_tokenizer
from harness.tasks import artifact_bytes
from service.engine.inference.batcher import DynamicBatcher
from service.engine.inference.encode import BatchEncoder
from service.engine.inference.runner import BatchRunner, Prepared, Row, RowResult
from service.engine.lifecycle.pool import AdapterPool, Resident
from service.errors import InputTooLongError
from service.metrics import Metrics

TEXTS = ["a quiet, lovely film", "dull", "the plot never lands", "great cast", "so-so", "wow"]


class RecordingTokenizer:
    """The real tokenizer, noting which thread calls it."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer, self.threads = tokenizer, set()

    def __call__(self, *args, **kwargs):
        self.threads.add(threading.get_ident())
        return self.tokenizer(*args, **kwargs)


@pytest.fixture(scope="module")
def served(minilm) -> tuple[BatchRunner, list[Resident]]:
    bank = TaskBank.allocate(2, minilm.dims, BankSizes(), lazy=True)
    pool = AdapterPool(bank)
    residents = []
    for n, cfg in enumerate([MethodConfig.preset("apl"), MethodConfig.preset("l", lora_r=4)]):
        artifact = parse_artifact(*artifact_bytes(f"t{n}", cfg, minilm, seed=n), minilm)
        image = prepare_image(bank, artifact.config, artifact.weights, "cpu")
        residents.append(pool.insert((f"t{n}", 1), artifact.manifest, image))
    tokenizer = RecordingTokenizer(load_tokenizer(minilm.path))
    model = UniPELTModel(minilm).eval()
    encoder = BatchEncoder(tokenizer, truncate=False)
    return BatchRunner(model, bank, encoder, 0, torch.device("cpu")), residents


def requests(residents: list[Resident]) -> list[list[Row]]:
    """Eight requests of 1-3 rows over both tasks, one with gates, and one over-long input."""
    out = [
        [
            Row(TEXTS[(i + j) % len(TEXTS)], None, 64, j, r.key[0], r, want_gates=i == 0)
            for j in range(1 + i % 3)
        ]
        for i, r in ((i, residents[i % 2]) for i in range(8))
    ]
    out.insert(3, [Row(" ".join(["word"] * 40), None, 8, 0, "t0", residents[0])])
    return out


def test_tokenisation_never_runs_on_the_forward_thread(served):
    runner, residents = served
    tokenizer: RecordingTokenizer = runner.encoder.tokenizer
    tokenizer.threads.clear()
    forward_threads: set[int] = set()
    batches: list[list[Row]] = []
    outputs: list[list[RowResult | Exception]] = []

    def prepare(rows: list[Row]) -> Prepared:
        batches.append(rows)
        return runner.prepare(rows)

    def forward(prepared: Prepared) -> list[RowResult | Exception]:
        forward_threads.add(threading.get_ident())
        outputs.append(runner.execute(prepared))
        return outputs[-1]

    async def main() -> list:
        batcher = DynamicBatcher(prepare, forward, Metrics(), 4, 20.0, "mixed", max_queue=100)
        batcher.start()
        calls = [batcher.submit(rows) for rows in requests(residents)]
        out = await asyncio.gather(*calls, return_exceptions=True)
        await batcher.drain_and_stop()
        return out

    got = asyncio.run(main())
    assert len(batches) >= 3 and tokenizer.threads and forward_threads
    assert tokenizer.threads.isdisjoint(forward_threads)
    assert threading.get_ident() not in tokenizer.threads | forward_threads
    # Only the over-long input's request fails; the others have every row, gates where asked.
    assert [type(r).__name__ for r in got].count("InputTooLongError") == 1
    assert isinstance(got[3], InputTooLongError)
    assert [len(r) for r in got if isinstance(r, list)] == [1, 2, 3, 1, 2, 3, 1, 2]
    assert got[0][0].gates is not None and got[1][0].gates is None
    # The same batches run on one thread give the very same results.
    tokenizer.threads.clear()
    for rows, out in zip(batches, outputs, strict=True):
        assert _comparable(runner.run(rows)) == _comparable(out)
    assert tokenizer.threads == {threading.get_ident()}


def _comparable(results: list[RowResult | Exception]) -> list:
    return [repr(r) if isinstance(r, Exception) else r for r in results]
