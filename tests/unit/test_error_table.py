"""The one error table: the most specific entry wins, and the README documents exactly the
statuses and kinds the code gives."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from adapters.errors import ArtifactError, BackboneMismatchError
from service.errors import ERROR_TABLE, HTTP_KINDS, INTERNAL, UnknownTaskError, status_of
from service.settings import Settings
from service.store.errors import (
    CorruptBlobError,
    NoEarlierVersionError,
    StoreUnavailableError,
    VersionNotFoundError,
)

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.mark.parametrize(
    ("error", "status", "kind"),
    [
        (BackboneMismatchError("x"), 422, "backbone_mismatch"),  # not its base's kind
        (ArtifactError("x"), 422, "invalid_adapter"),
        (NoEarlierVersionError("t", 1), 404, "unknown_version"),
        (VersionNotFoundError("t", 3), 404, "unknown_version"),
        (UnknownTaskError("t"), 404, "unknown_task"),
        (CorruptBlobError("t", 1, "weights", "is missing"), 500, "corrupt_adapter"),
        (StoreUnavailableError("x"), 503, "store_unavailable"),
        (KeyError("x"), 500, "internal"),
    ],
)
def test_the_most_specific_entry_wins(error, status, kind):
    entry = status_of(error)
    assert (entry.status, entry.kind) == (status, kind)


def documented() -> set[tuple[int, str]]:
    """(status, kind) pairs of the README's error table."""
    rows = re.findall(r"^\| (\d{3}) \| (.+) \|$", README.read_text(), flags=re.MULTILINE)
    return {(int(s), kind) for s, kinds in rows for kind in re.findall(r"`([a-z_]+)`", kinds)}


def test_readme_documents_exactly_the_table():
    in_code = {(e.status, e.kind) for e in ERROR_TABLE.values()}
    in_code |= set(HTTP_KINDS.items()) | {(INTERNAL.status, INTERNAL.kind)}
    assert documented() == in_code


def test_setting_names_are_checked():
    assert Settings.env_name("pool_max_lora_rank") == "UNIPELT_POOL_MAX_LORA_RANK"
    with pytest.raises(KeyError):
        Settings.env_name("pool_max_lora_r")
