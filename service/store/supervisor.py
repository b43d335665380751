"""Keep a supervised embedded redis-server running: reap it when it dies, start it again on
the same data folder and socket (with backoff), log each step and report each restart.

One thread starts every process and waits on it, so the process is reaped at once and its
parent-death signal (sent when the starting thread ends) fires only when supervision ends
with the owning process. The first restart is immediate; further attempts back off from
0.25 s to 5 s, and the backoff resets once a server has run for a while.
"""

from __future__ import annotations

import logging
import subprocess
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from service.store.errors import StoreUnavailableError

if TYPE_CHECKING:
    from service.store.embedded import EmbeddedRedis, ServerSpec

log = logging.getLogger(__name__)

FIRST_BACKOFF_S, MAX_BACKOFF_S = 0.25, 5.0
STABLE_S = 30.0  # a server that ran this long starts the next restart's backoff afresh


class Supervisor:
    def __init__(self, spec: ServerSpec, on_restart: Callable[[], None] | None = None) -> None:
        self.spec, self.on_restart = spec, on_restart
        self.server: EmbeddedRedis | None = None  # set once started; its process is swapped
        self.restarts = 0
        self._stopping = threading.Event()
        self._started = threading.Event()
        self._first: subprocess.Popen[bytes] | BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="embedded-redis", daemon=True)

    def start(self) -> subprocess.Popen[bytes]:
        """Start the first server (on the supervising thread) and return it once it answers."""
        self._thread.start()
        self._started.wait()
        if isinstance(self._first, BaseException):
            raise self._first
        assert self._first is not None
        return self._first

    def stopping(self) -> None:
        """The owner is stopping the server: do not start it again."""
        self._stopping.set()

    def join(self, timeout_s: float) -> None:
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout_s)

    def _launch(self) -> subprocess.Popen[bytes]:
        process = self.spec.spawn(die_with_parent=True)
        self.spec.wait_ready(process)
        return process

    def _run(self) -> None:
        try:
            process = self._launch()
        except BaseException as exc:
            self._first = exc
            self._started.set()
            return
        self._first = process
        self._started.set()
        backoff = 0.0
        while True:
            started = time.monotonic()
            code = process.wait()  # reaps it
            if self._stopping.is_set():
                return
            log.error(
                "embedded redis-server (pid %d) exited with %s; restarting it on %s",
                process.pid,
                code,
                self.spec.url,
            )
            if time.monotonic() - started >= STABLE_S:
                backoff = 0.0
            restarted, backoff = self._restart(backoff)
            if restarted is None:
                return
            process = restarted

    def _restart(self, backoff: float) -> tuple[subprocess.Popen[bytes] | None, float]:
        """A new server once one starts (None if stopped first), and the next backoff."""
        while not self._stopping.wait(backoff):
            backoff = min(max(backoff * 2, FIRST_BACKOFF_S), MAX_BACKOFF_S)
            try:
                process = self._launch()
            except StoreUnavailableError as exc:
                log.error("restarting the embedded redis-server failed (%s); retrying", exc)
                continue
            if self.server is not None:
                self.server.process = process
            if self._stopping.is_set():  # stopped while it started: the owner stops it
                return None, backoff
            self.restarts += 1
            log.warning(
                "embedded redis-server restarted (pid %d, restart %d), serving %s",
                process.pid,
                self.restarts,
                self.spec.url,
            )
            if self.on_restart is not None:
                self.on_restart()
            return process, backoff
        return None, backoff
