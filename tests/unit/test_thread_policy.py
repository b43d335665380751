"""The thread policy: forward workers and intra-op threads from the settings and the cores."""

from __future__ import annotations

import os

import pytest

from service.threads import choose_thread_policy, usable_cores


@pytest.mark.parametrize(
    ("cores", "threads", "workers", "expected"),
    [
        (2, None, None, (2, 1)),  # a single-threaded forward per core
        (16, None, None, (4, 4)),  # at most 4 workers; the cores shared between them
        (2, 2, None, (1, 2)),  # threads set: the workers fill the cores
        (8, None, 2, (2, 4)),  # workers set: the threads fill the cores
        (4, 3, 3, (3, 3)),  # both set: as given, even past the cores
        (1, None, None, (1, 1)),
    ],
)
def test_cpu_policy(cores, threads, workers, expected):
    policy = choose_thread_policy("cpu", threads, workers, cores=cores)
    assert (policy.forward_workers, policy.intra_op) == expected
    assert f"{expected[0]} forward worker(s) x {expected[1]} intra-op" in policy.describe()


def test_one_forward_worker_owns_a_gpu():
    policy = choose_thread_policy("cuda:0", None, 8, cores=16)
    assert policy.forward_workers == 1


def test_cgroup_quota_caps_the_cores(tmp_path):
    affinity = len(os.sched_getaffinity(0))
    quota = tmp_path / "cpu.max"
    quota.write_text("150000 100000\n")  # 1.5 CPUs: rounded up
    assert usable_cores(quota) == min(affinity, 2)
    quota.write_text("max 100000\n")
    assert usable_cores(quota) == affinity
    assert usable_cores(tmp_path / "absent") == affinity
