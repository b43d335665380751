"""Rollouts behind one facade: read a task's routing, set a traffic split, promote, abort.

Each write commits in the store (`service/store/traffic.py`: one transaction, serialized
with rollbacks and uploads by the task's generation) and applies the committed routing to
this replica's resolver at once; other replicas hear the store's event.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from service.engine.lifecycle.resolver import AdapterResolver
from service.engine.workers import WorkerPool
from service.store import traffic
from service.store.adapter_store import AdapterStore
from service.store.errors import TaskNotFoundError
from service.store.records import LiveState
from service.store.split import TrafficSplit


@dataclass(frozen=True)
class TrafficState:
    """A task's routing as the API shows it. With `split`, unpinned requests follow it and
    `live_version` is where an abort returns; `generation` orders routing changes."""

    task: str
    live_version: int | None
    split: dict[str, int] | None
    generation: int

    @classmethod
    def of(cls, state: LiveState) -> TrafficState:
        split = None if state.split is None else state.split.as_dict()
        return cls(state.task, state.version, split, state.generation)


class Rollouts:
    """Blocking store calls run on `store_work`, the store's own thread pool."""

    def __init__(
        self, store: AdapterStore, resolver: AdapterResolver, store_work: WorkerPool
    ) -> None:
        self.store, self.resolver, self.store_work = store, resolver, store_work

    async def routing(self, task: str) -> TrafficState:
        return await self.store_work.run(self._routing, task)

    def _routing(self, task: str) -> TrafficState:
        state = self.store.live_state(task)
        if not state.exists:
            raise TaskNotFoundError(task)
        return TrafficState.of(state)

    async def set_split(
        self, task: str, weights: Mapping[Any, Any], if_generation: int | None = None
    ) -> TrafficState:
        """Route unpinned requests over `weights` (version -> percent; InvalidTrafficError
        names what breaks the rules)."""
        split = TrafficSplit.parse(weights)
        return await self._apply(traffic.set_split, task, split, if_generation)

    async def promote(self, task: str, version: int) -> TrafficState:
        """Make `version` live and end the split, in one step."""
        return await self._apply(traffic.promote, task, version)

    async def abort(self, task: str) -> TrafficState:
        """End the split; the live version takes all traffic again."""
        return await self._apply(traffic.abort, task)

    async def _apply(self, write: Any, task: str, *args: Any) -> TrafficState:
        def run() -> TrafficState:
            state = write(self.store, task, *args)
            self.resolver.apply(state)
            return TrafficState.of(state)

        return await self.store_work.run(run)
