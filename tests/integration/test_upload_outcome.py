"""An upload's outcome can always be told: one answered 503 while Redis stalled at its commit
may still commit, so a retry with the same upload key answers that version instead of adding
another; a commit whose reply was lost is recognised as done, not reported as a conflict."""

from __future__ import annotations

import hashlib
import json
import time
import uuid

import pytest
import redis
from fastapi.testclient import TestClient

from adapters.config import MethodConfig
from harness.tasks import artifact_bytes
from service.main import create_app
from service.settings import Settings
from service.store import AdapterStore, RedisBlobStore, make_client
from service.store.errors import StoreUnavailableError, VersionConflictError

PAUSE_MS = 3000  # longer than the client's 2 s socket timeout


def artifact(task: str, seed: int = 0) -> tuple[bytes, bytes]:
    weights = hashlib.sha256(f"{task}-{seed}".encode()).digest() * 64
    manifest = {"task": task, "weights_sha256": hashlib.sha256(weights).hexdigest()}
    return json.dumps(manifest).encode(), weights


@pytest.fixture
def store(redis_server) -> AdapterStore:
    client = make_client(redis_server.url)
    return AdapterStore(client, RedisBlobStore(client), prefix=f"t{uuid.uuid4().hex[:8]}:")


def test_a_retry_with_the_same_key_answers_the_committed_version(store):
    first = store.publish("cola", *artifact("cola"), upload_key="k-1")
    again = store.publish("cola", *artifact("cola"), upload_key="k-1")
    assert (again.version, again.replayed) == (first.version, True) and not first.replayed
    assert [v.version for v in store.versions("cola")] == [first.version]
    other = store.publish("cola", *artifact("cola"), upload_key="k-2")
    assert other.version == first.version + 1  # another key is another upload


def test_a_key_reused_for_other_bytes_is_a_conflict(store):
    store.publish("cola", *artifact("cola", 0), upload_key="k-1")
    with pytest.raises(VersionConflictError, match="upload key"):
        store.publish("cola", *artifact("cola", 1), upload_key="k-1")
    assert len(store.versions("cola")) == 1


class PauseAfterLastBlob:
    """The real blob store, except that right after the weights blob (the last write before
    the commit) it pauses all writes in Redis for PAUSE_MS: the commit's EXEC then waits
    inside Redis past the client's socket timeout."""

    def __init__(self, inner: RedisBlobStore, url: str) -> None:
        self.inner, self.admin = inner, redis.Redis.from_url(url)

    def put(self, key: str, data: bytes) -> None:
        self.inner.put(key, data)
        if key.endswith(":weights"):
            self.admin.execute_command("CLIENT", "PAUSE", PAUSE_MS, "WRITE")

    def get(self, key: str) -> bytes | None:
        return self.inner.get(key)

    def delete(self, key: str) -> None:
        self.inner.delete(key)


def test_a_503_at_the_commit_is_settled_by_a_retry_with_the_same_key(store, redis_server):
    """The commit's EXEC waits in paused Redis, the client times out (a 503), Redis resumes.
    Whether or not that EXEC ran, the retry with the same key ends with exactly one version,
    and says whether it is the earlier one."""
    real = store.blobs
    store.blobs = PauseAfterLastBlob(real, redis_server.url)  # type: ignore[assignment]
    try:
        with pytest.raises(StoreUnavailableError):
            store.publish("cola", *artifact("cola"), upload_key="k-503")  # the client gives up
        time.sleep(PAUSE_MS / 1000)  # Redis resumes
    finally:
        store.blobs = real
        redis.Redis.from_url(redis_server.url).execute_command("CLIENT", "UNPAUSE")
    before = [v.version for v in store.versions("cola")] if store.tasks() else []
    print("committed by the upload answered 503:", before)
    retry = store.publish("cola", *artifact("cola"), upload_key="k-503")
    assert [v.version for v in store.versions("cola")] == [retry.version]
    assert retry.replayed == (before == [retry.version])


def test_a_commit_whose_reply_was_lost_is_not_a_conflict(store):
    """redis-py retries a transaction whose connection dropped by running it again; when the
    EXEC had run, the pending marker is gone. That is this upload's own commit, not a lost
    race: the retry answers the committed version (with or without an upload key)."""
    manifest, weights = artifact("cola")
    info, stamp = store._prepare("cola", manifest, weights)
    first = store._commit(info, stamp, make_live=True, upload_key=None)
    rerun = store._commit(info, stamp, make_live=True, upload_key=None)
    assert (rerun.version, rerun.replayed, rerun.live) == (first.version, True, True)


def test_over_http_a_retried_upload_with_its_key_is_answered_once(minilm, tmp_path):
    def put(blobs: tuple[bytes, bytes], key: str):
        files = {"manifest": ("manifest.json", blobs[0]), "weights": ("w", blobs[1])}
        return client.put("/adapters", files=files, headers={"Idempotency-Key": key})

    lora = MethodConfig.preset("l", lora_r=4)
    first_bytes = artifact_bytes("keyed", lora, minilm, seed=1)
    with TestClient(create_app(Settings(data_dir=tmp_path), backbone=minilm)) as client:
        first = put(first_bytes, "upload-1")
        again = put(first_bytes, "upload-1")
        assert (first.status_code, first.json()["replayed"]) == (201, False), first.text
        assert (again.status_code, again.json()["replayed"]) == (200, True), again.text
        assert again.json()["version"] == first.json()["version"]
        assert len(client.get("/adapters/keyed").json()["versions"]) == 1
        other = put(artifact_bytes("keyed", lora, minilm, seed=2), "upload-1")
        assert other.status_code == 409 and "upload key" in other.json()["detail"]
        assert put(first_bytes, "not a key").status_code == 422
        assert put(first_bytes, "upload-2").json()["version"] == first.json()["version"] + 1
