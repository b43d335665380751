"""Who owns an embedded redis-server: it dies with its owner, and a server left behind by an
owner that is gone is stopped before a new one starts on the same data folder.

`owner.pid` in the data folder records the process that started the server (pid and start
time, so a reused pid is not mistaken for it). A server answering on the folder's socket is
held when that process still runs (or, without the file, when the server's parent is not
init); it is left behind otherwise, and then stopped (SHUTDOWN SAVE: nothing is lost).
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import redis
from redis.exceptions import RedisError

from service.store.errors import StoreUnavailableError

log = logging.getLogger(__name__)

OWNER_FILE = "owner.pid"
PR_SET_PDEATHSIG = 1  # linux/prctl.h
STOP_WAIT_S = 30.0


def parent_death_signal() -> Callable[[], None] | None:
    """A `preexec_fn` that has the child sent SIGTERM when the thread that started it ends
    (Linux); None elsewhere. Redis saves and exits on SIGTERM."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/pid/stat)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return fields[19] if fields[0] != "Z" else None  # a zombie has ended


def _parent(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def record_owner(data_dir: Path) -> None:
    pid = os.getpid()
    (data_dir / OWNER_FILE).write_text(f"{pid} {_start_time(pid) or 0}\n")


def recorded_owner(data_dir: Path) -> tuple[int, bool] | None:
    """(pid, whether that process still runs) of the recorded owner; None without a record."""
    try:
        pid_text, start = (data_dir / OWNER_FILE).read_text().split()
        pid = int(pid_text)
    except (OSError, ValueError):
        return None
    return pid, _start_time(pid) == start


def claim_folder(data_dir: Path, url: str) -> None:
    """A server answers on `data_dir`'s socket: refuse when its owner still runs, else stop it
    (it was left behind) so that a new one can start on the same data."""
    client = redis.Redis.from_url(url, socket_timeout=5.0, socket_connect_timeout=2.0)
    try:
        pid = int(client.info("server")["process_id"])
        served = client.config_get("dir").get("dir")
    except RedisError:
        return  # it went away meanwhile (shutting down): the start waits for the socket
    owner = recorded_owner(data_dir)
    parent = _parent(pid)
    held = owner[1] if owner is not None else parent not in (None, 1)
    holder = owner[0] if owner is not None else parent
    if held or Path(str(served)).resolve() != data_dir:
        raise StoreUnavailableError(
            f"a redis-server (pid {pid}) already serves {data_dir}, started by process "
            f"{holder}, which still runs: stop it, or give this one another data folder"
        )
    log.warning(
        "stopping redis-server pid %d, left behind on %s by process %s (gone); its data is kept",
        pid,
        data_dir,
        holder,
    )
    try:
        client.shutdown(save=True)
    except RedisError as exc:
        log.warning("SHUTDOWN SAVE of the left-behind server failed (%s); sending SIGTERM", exc)
        os.kill(pid, signal.SIGTERM)
    if not _wait_gone(pid, STOP_WAIT_S):
        os.kill(pid, signal.SIGKILL)
        _wait_gone(pid, 5.0)


def _wait_gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _start_time(pid) is None:
            return True
        time.sleep(0.05)
    return False
