"""A request cancelled while its adapter loads off the event loop (a client that hangs up)
leaves no pin behind: the load's thread cannot be stopped, so what it pins is released when it
finishes, and the slot can be evicted again."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from fastapi.testclient import TestClient

from adapters.config import MethodConfig
from harness.tasks import artifact_bytes
from service.engine.engine import TextInput
from service.main import create_app
from service.settings import Settings

pytestmark = [pytest.mark.service, pytest.mark.slow]


def test_a_request_cancelled_during_its_load_releases_the_pin(minilm, tmp_path):
    settings = Settings(data_dir=tmp_path, batch_window_ms=2)
    with TestClient(create_app(settings, backbone=minilm)) as client:
        manifest, weights = artifact_bytes("hangup", MethodConfig.preset("apl"), minilm, ["a", "b"])
        files = {
            "manifest": ("manifest.json", manifest),
            "weights": ("adapter.safetensors", weights),
        }
        assert client.put("/adapters", files=files).status_code == 201
        engine = client.app.state.engine  # type: ignore[attr-defined]
        router = engine.router
        entered, proceed = threading.Event(), threading.Event()
        acquire = router.acquire

        def slow_acquire(*args):
            entered.set()
            assert proceed.wait(10), "the test never let the load finish"
            return acquire(*args)

        async def hang_up_during_the_load() -> None:
            request = asyncio.ensure_future(
                engine.predict("hangup", [TextInput("fine")], want_gates=False)
            )
            while not entered.is_set():  # the load's thread has started
                await asyncio.sleep(0.005)
            request.cancel()
            with pytest.raises(asyncio.CancelledError):
                await request

        router.acquire_cached, router.acquire = (lambda route: None), slow_acquire
        try:
            client.portal.call(hang_up_during_the_load)  # type: ignore[union-attr]
            proceed.set()  # now the abandoned load pins its adapter
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                refs = dict(engine.pool.residents())
                if ("hangup", 1) in refs and refs[("hangup", 1)] == 0:
                    break
                time.sleep(0.01)
            assert dict(engine.pool.residents()).get(("hangup", 1)) == 0
        finally:
            del router.acquire_cached, router.acquire  # back to the class's methods
        r = client.post("/v1/hangup/predict", json={"inputs": "fine"})
        assert r.status_code == 200 and r.json()["version"] == 1
