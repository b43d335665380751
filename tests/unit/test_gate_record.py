"""The per-task gate record: running means, window, version reset, sampling, bounds."""

from __future__ import annotations

import pytest

from service.engine.inference.gate_record import GateRecord


def rows(*values: float) -> list[dict[str, list[float]]]:
    return [{"prefix": [v, 1 - v], "adapter": [v / 2, v]} for v in values]


def test_mean_of_the_first_inputs_is_their_plain_mean():
    record = GateRecord(window=8)
    record.add("t", 1, rows(0.2, 0.4))
    record.add("t", 1, rows(0.9))
    got = record.averages("t", 1)
    assert got.inputs == 3
    assert got.gates["prefix"] == pytest.approx([0.5, 0.5])
    assert got.gates["adapter"] == pytest.approx([0.25, 0.5])


def test_past_the_window_each_input_weighs_one_over_window():
    record = GateRecord(window=2)
    record.add("t", 1, rows(0.0, 1.0))  # mean 0.5
    record.add("t", 1, rows(1.0))  # 0.5 + (1 - 0.5) / 2
    assert record.averages("t", 1).gates["prefix"][0] == pytest.approx(0.75)


def test_a_new_version_starts_a_fresh_mean_and_an_old_one_keeps_its_own():
    """A traffic split serves both versions at once: each keeps its own record, and
    alternating between them neither resets one nor samples every request."""
    record = GateRecord(sample_every=4)
    record.add("t", 1, rows(0.2))
    record.add("t", 2, rows(0.8))
    assert record.averages("t", 2).gates["prefix"][0] == pytest.approx(0.8)
    assert record.averages("t", 2).inputs == 1
    assert record.averages("t", 1).gates["prefix"][0] == pytest.approx(0.2)
    due = [record.due("t", version) for _ in range(4) for version in (1, 2)]
    assert due == [True, True] + [False] * 6


def test_rows_without_gates_are_skipped():
    record = GateRecord()
    record.add("t", 1, [None, {}, *rows(0.4)])
    assert record.averages("t", 1).inputs == 1


@pytest.mark.parametrize(
    ("every", "due"),
    [(1, [True] * 5), (2, [True, False, True, False, True]), (0, [False] * 5)],
)
def test_sampling_takes_the_first_request_then_one_in_every(every, due):
    record = GateRecord(sample_every=every)
    assert [record.due("t", 1) for _ in range(5)] == due
    assert record.due("t", 2) is (every > 0)  # a new version: its first request again


def test_at_most_max_tasks_are_kept_least_recent_dropped():
    record = GateRecord(max_tasks=2)
    for task in ("a", "b", "c"):
        record.add(task, 1, rows(0.5))
    assert len(record) == 2
    assert record.averages("a", 1).inputs == 0
    assert record.averages("c", 1).inputs == 1


def test_forget_drops_a_task():
    record = GateRecord()
    record.add("t", 1, rows(0.5))
    record.add("t", 2, rows(0.5))
    record.forget("t")
    assert record.averages("t", 1).inputs == record.averages("t", 2).inputs == 0


@pytest.mark.parametrize("bounds", [{"window": 0}, {"sample_every": -1}, {"max_tasks": 0}])
def test_bounds_are_checked(bounds):
    with pytest.raises(ValueError, match="bad gate record bounds"):
        GateRecord(**bounds)
