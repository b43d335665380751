"""Faults of the service's own embedded redis-server, under traffic: SIGKILL the server (the
service must reap it, start it again and lose no acknowledged upload), then SIGKILL the
service (its server must go with it, and a plain restart on the same data must serve)."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import redis
from prometheus_client.parser import text_string_to_metric_families

from harness.faults import Hammer, make_resident, wait_until
from harness.reliability import AUTH, TOKEN, task_artifact, upload_files
from harness.service_process import ServiceProcess, start_service
from service.store.embedded import socket_path_for
from service.store.factory import EMBEDDED_DIR

SETTINGS = {"UNIPELT_API_TOKEN": TOKEN, "UNIPELT_LIVE_CACHE_TTL_S": "0.3"}
UPLOAD_STATUSES = {201, 503}  # while the server is away an upload may only be refused


def redis_pid(data_dir: Path) -> int:
    """The pid of the embedded redis-server serving `data_dir` (asked over its socket)."""
    client = redis.Redis(unix_socket_path=str(socket_path_for(data_dir / EMBEDDED_DIR)))
    return int(client.info("server")["process_id"])


def process_gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state == "Z"


def restarts_metric(url: str) -> float:
    text = httpx.get(f"{url}/metrics", headers=AUTH, timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "unipelt_embedded_redis_restarts_total":
                return sample.value
    return -1.0


class Uploader:
    """Uploads a new version of one task every `every_s` until stopped; keeps each answer."""

    def __init__(self, url: str, backbone, task: str, every_s: float = 0.25) -> None:
        self.url, self.task, self.every_s = url, task, every_s
        self.files = upload_files(*task_artifact(backbone, task, 1))
        self.answers: list[tuple[float, int, int | None]] = []  # (time, status, version)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Uploader:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(60)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30, headers=AUTH) as client:
            for _ in range(2000):
                if self._stop.wait(self.every_s):
                    return
                try:
                    r = client.put("/adapters", files=self.files)
                    version = r.json().get("version") if r.status_code == 201 else None
                    self.answers.append((time.monotonic(), r.status_code, version))
                except httpx.HTTPError:
                    self.answers.append((time.monotonic(), 0, None))

    @property
    def acknowledged(self) -> list[int]:
        return [v for _, status, v in self.answers if status == 201 and v is not None]


def listed_versions(url: str, task: str) -> set[int]:
    r = httpx.get(f"{url}/adapters/{task}", headers=AUTH, timeout=30)
    return {v["version"] for v in r.json()["versions"]} if r.status_code == 200 else set()


def kill_redis_under_traffic(data_dir: Path, backbone, clients: int = 3) -> dict:
    """Start the service on its embedded server, predict and upload meanwhile, SIGKILL the
    server; then SIGKILL the service and start it again on the same folder."""
    figures: dict = {}
    service = start_service(data_dir, SETTINGS)
    try:
        make_resident(service.url, backbone, "hot")
        with (
            Hammer(service.url, "hot", clients) as hammer,
            Uploader(service.url, backbone, "fresh") as uploader,
        ):
            time.sleep(1.0)
            pid = redis_pid(data_dir)
            killed = time.monotonic()
            os.kill(pid, signal.SIGKILL)

            def ready() -> bool:
                try:
                    return httpx.get(f"{service.url}/readyz", timeout=5).status_code == 200
                except httpx.HTTPError:
                    return False

            time.sleep(0.05)  # the service notices: its next store call fails
            waited = wait_until(ready, 60)
            figures["ready_after_s"] = None if waited is None else time.monotonic() - killed
            wait_until(lambda: any(t > killed and s == 201 for t, s, _ in uploader.answers), 60)
            time.sleep(1.0)
        accepted = [t for t, s, _ in uploader.answers if t > killed and s == 201]
        figures["upload_after_s"] = accepted[0] - killed if accepted else None
        figures["killed_pid_reaped"] = process_gone(pid)
        figures["new_redis_pid"] = redis_pid(data_dir)
        figures["restarts_metric"] = restarts_metric(service.url)
        figures["hot_statuses"] = dict(hammer.statuses())
        figures["upload_statuses"] = dict(Counter(s for _, s, _ in uploader.answers))
        figures["acknowledged"] = uploader.acknowledged
        figures["listed_after_redis_kill"] = sorted(listed_versions(service.url, "fresh"))
        service_killed_redis = figures["new_redis_pid"]
        service.stop(signal.SIGKILL)
        figures["redis_gone_after_service_kill"] = wait_until(
            lambda: process_gone(service_killed_redis), 30
        )
        restarted: ServiceProcess = start_service(data_dir, SETTINGS)
        service = restarted
        figures["listed_after_service_kill"] = sorted(listed_versions(service.url, "fresh"))
        r = httpx.post(f"{service.url}/v1/hot/predict", json={"inputs": "ok"}, timeout=60)
        figures["predict_after_restart"] = r.status_code
    finally:
        service.stop()
    return figures


def embedded_problems(figures: dict) -> list[str]:
    problems = []
    if figures["ready_after_s"] is None or figures["upload_after_s"] is None:
        problems.append(f"not recovered: {figures}")
    if not figures["killed_pid_reaped"]:
        problems.append("the killed redis-server was not reaped")
    if figures["restarts_metric"] != 1:
        problems.append(f"restarts metric {figures['restarts_metric']}, expected 1")
    if set(figures["hot_statuses"]) != {200}:
        problems.append(f"resident predictions answered {figures['hot_statuses']}")
    if not set(figures["upload_statuses"]) <= UPLOAD_STATUSES:
        problems.append(f"uploads answered {figures['upload_statuses']}")
    for key in ("listed_after_redis_kill", "listed_after_service_kill"):
        lost = sorted(set(figures["acknowledged"]) - set(figures[key]))
        if lost:
            problems.append(f"acknowledged versions {lost} missing ({key})")
    if figures["redis_gone_after_service_kill"] is None:
        problems.append("redis-server outlived the killed service")
    if figures["predict_after_restart"] != 200:
        problems.append(f"after the restart a predict answered {figures['predict_after_restart']}")
    return problems
