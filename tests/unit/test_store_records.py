"""Store names, records, manifest checks and events: the parts that need no server."""

from __future__ import annotations

import hashlib
import json

import pytest
import redis

from service.store import AdapterStore, InvalidArtifactError, Keys, RedisBlobStore, VersionInfo
from service.store.events import RESYNC, EventKind, StoreEvent, decode_event, encode_event
from service.store.factory import connect
from service.store.records import parse_manifest

WEIGHTS = b"\x00weights"
SHA = hashlib.sha256(WEIGHTS).hexdigest()


def test_key_layout() -> None:
    k = Keys("app:")
    assert k.tasks == "app:tasks"
    assert k.events == "app:events"
    assert k.versions("sst2") == "app:task:sst2:versions"
    assert k.live("sst2") == "app:task:sst2:live"
    assert k.next_version("sst2") == "app:task:sst2:next_version"
    assert k.blob("sst2", 4, "weights") == "app:blob:sst2:4:weights"
    assert k.parse_pending(k.pending("sts-b.v2", 12)) == ("sts-b.v2", 12)
    assert Keys().tasks == "unipelt:tasks"


@pytest.mark.parametrize("prefix", ["", "a b:", "x\n"])
def test_bad_prefix_is_named(prefix: str) -> None:
    with pytest.raises(ValueError, match="prefix"):
        Keys(prefix)


def test_version_info_json_round_trip() -> None:
    info = VersionInfo("sst2", 2, SHA, 8, "2025-01-01T00:00:00+00:00", {"task": "sst2"}, "ab")
    assert VersionInfo.from_json(info.to_json()) == info
    assert VersionInfo.from_json(info.to_json().encode()) == info


@pytest.mark.parametrize(
    ("task", "manifest", "match"),
    [
        ("Bad Name", {"task": "Bad Name", "weights_sha256": SHA}, "does not match"),
        ("a:b", {"task": "a:b", "weights_sha256": SHA}, "does not match"),
        ("sst2", b"\xff\xfe", "not JSON"),
        ("sst2", [1, 2], "not a JSON object"),
        ("sst2", {"task": "cola", "weights_sha256": SHA}, "names task 'cola'"),
        ("sst2", {"weights_sha256": SHA}, "names task None"),
        ("sst2", {"task": "sst2", "weights_sha256": "0" * 64}, "does not match weights"),
    ],
)
def test_parse_manifest_rejects(task: str, manifest: object, match: str) -> None:
    raw = manifest if isinstance(manifest, bytes) else json.dumps(manifest).encode()
    with pytest.raises(InvalidArtifactError, match=match):
        parse_manifest(task, raw, SHA)


def test_parse_manifest_keeps_everything_else() -> None:
    manifest = {"task": "sst2", "weights_sha256": SHA, "label_names": ["neg", "pos"]}
    assert parse_manifest("sst2", json.dumps(manifest).encode(), SHA) == manifest


def test_events_encode_and_decode() -> None:
    for event in (
        StoreEvent(EventKind.LIVE, "sst2", 3, 7),
        StoreEvent(EventKind.DELETED, "sst2", None, 8),
    ):
        assert decode_event(encode_event(event)) == event
    assert decode_event(b"not json") is None
    assert decode_event(json.dumps({"event": "live", "task": "t", "version": 1})) is None
    resync = {"event": "resync", "task": "", "version": None, "generation": 0}
    assert decode_event(json.dumps(resync)) is None  # never sent on the channel
    with pytest.raises(ValueError, match="never sent"):
        encode_event(RESYNC)


def test_store_refuses_a_decoding_client() -> None:
    client = redis.Redis(decode_responses=True)  # constructing does not connect
    with pytest.raises(ValueError, match="decode_responses"):
        AdapterStore(client, RedisBlobStore(client))


def test_connect_names_a_bad_blob_backend(tmp_path) -> None:
    with pytest.raises(ValueError, match="'s3'"):
        connect("redis://127.0.0.1:1/0", tmp_path, blob_backend="s3")  # type: ignore[arg-type]
