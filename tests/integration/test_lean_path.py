"""The predict path: one tokenizer call per batch, and no thread hop for a resident task."""

from __future__ import annotations

import asyncio

import anyio.to_thread
import pytest
from fastapi.testclient import TestClient

from adapters.config import MethodConfig
from adapters.tokenization import load_tokenizer
from harness.tasks import artifact_bytes
from service.engine.inference.encode import BatchEncoder, TextRow
from service.errors import InputTooLongError
from service.main import create_app
from service.settings import Settings

pytestmark = [pytest.mark.service, pytest.mark.slow]


class CountingTokenizer:
    """The real MiniLM tokenizer, counting its calls."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer, self.calls, self.texts = tokenizer, 0, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        self.texts += len(args[0])
        return self.tokenizer(*args, **kwargs)


@pytest.fixture(scope="module")
def tokenizer(minilm):
    return load_tokenizer(minilm.path)


def test_a_batch_is_tokenised_in_one_call_per_kind(tokenizer):
    counting = CountingTokenizer(tokenizer)
    rows = [TextRow(f"text number {i}", None, 16, i) for i in range(5)]
    rows += [TextRow("a premise", "a hypothesis", 16, i) for i in range(3)]  # one text, 3 tasks
    rows.append(TextRow("word " * 40, None, 16, 7))  # over its limit
    out = BatchEncoder(counting, truncate=False).encode(rows)
    assert counting.calls == 2  # one for the single texts, one for the pairs
    assert counting.texts == 5 + 1 + 1  # each distinct input once
    for row, got in zip(rows[:-1], out):
        expected = tokenizer(*([row.text] if row.text_pair is None else [row.text, row.text_pair]))
        assert got == (expected["input_ids"], expected["token_type_ids"])
    assert isinstance(out[-1], InputTooLongError) and "input 7 has 42 tokens" in str(out[-1])
    truncated = BatchEncoder(tokenizer, truncate=True).encode(rows[-1:])[0]
    assert not isinstance(truncated, Exception) and len(truncated[0]) == 16


def test_a_resident_task_is_served_without_a_thread_hop(minilm, tmp_path, monkeypatch):
    settings = Settings(data_dir=tmp_path, batch_window_ms=1)
    with TestClient(create_app(settings, backbone=minilm)) as client:
        files = dict(
            zip(
                ("manifest", "weights"),
                artifact_bytes("lean", MethodConfig.preset("apl"), minilm, seed=4),
            )
        )
        assert client.put("/adapters", files=files).status_code == 201
        assert client.post("/v1/lean/predict", json={"inputs": "warm"}).status_code == 200
        hops = {"threadpool": 0, "to_thread": 0}
        anyio_run_sync, asyncio_to_thread = anyio.to_thread.run_sync, asyncio.to_thread

        async def counted_run_sync(*args, **kwargs):
            hops["threadpool"] += 1
            return await anyio_run_sync(*args, **kwargs)

        async def counted_to_thread(*args, **kwargs):
            hops["to_thread"] += 1
            return await asyncio_to_thread(*args, **kwargs)

        monkeypatch.setattr(anyio.to_thread, "run_sync", counted_run_sync)
        monkeypatch.setattr(asyncio, "to_thread", counted_to_thread)
        for i in range(10):
            r = client.post("/v1/lean/predict", json={"inputs": [f"text {i}", "another"]})
            assert r.status_code == 200, r.text
        assert hops == {"threadpool": 0, "to_thread": 0}  # only the batch's forward thread
