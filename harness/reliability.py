"""Shared pieces of the reliability suite (and of `bench.http.load_test` / `bench.http.faults`).

Cheap artifacts for many tasks, the real service on 127.0.0.1 against an external Redis,
store integrity checks, the RSS of a process, and a Redis MONITOR that SIGKILLs a process the
moment a chosen command reaches Redis (a deterministic point inside an upload).
"""

from __future__ import annotations

import json
import os
import re
import signal
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import redis
from redis.exceptions import RedisError

from adapters.backbone import Backbone
from adapters.config import MethodConfig
from harness.service_process import ServiceProcess, start_service
from harness.tasks import artifact_bytes
from service.store.adapter_store import AdapterStore
from service.store.blobs import RedisBlobStore
from service.store.embedded import EmbeddedRedis, start_embedded_redis
from service.store.errors import StoreError
from service.store.factory import make_client
from service.store.keys import DEFAULT_PREFIX

TOKEN = "reliability-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
# Base artifacts that many tasks share (renamed): one per method family, small and quick.
BASE_METHODS = ("apl", "l", "a", "p")
LOOPBACK = re.compile(r"^https?://(127\.\d+\.\d+\.\d+|localhost|\[::1\])(:\d+)?(/|$)")
_BASES: dict[str, list[tuple[bytes, bytes]]] = {}


# ---- artifacts ---------------------------------------------------------------------------
def base_artifacts(backbone: Backbone) -> list[tuple[bytes, bytes]]:
    """(manifest, weights) per method in BASE_METHODS, built once per backbone."""
    if backbone.name not in _BASES:
        _BASES[backbone.name] = [
            artifact_bytes("base", MethodConfig.preset(m), backbone, seed=i)
            for i, m in enumerate(BASE_METHODS)
        ]
    return _BASES[backbone.name]


def renamed(manifest: bytes, weights: bytes, task: str) -> tuple[bytes, bytes]:
    """The same artifact for another task: only the manifest's task name changes."""
    data = json.loads(manifest)
    data["task"] = task
    return json.dumps(data).encode(), weights


def task_artifact(backbone: Backbone, task: str, index: int = 0) -> tuple[bytes, bytes]:
    bases = base_artifacts(backbone)
    return renamed(*bases[index % len(bases)], task)


def upload_files(manifest: bytes, weights: bytes) -> dict:
    return {"manifest": ("manifest.json", manifest), "weights": ("adapter.safetensors", weights)}


# ---- the service and its store -----------------------------------------------------------
# Settings of the service under test: the engine is the bottleneck (a short queue, so 429s
# under overload; fewer pool slots than tasks, so evictions and store fetches), a short
# live-version TTL (the resolver meets a Redis outage quickly) and a small upload limit.
RELIABILITY_SETTINGS: dict[str, object] = {
    "max_queue": 96,
    "max_batch_size": 32,
    "batch_window_ms": 5,
    "pool_slots": 20,
    "live_cache_ttl_s": 0.3,
    "max_upload_bytes": 4 * 2**20,
}


def service_env(redis_url: str | None, **settings: object) -> dict[str, str]:
    """Environment for `start_service`: external Redis, the suite's token and settings."""
    env = {"UNIPELT_API_TOKEN": TOKEN}
    if redis_url is not None:
        env["REDIS_URL"] = redis_url
    merged = {**RELIABILITY_SETTINGS, **settings}
    env.update({f"UNIPELT_{k.upper()}": str(v) for k, v in merged.items()})
    return env


@contextmanager
def running_service(data_dir: Path, env: dict[str, str]) -> Iterator[ServiceProcess]:
    """The service on 127.0.0.1; always stopped (SIGTERM, then SIGKILL) on the way out."""
    service = start_service(data_dir, env)
    try:
        yield service
    finally:
        service.stop(signal.SIGTERM, timeout_s=30)


class RedisHolder:
    """The external redis-server; `restart()` starts a new one on the same data (same URL)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.server: EmbeddedRedis = start_embedded_redis(data_dir)

    @property
    def url(self) -> str:
        return self.server.url

    def halt(self) -> None:
        """SHUTDOWN SAVE: clients are refused until `start()`."""
        self.server.stop()

    def start(self) -> None:
        """A new redis-server on the same data dir and socket."""
        self.server = start_embedded_redis(self.data_dir)

    def freeze(self) -> None:
        self.server.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self.server.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.server.running:
            self.thaw()  # in case a test froze it
        self.server.stop()


class ServiceSlot:
    """One service process shared by tests, (re)started on demand: tests that kill it just
    leave it dead and the next `get()` starts a fresh one against the same Redis."""

    def __init__(self, root: Path, redis: RedisHolder, **settings: object) -> None:
        self.root, self.redis, self.settings = root, redis, settings
        self.service: ServiceProcess | None = None
        self.starts = 0

    def get(self) -> ServiceProcess:
        if self.service is None or self.service.process.poll() is not None:
            self.starts += 1
            env = service_env(self.redis.url, **self.settings)
            self.service = start_service(self.root / f"run-{self.starts}", env)
        return self.service

    def stop(self) -> None:
        if self.service is not None:
            self.service.stop(signal.SIGTERM, timeout_s=30)

    def with_task(self, backbone: Backbone, task: str) -> str:
        """The running service's URL after uploading a servable adapter for `task`."""
        url = self.get().url
        files = upload_files(*task_artifact(backbone, task))
        r = httpx.put(f"{url}/adapters", files=files, headers=AUTH)
        assert r.status_code == 201, r.text
        return url


def redis_store(url: str, prefix: str = DEFAULT_PREFIX) -> AdapterStore:
    client = make_client(url)
    return AdapterStore(client, RedisBlobStore(client), prefix)


def store_problems(store: AdapterStore, only: Iterable[str] | None = None) -> list[str]:
    """Everything that would make a listed version unservable; [] when the store is sound.

    Every listed task (of `only`, when given) has versions; its live pointer names one of
    them; every version's blobs exist and pass their sha256; no versions hash exists outside
    the task set."""
    problems: list[str] = []
    tasks = store.tasks()
    wanted = set(tasks if only is None else only)
    for task in (t for t in tasks if t in wanted):
        try:
            versions = [v.version for v in store.versions(task)]
            live = store.live_version(task)
        except StoreError as e:
            problems.append(f"{task}: listed but unreadable ({e})")
            continue
        if live is None or live not in versions:
            problems.append(f"{task}: live pointer {live} not among versions {versions}")
        for version in versions:
            try:
                store.fetch(task, version)
            except StoreError as e:
                problems.append(f"{task} v{version}: {e}")
    pattern = store.keys.versions("*")
    for key in store.client.scan_iter(match=pattern):
        task = key.decode().removeprefix(f"{store.keys.prefix}task:").removesuffix(":versions")
        if (only is None or task in wanted) and task not in tasks:
            problems.append(f"{task}: versions hash present but task not listed")
    return problems


def orphan_blob_keys(store: AdapterStore) -> list[str]:
    """Blob keys whose version is not in the index (what `gc_orphans` should remove)."""
    orphans = []
    for key in store.client.scan_iter(match=f"{store.keys.prefix}blob:*"):
        task, version, _ = key.decode().removeprefix(f"{store.keys.prefix}blob:").rsplit(":", 2)
        if not store.client.hexists(store.keys.versions(task), version):
            orphans.append(key.decode())
    return sorted(orphans)


def rss_kib(pid: int) -> int:
    """Resident set size of `pid` in KiB, from /proc/<pid>/status."""
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    return int(match.group(1)) if match else 0


def require_loopback(url: str) -> str:
    if not LOOPBACK.match(url):
        raise ValueError(f"{url!r} is not a loopback address; load and faults stay on 127.0.0.1")
    return url


# ---- a kill switch driven by what reaches Redis -------------------------------------------
@dataclass
class KillOnCommand:
    """SIGKILL `pid` as soon as Redis executes a command named `command` whose key contains
    `key_contains`.

    The kill is asynchronous: the process may send a few more commands before it dies. With
    `pause_writes`, the watcher first runs CLIENT PAUSE WRITE, so whatever write the process
    sends next waits in Redis until the process is dead: the kill lands exactly after the
    matched command. `stop()` unpauses."""

    redis_url: str
    pid: int
    command: str
    key_contains: str = ""
    pause_writes: bool = False
    fired: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._admin = redis.Redis.from_url(self.redis_url)
        self._monitor = redis.Redis.from_url(self.redis_url).monitor()
        self._monitor.__enter__()  # MONITOR is on before the constructor returns
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _matches(self, line: bytes) -> bool:
        """A MONITOR line: `<time> [<db> <client>] "CMD" "key" ...`; only its head is read."""
        _, _, command = line[:512].partition(b"] ")
        parts = command.split(b'"')
        if len(parts) < 2 or parts[1].decode(errors="replace").upper() != self.command:
            return False
        key = parts[3].decode(errors="replace") if len(parts) > 3 else ""
        return self.key_contains in key

    def _watch(self) -> None:
        try:
            while True:
                line = self._monitor.connection.read_response(disable_decoding=True)
                if isinstance(line, bytes) and self._matches(line):
                    if self.pause_writes:
                        self._admin.execute_command("CLIENT", "PAUSE", 30_000, "WRITE")
                    os.kill(self.pid, signal.SIGKILL)
                    self.fired.set()
                    return
        except (RedisError, OSError, ValueError, AttributeError):
            return  # stop() closed the connection

    def stop(self) -> None:
        with suppress(RedisError, OSError):
            self._monitor.connection.disconnect()
        self._thread.join(5)
        if self.pause_writes:
            self._admin.execute_command("CLIENT", "UNPAUSE")
