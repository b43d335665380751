"""Bounded load at the engine's saturation across 20+ tasks, with uploads and deletions mixed
in (harness/load.py does the work): no unexpected status, nothing lost, memory bounded.

CI runs ~20 s; the soak run (UNIPELT_SOAK=1) runs 3 minutes, like
`python -m bench.http.load_test --minutes 3 --tasks 24`."""

from __future__ import annotations

import asyncio
import json

import pytest

from harness.load import LoadConfig, check_store, prepare, run_load, task_names

pytestmark = [pytest.mark.service, pytest.mark.slow]


def load(slot, redis_server, minilm, config: LoadConfig):
    service = slot.get()
    tasks = task_names(config.tasks)
    versions = asyncio.run(prepare(service.url, minilm, tasks))
    report = asyncio.run(run_load(service.url, minilm, config, service.process.pid, versions))
    check_store(report, redis_server.url, tasks)
    print(json.dumps(report.summary()))
    assert report.unexpected == {}, report.unexpected
    assert report.store_problems == [], report.store_problems
    assert report.served >= 20
    assert report.uploads.get("201", 0) >= 1 and report.deletes.get("200", 0) >= 1
    return report


def test_load_ci(slot, redis_server, minilm):
    config = LoadConfig(duration_s=20, tasks=20, concurrency=40, upload_every_s=2, delete_every_s=5)
    report = load(slot, redis_server, minilm, config)
    assert report.rss_end_kib - report.rss_start_kib < 512 * 1024  # warm-up included


@pytest.mark.soak
def test_load_soak(slot, redis_server, minilm):
    report = load(slot, redis_server, minilm, LoadConfig(duration_s=180, tasks=24))
    assert report.rss_growth_second_half_kib() < 64 * 1024  # memory has plateaued
