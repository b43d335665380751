"""Run HAProxy with the shipped fleet config (docker/haproxy/haproxy.cfg) on 127.0.0.1.

The config finds replicas by DNS (`server-template`); here its template is replaced by one
`server` line per local replica, and everything else is the shipped file: the task
extraction, the bounded-load ring, the retries, the /readyz checks. `balance="round-robin"`
swaps the ring for `balance roundrobin`, the baseline the fleet benchmark compares against.
"""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from harness.service_process import ROOT, free_port

CONFIG = ROOT / "docker" / "haproxy" / "haproxy.cfg"
BACKEND = "replicas"
SERVER_TEMPLATE = re.compile(r"^ +server-template .*$", re.M)
RESOLVERS = re.compile(r"^resolvers dns\n(?: +.*\n)+\n", re.M)  # unused by local servers
HASHING = ("    balance hash var(txn.task)\n", "    hash-type consistent\n")


def haproxy_binary() -> str | None:
    return shutil.which("haproxy")


def render(servers: dict[str, str], balance: str = "affinity") -> str:
    """The shipped config for `servers` (name -> host:port), with affinity or round-robin."""
    text = CONFIG.read_text()
    lines = "\n".join(f"    server {name} {address}" for name, address in servers.items())
    text, found = SERVER_TEMPLATE.subn(lambda _: lines, text)
    if found != 1:
        raise ValueError(f"{CONFIG} has {found} server-template lines, expected 1")
    text = RESOLVERS.sub("", text)
    if balance == "round-robin":
        for line in HASHING:
            if line not in text:
                raise ValueError(f"{CONFIG} lacks {line.strip()!r}")
        text = text.replace(HASHING[0], "    balance roundrobin\n").replace(HASHING[1], "")
        text = re.sub(r"^ +hash-balance-factor .*\n", "", text, flags=re.M)
    elif balance != "affinity":
        raise ValueError(f"balance must be 'affinity' or 'round-robin', got {balance!r}")
    return text


@dataclass
class HAProxyProcess:
    process: subprocess.Popen
    url: str
    stats_url: str
    log_path: Path

    def server_states(self) -> dict[str, str]:
        """Each replica's state as HAProxy sees it (UP, DOWN, ...)."""
        text = httpx.get(f"{self.stats_url}/stats;csv", timeout=5).text.lstrip("# ")
        rows = csv.DictReader(io.StringIO(text))
        return {
            r["svname"]: r["status"].split()[0]
            for r in rows
            if r["pxname"] == BACKEND and r["svname"] not in ("BACKEND", "FRONTEND")
        }

    def wait_until(self, want: dict[str, str], timeout_s: float = 20) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            states = self.server_states()
            if all(states.get(name) == state for name, state in want.items()):
                return
            time.sleep(0.1)
        raise RuntimeError(f"replicas not {want} after {timeout_s}s: {states}\n{self.log()}")

    def stop(self, timeout_s: float = 10) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGUSR1)  # soft stop: finish what is in flight
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


def start_haproxy(
    work_dir: Path,
    servers: dict[str, str],
    balance: str = "affinity",
    factor: int = 150,
    check_interval: str = "200ms",
    timeout_s: float = 20,
) -> HAProxyProcess:
    """HAProxy in front of `servers` (name -> host:port); returns once every one is UP."""
    binary = haproxy_binary()
    if binary is None:
        raise RuntimeError("haproxy is not installed (Debian: apt-get install haproxy)")
    work_dir.mkdir(parents=True, exist_ok=True)
    port, stats_port = free_port(), free_port()
    config = work_dir / f"haproxy-{port}.cfg"
    config.write_text(render(servers, balance))
    env = {
        **os.environ,
        "UNIPELT_LB_BIND": f"127.0.0.1:{port}",
        "UNIPELT_LB_STATS_BIND": f"127.0.0.1:{stats_port}",
        "UNIPELT_HASH_BALANCE_FACTOR": str(factor),
        "UNIPELT_CHECK_INTERVAL": check_interval,
    }
    log_path = work_dir / f"haproxy-{port}.log"
    with open(log_path, "wb") as out:
        process = subprocess.Popen(
            [binary, "-db", "-f", str(config)], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    lb = HAProxyProcess(
        process, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{stats_port}", log_path
    )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"haproxy exited with {process.returncode}:\n{lb.log()}")
        try:
            lb.wait_until(dict.fromkeys(servers, "UP"), timeout_s=deadline - time.monotonic())
            return lb
        except httpx.HTTPError:
            time.sleep(0.1)  # the stats listener is not up yet
    lb.stop()
    raise RuntimeError(f"haproxy not ready after {timeout_s}s:\n{lb.log()}")
