"""Adapter management behind one facade: upload, list, get, roll back, delete.

Routes parse a request, call one method here and map the result; they never see the store.
Every write applies its committed live state (with its generation) to this replica's resolver
at once; other replicas hear the store's events. Store errors propagate typed and become HTTP
statuses in the one error table (`service/errors.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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


@dataclass(frozen=True)
class AdapterVersion:
    """One stored version as the API shows it; `live` as of the operation that returned it."""

    task: str
    version: int
    sha256: str
    size_bytes: int
    uploaded_at: str
    live: bool
    method: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)

    @classmethod
    def of(cls, info: VersionInfo, live: bool) -> AdapterVersion:
        return cls(
            task=info.task,
            version=info.version,
            sha256=info.sha256,
            size_bytes=info.size_bytes,
            uploaded_at=info.uploaded_at,
            live=live,
            method=_method_name(info.manifest.get("method")),
            metrics=info.manifest.get("metrics") or {},
        )


@dataclass(frozen=True)
class UploadOutcome(AdapterVersion):
    """An upload's answer; `replayed`: the upload key had committed this version already
    (`live` then says whether it is live now)."""

    replayed: bool = False

    @classmethod
    def of_published(cls, published: Published) -> UploadOutcome:
        version = AdapterVersion.of(published.info, published.live)
        return cls(**{**version.__dict__, "replayed": published.replayed})


@dataclass(frozen=True)
class TaskLive:
    task: str
    live_version: int | None


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
    ) -> None:
        self.store, self.resolver, self.loader = store, resolver, loader
        self.check, self.metrics = check, metrics
        self.store_work, self.upload_work = store_work, upload_work

    async def upload(
        self, manifest_bytes: bytes, weights: bytes, upload_key: str | None = None
    ) -> UploadOutcome:
        """Validate fully, publish; `live` says whether this upload became the live version
        when it committed (False when a newer version was live already). With `upload_key`,
        an upload that committed under that key already is answered instead (`replayed`)."""
        try:
            return await self.upload_work.run(self._upload, manifest_bytes, weights, upload_key)
        except Exception:
            self.metrics.uploads.labels(result="refused").inc()
            raise

    async def upload_peft(self, peft: PeftUpload, upload_key: str | None = None) -> UploadOutcome:
        """A PEFT LoRA adapter, converted to an artifact, then uploaded like any other."""
        try:
            return await self.upload_work.run(self._upload_peft, peft, upload_key)
        except Exception:
            self.metrics.uploads.labels(result="refused").inc()
            raise

    def _upload_peft(self, peft: PeftUpload, upload_key: str | None) -> UploadOutcome:
        return self._upload(*self.check.convert_peft(peft), upload_key)

    def _upload(
        self, manifest_bytes: bytes, weights: bytes, upload_key: str | None
    ) -> UploadOutcome:
        artifact = self.check(manifest_bytes, weights)
        task = artifact.manifest.task
        published = self.store.publish(task, manifest_bytes, weights, upload_key=upload_key)
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
        return [TaskLive(s.task, s.version) for s in states if s.exists]  # skip deleted meanwhile

    async def get(self, task: str) -> TaskDetail:
        return await self.store_work.run(self._get, task)

    def _get(self, task: str) -> TaskDetail:
        versions = self.store.versions(task)  # TaskNotFoundError when there are none
        live = self.store.live_version(task)
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
        )

    async def live_version(self, task: str) -> int:
        """The live version this replica serves for `task` (UnknownTaskError when none)."""
        return await self.store_work.run(self.resolver.live_version, task)

    async def rollback(self, task: str, version: int | None = None) -> AdapterVersion:
        """Make `version` live; None: the version before the live one (see `set_live`)."""
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

    async def store_reachable(self) -> bool:
        reachable = await self.store_work.run(self.store.ping)
        self.metrics.store_up.set(1 if reachable else 0)
        return reachable

    async def check_store(self) -> None:
        """Raises StoreUnavailableError when the store does not answer a ping."""
        if not await self.store_reachable():
            raise StoreUnavailableError("the adapter store is unreachable")
