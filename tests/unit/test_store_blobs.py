"""FilesystemBlobStore: atomic round trips and keys that cannot leave the root."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.store import FilesystemBlobStore, Keys


@pytest.fixture
def blobs(tmp_path: Path) -> FilesystemBlobStore:
    return FilesystemBlobStore(tmp_path / "blobs")


def test_round_trip_replace_delete(blobs: FilesystemBlobStore) -> None:
    key = Keys().blob("sst2", 3, "weights")
    assert blobs.get(key) is None
    blobs.put(key, b"one")
    blobs.put(key, b"two")
    assert blobs.get(key) == b"two"
    assert blobs.path_for(key) == blobs.root / "unipelt" / "blob" / "sst2" / "3" / "weights"
    blobs.delete(key)
    blobs.delete(key)  # deleting a missing key is fine
    assert blobs.get(key) is None
    assert list(blobs.root.iterdir()) == []  # emptied directories are pruned


def test_no_temp_files_left_behind(blobs: FilesystemBlobStore) -> None:
    for i in range(5):
        blobs.put("p:blob:t:1:weights", bytes([i]) * 1000)
    assert [p.name for p in blobs.path_for("p:blob:t:1:weights").parent.iterdir()] == ["weights"]


@pytest.mark.parametrize(
    "key",
    [
        "..",
        "../../etc/passwd",
        "a:..:..:b",
        "/etc/passwd",
        "a/../../b",
        "..\\..\\b",
        ".",
        "a::b",
        "ünïcode:ключ",
        "a\x00b",
    ],
)
def test_keys_cannot_escape_the_root(blobs: FilesystemBlobStore, key: str) -> None:
    path = blobs.path_for(key)
    assert path.resolve().is_relative_to(blobs.root)
    assert all(part not in (".", "..") for part in path.relative_to(blobs.root).parts)
    blobs.put(key, b"x")
    assert blobs.get(key) == b"x"
    assert not (blobs.root.parent / "b").exists()


def test_distinct_keys_get_distinct_paths(blobs: FilesystemBlobStore) -> None:
    keys = ["a:b", "a/b", "a%3Ab", "a::b", "a:%:b", "a.b", "a%2Eb"]
    assert len({blobs.path_for(k) for k in keys}) == len(keys)


def test_empty_key_is_rejected(blobs: FilesystemBlobStore) -> None:
    with pytest.raises(ValueError, match="non-empty"):
        blobs.path_for("")
