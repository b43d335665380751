"""Typed store events and their JSON form on the pub/sub channel.

Every event names a task and carries the task's *generation*: a per-task counter that the same
Redis transaction bumps with every routing change (upload that goes live, rollback, traffic
split set, promote or abort, deletion of the task). A cache keeps the state of the highest
generation it has seen and ignores anything older, so events may arrive in any order (etcd's
`mod_revision`).

- `PUBLISHED`: `version` was committed; `generation` is unchanged unless a `LIVE` follows.
- `LIVE`: the task's routing is now live `version` and `split` (None: no split), at
  `generation`; the event carries the whole routing, so applying it needs no read.
- `DELETED`: `version` was deleted (live pointer unchanged), or, with `version` None, the
  whole task is gone at `generation`.
- `RESYNC`: never on the channel; a subscription delivers it when events may have been missed
  (after a reconnection). Caches then re-read what they hold from the store.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from service.store.errors import InvalidTrafficError
from service.store.split import TrafficSplit

log = logging.getLogger(__name__)


class EventKind(StrEnum):
    PUBLISHED = "published"
    LIVE = "live"
    DELETED = "deleted"
    RESYNC = "resync"


CHANNEL_KINDS = frozenset({EventKind.PUBLISHED, EventKind.LIVE, EventKind.DELETED})


@dataclass(frozen=True)
class StoreEvent:
    kind: EventKind
    task: str = ""
    version: int | None = None
    generation: int = 0
    split: TrafficSplit | None = None

    @property
    def task_gone(self) -> bool:
        return self.kind is EventKind.DELETED and self.version is None


RESYNC = StoreEvent(EventKind.RESYNC)
EventCallback = Callable[[StoreEvent], None]


def encode_event(event: StoreEvent) -> str:
    if event.kind not in CHANNEL_KINDS:
        raise ValueError(f"{event.kind.value!r} events are never sent on the channel")
    payload = {
        "event": event.kind.value,
        "task": event.task,
        "version": event.version,
        "generation": event.generation,
        "split": None if event.split is None else event.split.as_dict(),
    }
    return json.dumps(payload)


def decode_event(raw: bytes | str) -> StoreEvent | None:
    """The event in a channel message, or None (logged) when it is not one of ours."""
    try:
        data = json.loads(raw)
        kind = EventKind(data["event"])
        version, split = data["version"], data.get("split")
        event = StoreEvent(
            kind=kind,
            task=str(data["task"]),
            version=None if version is None else int(version),
            generation=int(data["generation"]),
            split=None if split is None else TrafficSplit.parse(split),
        )
    except (ValueError, UnicodeDecodeError, TypeError, KeyError, InvalidTrafficError) as e:
        log.warning("ignoring unknown message on the events channel (%s): %r", e, raw[:200])
        return None
    if kind not in CHANNEL_KINDS:
        log.warning("ignoring %s message on the events channel", kind.value)
        return None
    return event
