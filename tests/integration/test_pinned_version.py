"""One answer, one version: a hot swap to a version with a different label count between the
pin and the forward never mixes the two (single-task, fan-out and v2 inference).

The swap is made right after the engine pins the task's adapter (the step where the old v2
route read the manifest), so the forward that follows runs while the new version is live.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from fastapi.testclient import TestClient

from adapters.config import MethodConfig
from harness.tasks import artifact_bytes
from service.main import create_app
from service.settings import Settings

pytestmark = [pytest.mark.service, pytest.mark.slow]
OLD_LABELS = ["negative", "positive"]
NEW_LABELS = ["sport", "politics", "science"]
TEXTS = ["a gripping, beautifully acted film", "dull"]


@pytest.fixture(scope="module")
def client(minilm, tmp_path_factory):
    settings = Settings(data_dir=tmp_path_factory.mktemp("pinned"), batch_window_ms=2)
    with TestClient(create_app(settings, backbone=minilm)) as c:
        yield c


def upload(client: TestClient, manifest: bytes, weights: bytes) -> None:
    files = {"manifest": ("manifest.json", manifest), "weights": ("adapter.safetensors", weights)}
    assert client.put("/adapters", files=files).status_code == 201


@contextmanager
def swap_after_first_pin(client: TestClient, task: str, new: tuple[bytes, bytes]) -> Iterator[None]:
    """Inside the block: the first time `task`'s adapter is pinned, `new` is published (live at
    once) right after the pin."""
    engine = client.app.state.engine  # type: ignore[attr-defined]
    router, done = engine.router, []

    def wrap(acquire: Callable) -> Callable:
        def pin_then_swap(*args):
            resident = acquire(*args)
            if resident is not None and resident.key[0] == task and not done:
                done.append(True)
                engine.adapters._upload(*new)  # validated, published and applied here
            return resident

        return pin_then_swap

    original = router.acquire_cached, router.acquire
    router.acquire_cached, router.acquire = wrap(original[0]), wrap(original[1])
    try:
        yield
    finally:
        router.acquire_cached, router.acquire = original
    assert done, "the swap never ran"


def v1_scores(body: dict) -> list[dict[str, float]]:
    return [p["scores"] for p in body["predictions"]]


def v2_scores(body: dict) -> list[dict[str, float]]:
    outputs = {o["name"]: o for o in body["outputs"]}
    n, labels = outputs["scores"]["shape"]
    assert len(outputs["scores"]["data"]) == n * labels  # shape and data of one version
    assert len(outputs["label"]["data"]) == n
    flat = outputs["scores"]["data"]
    names = OLD_LABELS if labels == len(OLD_LABELS) else NEW_LABELS
    return [dict(zip(names, flat[i * labels : (i + 1) * labels])) for i in range(n)]


def v1_predict(client: TestClient, task: str) -> tuple[int, list[dict[str, float]]]:
    r = client.post(f"/v1/{task}/predict", json={"inputs": TEXTS})
    assert r.status_code == 200, r.text
    return r.json()["version"], v1_scores(r.json())


def fanout(client: TestClient, task: str) -> tuple[int, list[dict[str, float]]]:
    r = client.post("/v1/predict", json={"tasks": [task], "inputs": TEXTS})
    assert r.status_code == 200, r.text
    (answer,) = r.json()["results"]
    return answer["version"], v1_scores(answer)


def v2_infer(client: TestClient, task: str) -> tuple[int, list[dict[str, float]]]:
    body = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [len(TEXTS)], "data": TEXTS}]}
    r = client.post(f"/v2/models/{task}/infer", json=body)
    assert r.status_code == 200, r.text
    return int(r.json()["model_version"]), v2_scores(r.json())


@pytest.mark.parametrize("ask", [v1_predict, fanout, v2_infer], ids=["v1", "fanout", "v2"])
def test_a_swap_between_pin_and_forward_answers_with_the_pinned_version(client, minilm, ask):
    task = f"swap-{ask.__name__.replace('_', '-')}"
    apl = MethodConfig.preset("apl")
    upload(client, *artifact_bytes(task, apl, minilm, OLD_LABELS, seed=1))
    version, before = ask(client, task)
    assert version == 1 and [list(s) for s in before] == [OLD_LABELS] * len(TEXTS)

    new = artifact_bytes(task, MethodConfig.preset("l"), minilm, NEW_LABELS, seed=2)
    with swap_after_first_pin(client, task, new):
        version, during = ask(client, task)
    assert version == 1  # the pinned version answered, with its own labels and scores
    for got, want in zip(during, before, strict=True):
        assert list(got) == OLD_LABELS
        assert got == pytest.approx(want, abs=1e-5)

    version, after = ask(client, task)  # the swap happened: the next call is version 2
    assert version == 2 and [list(s) for s in after] == [NEW_LABELS] * len(TEXTS)
