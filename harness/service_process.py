"""Start the real service as a uvicorn subprocess on 127.0.0.1 for tests and benchmarks."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class ServiceProcess:
    process: subprocess.Popen
    url: str
    log_path: Path

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


def start_service(
    data_dir: Path, env: dict[str, str] | None = None, timeout_s: float = 90, serve: bool = False
) -> ServiceProcess:
    """Run `uvicorn --factory service.main:create_app` (or with `serve`, the `unipelt serve`
    command with its connection limits) and wait until /readyz answers 200."""
    port = free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    full_env = {**os.environ, "UNIPELT_DATA_DIR": str(data_dir), "UNIPELT_TORCH_THREADS": "1"}
    full_env.pop("REDIS_URL", None)
    full_env.update(env or {})
    for key in [k for k, v in full_env.items() if v == ""]:  # "": leave the setting unset
        del full_env[key]
    log_path = data_dir / f"service-{port}.log"
    with open(log_path, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
            if serve
            else [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "service.main:create_app",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--timeout-graceful-shutdown",
                "20",
            ],
            cwd=ROOT,
            env=full_env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    service = ServiceProcess(process, f"http://127.0.0.1:{port}", log_path)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"service exited with {process.returncode}:\n{service.log()}")
        try:
            if httpx.get(f"{service.url}/readyz", timeout=1).status_code == 200:
                return service
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    service.stop(signal.SIGKILL)
    raise RuntimeError(f"service not ready after {timeout_s}s:\n{service.log()}")


def upload(url: str, manifest: bytes, weights: bytes, token: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    files = {"manifest": ("manifest.json", manifest), "weights": ("adapter.safetensors", weights)}
    return httpx.put(f"{url}/adapters", files=files, headers=headers, timeout=60)
