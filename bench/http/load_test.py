"""Bounded load on the real service (harness/load.py does the work), from the
command line: starts Redis and the service, seeds tasks, loads, checks the store.

    python -m bench.http.load_test --minutes 3 --tasks 24            # starts Redis + the service
    python -m bench.http.load_test --seconds 20 --json out.json      # the CI-sized run
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

from harness.load import (
    LoadConfig,
    LoadReport,
    check_store,
    prepare,
    run_load,
    task_names,
)
from harness.reliability import RELIABILITY_SETTINGS, running_service, service_env


def run_against_new_service(config: LoadConfig, workdir: Path, backbone=None) -> LoadReport:
    """Start Redis and the service (saturation settings), seed tasks, load, check the store."""
    from adapters.backbone import load_backbone
    from service.store.embedded import start_embedded_redis

    backbone = backbone or load_backbone()
    server = start_embedded_redis(workdir / "redis")
    try:
        with running_service(workdir / "service", service_env(server.url)) as service:
            tasks = task_names(config.tasks)
            versions = asyncio.run(prepare(service.url, backbone, tasks))
            report = asyncio.run(
                run_load(service.url, backbone, config, service.process.pid, versions)
            )
            check_store(report, server.url, tasks)
    finally:
        server.stop()
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=None)
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--tasks", type=int, default=24)
    parser.add_argument("--concurrency", type=int, default=48)
    parser.add_argument("--max-requests", type=int, default=2_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="also write the summary here")
    args = parser.parse_args(argv)
    duration = args.seconds if args.seconds is not None else 60 * (args.minutes or 3)
    config = LoadConfig(
        duration_s=min(duration, 15 * 60),
        tasks=args.tasks,
        concurrency=args.concurrency,
        max_requests=args.max_requests,
        seed=args.seed,
    )
    with tempfile.TemporaryDirectory(prefix="unipelt-load-") as tmp:
        report = run_against_new_service(config, Path(tmp))
    summary = {"config": asdict(config), "service": RELIABILITY_SETTINGS, **report.summary()}
    text = json.dumps(summary, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 1 if report.unexpected or report.store_problems else 0


if __name__ == "__main__":
    sys.exit(main())
