"""Adapter management behind one facade: upload, list, get, roll back, delete.
(Traffic splits, promote and abort: `rollout.py`.)

Routes parse a request, call one method here and map the result; they never see the store.
Every write applies its committed live state (with its generation) to this replica's resolver
at once; other replicas hear the store's events. Store errors propagate typed and become HTTP
statuses in the one error table (`service/errors.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from adapters.config import MethodConfig
from adapters.errors import ConfigError
from service.engine.lifecycle.loader import AdapterLoader
from service.engine.lifecycle.peft_upload import PeftUpload
from service.engine.lifecycle.resolver import AdapterResolver
from service.engine.lifecycle.upload_checks import UploadCheck
from service.engine.workers import WorkerPool
from service.metrics import Metrics
from service.store.adapter_store import AdapterStore
from service.store.errors import StoreUnavailableError
from service.store.records import LiveState, Published, VersionInfo
from service.store.split import TrafficSplit

if TYPE_CHECKING:
    from service.engine.lifecycle.routing import Router


@dataclass(frozen=True)
class AdapterVersion:
    """One stored version as the API shows it; `live` as of the operation that returned it,
    and `split`, the task's traffic split then (None: one live version takes all traffic)."""

    task: str
    version: int
    sha256: str
    size_bytes: int
    uploaded_at: str
    live: bool
    method: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    split: dict[str, int] | None = None

    @classmethod
    def of(cls, info: VersionInfo, live: bool, split: TrafficSplit | None = None) -> AdapterVersion:
        return cls(
            task=info.task,
            version=info.version,
            sha256=info.sha256,
            size_bytes=info.size_bytes,
            uploaded_at=info.uploaded_at,
            live=live,
            method=_method_name(info.manifest.get("method")),
            metrics=info.manifest.get("metrics") or {},
            split=None if split is None else split.as_dict(),
        )


@dataclass(frozen=True)
class UploadOutcome(AdapterVersion):
    """An upload's answer; `replayed`: the upload key had committed this version already
    (`live` then says whether it is live now)."""

    replayed: bool = False

    @classmethod
    def of_published(cls, published: Published) -> UploadOutcome:
        version = AdapterVersion.of(published.info, published.live, published.split)
        return cls(**{**version.__dict__, "replayed": published.replayed})


@dataclass(frozen=True)
class TaskLive:
    task: str
    live_version: int | None
    split: dict[str, int] | None = None


@dataclass(frozen=True)
class TaskDetail:
    task: str
    live_version: int | None
    versions: list[AdapterVersion]
    label_names: list[str]
    problem_type: str | None
    text_pair: bool = False  # inputs are {text, text_pair}
    resident_versions: list[int] = field(default_factory=list)  # held by this replica
    host_versions: list[int] = field(default_factory=list)  # in this replica's host tier
    split: dict[str, int] | None = None


def _method_name(method: Any) -> str | None:
    try:
        return MethodConfig.from_dict(method).name if method else None
    except ConfigError:
        return None


class AdapterManager:
    """The one entry point for managing adapters. Blocking work runs off the event loop on
    bounded pools: store calls on `store_work`, uploads (conversion, validation, publish) on
    `upload_work`, so at most its size are held in memory at once."""

    def __init__(
        self,
        store: AdapterStore,
        resolver: AdapterResolver,
        loader: AdapterLoader,
        check: UploadCheck,
        metrics: Metrics,
        store_work: WorkerPool,
        upload_work: WorkerPool,
        router: Router,
    ) -> None:
        self.store, self.resolver, self.loader = store, resolver, loader
        self.check, self.metrics, self.router = check, metrics, router
        self.store_work, self.upload_work = store_work, upload_work

    async def upload(
        self,
        manifest_bytes: bytes,
        weights: bytes,
        upload_key: str | None = None,
        live: bool = True,
    ) -> UploadOutcome:
        """Validate fully, publish; `live` False stages it (stored, servable by pinning, not
        live). In the answer, `live` says whether this upload became the live version when it
        committed (False when staged, when a newer version was live already, or when a traffic
        split was set: `split`). With `upload_key`, an upload that committed under that key
        already is answered instead (`replayed`)."""
        try:
            return await self.upload_work.run(
                self._upload, manifest_bytes, weights, upload_key, live
            )
        except Exception:
            self.metrics.uploads.labels(result="refused").inc()
            raise

    async def upload_peft(
        self, peft: PeftUpload, upload_key: str | None = None, live: bool = True
    ) -> UploadOutcome:
        """A PEFT LoRA adapter, converted to an artifact, then uploaded like any other."""
        try:
            return await self.upload_work.run(self._upload_peft, peft, upload_key, live)
        except Exception:
            self.metrics.uploads.labels(result="refused").inc()
            raise

    def _upload_peft(self, peft: PeftUpload, upload_key: str | None, live: bool) -> UploadOutcome:
        return self._upload(*self.check.convert_peft(peft), upload_key, live)

    def _upload(
        self,
        manifest_bytes: bytes,
        weights: bytes,
        upload_key: str | None = None,
        live: bool = True,
    ) -> UploadOutcome:
        artifact = self.check(manifest_bytes, weights)
        task = artifact.manifest.task
        published = self.store.publish(
            task, manifest_bytes, weights, make_live=live, upload_key=upload_key
        )
        # Keep what was just validated: when this replica holds the task, the first request
        # after the swap is a hit, with no fetch or parse.
        key = (published.info.task, published.version)
        self.loader.preload(key, artifact.manifest, artifact.weights)
        if published.live:
            self.resolver.apply(
                LiveState(published.info.task, published.version, published.generation)
            )
        self.metrics.uploads.labels(result="accepted").inc()
        return UploadOutcome.of_published(published)

    async def list_tasks(self) -> list[TaskLive]:
        return await self.store_work.run(self._list)

    def _list(self) -> list[TaskLive]:
        states = (self.store.live_state(task) for task in self.store.tasks())
        return [  # skip tasks deleted meanwhile
            TaskLive(s.task, s.version, None if s.split is None else s.split.as_dict())
            for s in states
            if s.exists
        ]

    async def get(self, task: str) -> TaskDetail:
        return await self.store_work.run(self._get, task)

    def _get(self, task: str) -> TaskDetail:
        versions = self.store.versions(task)  # TaskNotFoundError when there are none
        state = self.store.live_state(task)
        live = state.version
        current = next((v for v in versions if v.version == live), versions[-1])
        return TaskDetail(
            task=task,
            live_version=live,
            versions=[AdapterVersion.of(v, v.version == live) for v in versions],
            label_names=current.manifest.get("label_names") or [],
            problem_type=current.manifest.get("problem_type"),
            text_pair=bool((current.manifest.get("tokenizer") or {}).get("text_pair")),
            resident_versions=self.loader.pool.resident_versions(task),
            host_versions=self.loader.host.versions(task),
            split=None if state.split is None else state.split.as_dict(),
        )

    async def live_version(self, task: str) -> int:
        """The live version this replica serves for `task` (UnknownTaskError when none)."""
        return await self.store_work.run(self.resolver.live_version, task)

    async def rollback(self, task: str, version: int | None = None) -> AdapterVersion:
        """Make `version` live; None: the version before the live one (see `set_live`). A
        traffic split ends in the same step."""
        return await self.store_work.run(self._rollback, task, version)

    def _rollback(self, task: str, version: int | None) -> AdapterVersion:
        state = self.store.set_live(task, version)
        self.resolver.apply(state)
        assert state.version is not None
        return AdapterVersion.of(self.store.version_info(task, state.version), live=True)

    async def delete(self, task: str) -> None:
        """Delete the task and all its versions (TaskNotFoundError when there is none)."""
        await self.store_work.run(self._delete, task)

    def _delete(self, task: str) -> None:
        self.resolver.apply(self.store.delete_task(task))
        self.router.deleted(task, None)

    async def delete_version(self, task: str, version: int) -> None:
        """Delete one version: never the live one while others remain, nor one in the traffic
        split (VersionConflictError); the last one takes the task with it."""
        await self.store_work.run(self._delete_version, task, version)

    def _delete_version(self, task: str, version: int) -> None:
        state = self.store.delete_version(task, version)
        if not state.exists:
            self.resolver.apply(state)
        self.router.deleted(task, version)

    async def store_reachable(self) -> bool:
        reachable = await self.store_work.run(self.store.ping)
        self.metrics.store_up.set(1 if reachable else 0)
        return reachable

    async def check_store(self) -> None:
        """Raises StoreUnavailableError when the store does not answer a ping."""
        if not await self.store_reachable():
            raise StoreUnavailableError("the adapter store is unreachable")
