"""A blob corrupted inside Redis (written directly, as a disk fault or a stray client would) is
refused when the adapter is loaded: a 500 with a clear error kind and a log line, never a
prediction. A good upload afterwards serves again."""

from __future__ import annotations

import httpx
import pytest

from harness.reliability import AUTH, redis_store, task_artifact, upload_files

pytestmark = [pytest.mark.service, pytest.mark.slow]


def _flip_last_byte(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 0x01])


CORRUPTIONS = [  # (id, blob part, new bytes from old (None: delete the key), detail text)
    ("weights-garbage", "weights", lambda b: b"garbage", "fails its sha256 check"),
    ("weights-one-bit", "weights", _flip_last_byte, "fails its sha256 check"),
    ("weights-truncated", "weights", lambda b: b[: len(b) // 2], "fails its sha256 check"),
    ("weights-missing", "weights", None, "is missing"),
    ("manifest-swapped", "manifest", lambda b: b.replace(b"negative", b"positivx"), "sha256"),
    ("manifest-missing", "manifest", None, "is missing"),
]


@pytest.mark.parametrize(
    ("case", "part", "corrupt", "detail"), CORRUPTIONS, ids=[c[0] for c in CORRUPTIONS]
)
def test_corrupt_blob_is_refused_at_load_and_reported(
    service, redis_server, minilm, case, part, corrupt, detail
):
    task = f"corrupt-{case}"
    store = redis_store(redis_server.url)
    # Published by another writer: this replica never held it (an upload through this replica
    # would keep the validated adapter in its host tier and never read the blob again).
    version = store.publish(task, *task_artifact(minilm, task)).version
    key = store.keys.blob(task, version, part)
    if corrupt is None:
        store.client.delete(key)
    else:
        store.client.set(key, corrupt(store.client.get(key)))

    try:
        for _ in range(2):  # refused every time, not just on the first load
            r = httpx.post(f"{service.url}/v1/{task}/predict", json={"inputs": "x"})
            assert r.status_code == 500, r.text
            assert r.json()["error"] == "corrupt_adapter"
            assert detail in r.json()["detail"]
        assert f"corrupt_adapter: task '{task}' version {version}: {part} blob" in service.log()
        assert httpx.get(f"{service.url}/readyz").status_code == 200  # one bad blob: still ready

        files = upload_files(*task_artifact(minilm, task, 1))
        good = httpx.put(f"{service.url}/adapters", files=files, headers=AUTH)
        assert good.status_code == 201, good.text
        r = httpx.post(f"{service.url}/v1/{task}/predict", json={"inputs": "x"})
        assert r.status_code == 200 and r.json()["version"] == good.json()["version"], r.text
    finally:  # leave a sound store for the tests that check all of it
        store.delete_task(task)
