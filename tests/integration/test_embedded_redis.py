"""The embedded redis-server heals itself: a killed server is reaped and restarted (with every
acknowledged write, from its append-only file), it never outlives the process that started it,
and one left behind by a crashed owner does not block the next start on the same data."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from service.store.errors import StoreUnavailableError
from service.store.factory import connect

ROOT = Path(__file__).resolve().parents[2]


def artifact(task: str, seed: int = 0) -> tuple[bytes, bytes]:
    """(manifest, weights) as the store checks them: the task and the weights' sha256."""
    weights = hashlib.sha256(f"{task}-{seed}".encode()).digest() * 8
    manifest = {"task": task, "weights_sha256": hashlib.sha256(weights).hexdigest()}
    return json.dumps(manifest).encode(), weights


def wait_until(condition, timeout_s: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def alive(pid: int) -> bool:
    """A process that exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def exists(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def test_a_killed_server_is_reaped_restarted_and_keeps_every_acknowledged_write(tmp_path, caplog):
    restarts: list[int] = []
    with caplog.at_level(logging.INFO, logger="service.store"):
        store, server = connect(None, tmp_path, on_restart=lambda: restarts.append(1))
    assert server is not None
    try:
        assert any(server.url in r.getMessage() for r in caplog.records)  # named at startup
        published = [store.publish("cola", *artifact("cola", i)) for i in range(20)]
        first = server.process.pid
        os.kill(first, signal.SIGKILL)
        assert wait_until(lambda: not exists(first)), "the killed server was never reaped"
        assert wait_until(lambda: restarts == [1]), "the server was not restarted"
        assert store.ping() and server.process.pid != first
        for p in published:  # acknowledged = in the append-only file
            assert store.fetch("cola", p.version) == artifact("cola", p.version - 1)
        assert store.live_version("cola") == 20
    finally:
        server.stop()
    assert not exists(server.process.pid)  # stop() reaps the last one too


def test_a_stopped_server_is_not_restarted(tmp_path):
    restarts: list[int] = []
    store, server = connect(None, tmp_path, on_restart=lambda: restarts.append(1))
    assert server is not None
    server.stop()
    time.sleep(0.5)
    assert not store.ping() and restarts == []


OWNER_SCRIPT = """
import sys, time
from pathlib import Path
from tests.integration.test_embedded_redis import artifact
from service.store import AdapterStore, RedisBlobStore, make_client, start_embedded_redis
from service.store.factory import EMBEDDED_DIR, connect
data_dir = Path(sys.argv[1])
if sys.argv[2] == "service":
    store, server = connect(None, data_dir)
else:  # a bare server: no supervision, no parent-death signal
    server = start_embedded_redis(data_dir / EMBEDDED_DIR)
    client = make_client(server.url)
    store = AdapterStore(client, RedisBlobStore(client))
store.publish("kept", *artifact("kept"))
print(server.process.pid, flush=True)
time.sleep(600)
"""


def start_owner(data_dir: Path, how: str = "service") -> tuple[subprocess.Popen, int]:
    """A process that starts the embedded server on `data_dir` (as the service does, or a
    bare one) and writes one version; (the process, the server's pid)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER_SCRIPT, str(data_dir), how],
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    assert owner.stdout is not None
    return owner, int(owner.stdout.readline())


def test_the_server_does_not_outlive_its_owner_and_a_restart_just_works(tmp_path):
    owner, redis_pid = start_owner(tmp_path)
    owner.kill()  # SIGKILL: no cleanup of any kind in the owner
    owner.wait()
    assert wait_until(lambda: not alive(redis_pid), 30), "redis-server outlived its owner"
    store, server = connect(None, tmp_path)  # the same data folder, no manual step
    assert server is not None
    try:
        assert store.fetch("kept", 1) == artifact("kept")
    finally:
        server.stop()


def test_an_orphan_of_a_dead_owner_is_stopped_and_replaced(tmp_path):
    """A server left behind (one started without the parent-death signal) still serves the
    folder after its owner died: the next start stops it and serves the same data."""
    owner, redis_pid = start_owner(tmp_path, how="bare")
    owner.kill()
    owner.wait()
    assert alive(redis_pid)  # an orphan now
    store, server = connect(None, tmp_path)
    assert server is not None
    try:
        assert server.process.pid != redis_pid and not alive(redis_pid)
        assert store.fetch("kept", 1) == artifact("kept")
    finally:
        server.stop()


def test_a_server_of_a_live_owner_is_refused_with_the_owner(tmp_path):
    owner, _ = start_owner(tmp_path)
    try:
        with pytest.raises(StoreUnavailableError, match=f"process {owner.pid}"):
            connect(None, tmp_path)
    finally:
        owner.kill()
        owner.wait()
