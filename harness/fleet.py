"""Start several replicas of the service on one Redis at once, for fleet tests and benchmarks."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from harness.service_process import ServiceProcess, start_service


@dataclass
class Fleet:
    replicas: dict[str, ServiceProcess]  # replica id -> its process

    def addresses(self) -> dict[str, str]:
        """replica id -> host:port, as a balancer names its servers."""
        return {name: s.url.removeprefix("http://") for name, s in self.replicas.items()}

    def stop(self) -> None:
        for service in self.replicas.values():
            service.stop()


def start_fleet(
    root: Path,
    count: int,
    redis_url: str,
    env: dict[str, str] | None = None,
    shared_data_dir: bool = False,
    timeout_s: float = 180,
) -> Fleet:
    """Replicas r0..r{count-1} (`UNIPELT_REPLICA_ID`) on `redis_url`, started in parallel.
    `shared_data_dir`: one data directory for all, as a filesystem blob backend on shared
    storage needs; else one each."""

    def one(i: int) -> ServiceProcess:
        name = f"r{i}"
        data_dir = root / ("shared" if shared_data_dir else name)
        replica_env = {**(env or {}), "REDIS_URL": redis_url, "UNIPELT_REPLICA_ID": name}
        return start_service(data_dir, replica_env, timeout_s=timeout_s)

    with ThreadPoolExecutor(count) as pool:
        futures = [pool.submit(one, i) for i in range(count)]
    started, errors = {}, []
    for i, future in enumerate(futures):
        try:
            started[f"r{i}"] = future.result()
        except RuntimeError as exc:
            errors.append(exc)
    if errors:
        Fleet(started).stop()
        raise errors[0]
    return Fleet(started)
