"""The service dies mid-upload (SIGKILL) or is asked to stop (SIGTERM).

SIGKILL lands right after a chosen step of the publish sequence (INCRBY, pending marker, blob
writes, the commit transaction, the events), triggered by a Redis MONITOR: whatever got done,
no version may be half-published and the next process serves the live version. SIGTERM lands
while predictions are queued: every one of them completes with 200 before the process exits.
"""

from __future__ import annotations

import random

import httpx
import pytest

from harness.faults import (
    PUBLISH_STEPS,
    drain_on_sigterm,
    drain_problems,
    half_version_problems,
    kill_mid_upload,
)
from harness.reliability import AUTH, task_artifact, upload_files

pytestmark = [pytest.mark.service, pytest.mark.slow, pytest.mark.kills_service]
# CI: between the two blob writes (marker and manifest written, nothing indexed) and right
# after the commit (indexed and live, no event sent yet).
CI_STEPS = [("SET", ":manifest"), ("EXEC", "")]


@pytest.mark.parametrize("step", CI_STEPS, ids=[f"{c}-{k.strip(':')}" for c, k in CI_STEPS])
def test_sigkill_mid_upload_leaves_no_half_version(slot, redis_server, minilm, step):
    task = f"crash-{step[0].lower()}"
    figures = kill_mid_upload(slot, redis_server, minilm, task, step, seed=0)
    assert half_version_problems(figures, slot, redis_server, task) == []
    print(
        f"killed after {step}: live {figures['before']} -> {figures['after']}, "
        f"{len(figures['orphans'])} orphan blobs collected"
    )


@pytest.mark.soak
def test_sigkill_at_random_points_of_many_uploads(slot, redis_server, minilm):
    """Repeated kills at random publish steps against one task with prior versions."""
    rng = random.Random(7)
    task = "crash-loop"
    files = upload_files(*task_artifact(minilm, task))
    assert httpx.put(f"{slot.get().url}/adapters", files=files, headers=AUTH).status_code == 201
    for i in range(12):
        step = rng.choice(PUBLISH_STEPS)
        figures = kill_mid_upload(slot, redis_server, minilm, task, step, seed=i)
        assert half_version_problems(figures, slot, redis_server, task) == [], step


def test_sigterm_drains_queued_predictions(service, minilm):
    figures = drain_on_sigterm(service, minilm, "drain")
    assert drain_problems(figures) == []
    print(f"SIGTERM with {figures['pending_at_signal']} requests in flight: all 200")
