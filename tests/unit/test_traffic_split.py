"""Traffic splits as pure logic: validation, bucket mapping, sticky hashing, version labels."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest

from service.engine.lifecycle.resolver import LiveEntry
from service.engine.lifecycle.routing import choose, sticky_bucket
from service.metrics import OTHER_VERSION, VersionLabels
from service.store.errors import InvalidTrafficError
from service.store.events import EventKind, StoreEvent, decode_event, encode_event
from service.store.split import MAX_SPLIT_VERSIONS, TrafficSplit


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ({}, "1 to 4 versions, got 0"),
        ({"1": 20, "2": 20, "3": 20, "4": 20, "5": 20}, "1 to 4 versions, got 5"),
        ({"7": 90, "8": 9}, "sum to 99"),
        ({"7": 110, "8": -10}, "from 0 to 100"),
        ({"7": 90.0, "8": 10}, "integer"),
        ({"7": True, "8": 99}, "integer"),
        ({"7": "90", "8": 10}, "integer"),
        ({"x": 90, "8": 10}, "not a positive integer"),
        ({"0": 90, "8": 10}, "not a positive integer"),
        ({"-1": 90, "8": 10}, "not a positive integer"),
        ({"7": 50, "07": 50}, "named twice"),
        ([["7", 100]], "an object of version: weight"),
    ],
)
def test_a_split_that_breaks_a_rule_names_it(raw, words):
    with pytest.raises(InvalidTrafficError, match=words):
        TrafficSplit.parse(raw)


def test_a_split_keeps_versions_in_order_and_round_trips():
    split = TrafficSplit.parse({"8": 10, "7": 90})
    assert split.weights == ((7, 90), (8, 10)) and split.versions == (7, 8)
    assert TrafficSplit.from_json(split.to_json()) == split
    assert split.as_dict() == {"7": 90, "8": 10} and split.describe() == "7=90 8=10"
    assert TrafficSplit.parse({"3": 100}).versions == (3,)  # one version is a split too
    assert len(TrafficSplit.parse({str(v): 25 for v in range(1, 5)}).weights) == 4
    assert MAX_SPLIT_VERSIONS == 4


def test_buckets_map_onto_cumulative_weights_and_zero_weights_get_none():
    split = TrafficSplit.parse({"1": 90, "2": 0, "3": 10})
    owners = [split.version_at(b) for b in range(100)]
    assert owners == [1] * 90 + [3] * 10
    with pytest.raises(ValueError):
        split.version_at(100)


def test_ramping_the_newest_version_up_moves_keys_only_onto_it():
    keys = [f"user-{i}" for i in range(2000)]
    before = {
        k: TrafficSplit.parse({"7": 90, "8": 10}).version_at(sticky_bucket("t", k)) for k in keys
    }
    after = {
        k: TrafficSplit.parse({"7": 50, "8": 50}).version_at(sticky_bucket("t", k)) for k in keys
    }
    assert all(after[k] == 8 for k in keys if before[k] == 8)  # the canary's users stay
    assert sum(v == 8 for v in after.values()) > sum(v == 8 for v in before.values())


def test_sticky_buckets_are_stable_spread_evenly_and_differ_per_task():
    keys = [f"user-{i}" for i in range(10_000)]
    buckets = [sticky_bucket("sst2", k) for k in keys]
    assert buckets == [sticky_bucket("sst2", k) for k in keys]
    assert all(0 <= b < 100 for b in buckets)
    deciles = Counter(b // 10 for b in buckets)
    sigma = math.sqrt(10_000 * 0.1 * 0.9)
    assert all(abs(deciles[d] - 1000) < 5 * sigma for d in range(10)), deciles
    other = [sticky_bucket("topic", k) for k in keys]
    assert sum(a == b for a, b in zip(buckets, other)) < 300  # about 1% by chance


def test_choose_follows_the_live_version_the_draw_or_the_sticky_key():
    live = LiveEntry(version=7, generation=1, applied_at=0, checked_at=0)
    assert choose(live, "t", "someone") == 7
    split = LiveEntry(7, 2, 0, 0, split=TrafficSplit.parse({"7": 90, "8": 10}))
    assert choose(split, "t", None, draw=lambda n: 89) == 7
    assert choose(split, "t", None, draw=lambda n: 90) == 8
    key = next(k for k in (f"k{i}" for i in range(1000)) if sticky_bucket("t", k) >= 90)
    assert {choose(split, "t", key, draw=lambda n: 0) for _ in range(5)} == {8}
    rng = random.Random(0)
    draws = Counter(choose(split, "t", None, draw=rng.randrange) for _ in range(2000))
    assert abs(draws[8] - 200) < 5 * math.sqrt(2000 * 0.1 * 0.9)


def test_a_routing_event_carries_the_split():
    event = StoreEvent(EventKind.LIVE, "t", 7, 4, TrafficSplit.parse({"7": 90, "8": 10}))
    assert decode_event(encode_event(event)) == event
    plain = StoreEvent(EventKind.LIVE, "t", 7, 5)
    assert decode_event(encode_event(plain)) == plain
    legacy = '{"event": "live", "task": "t", "version": 7, "generation": 6}'  # no split key
    assert decode_event(legacy) == StoreEvent(EventKind.LIVE, "t", 7, 6)
    assert (
        decode_event(
            '{"event": "live", "task": "t", "version": 7, "generation": 6, "split": {"7": 50}}'
        )
        is None
    )  # a bad split: ignored, not applied


def test_version_labels_name_routed_versions_and_drop_the_oldest():
    dropped: list[tuple[str, str]] = []
    labels = VersionLabels(limit=3, on_drop=lambda task, version: dropped.append((task, version)))
    assert labels.label("t", 5, routable=False) == OTHER_VERSION  # never routed: _other
    assert [labels.label("t", v, routable=True) for v in (1, 2, 3)] == ["1", "2", "3"]
    assert labels.label("t", 1, routable=False) == "1"  # recently routed: keeps its label
    assert labels.label("t", 4, routable=True) == "4" and dropped == [("t", "1")]
    assert labels.label("t", 1, routable=False) == OTHER_VERSION
    assert labels.label("u", 1, routable=True) == "1"  # per task
