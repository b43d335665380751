"""The engine: one frozen backbone, a slot pool of adapters, a dynamic batcher, the store."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from concurrent.futures import Future
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace

import torch

from adapters.backbone import Backbone
from adapters.bank import TaskBank
from adapters.manifest import Manifest
from adapters.model import UniPELTModel
from adapters.tokenization import load_tokenizer
from service.engine.inference.batcher import DynamicBatcher
from service.engine.inference.encode import BatchEncoder
from service.engine.inference.forward_process import ChildSpec, ForwardProcess, refusals
from service.engine.inference.gate_record import GateRecord
from service.engine.inference.row_checks import check_finite, check_pairing
from service.engine.inference.runner import BatchRunner, Row, RowResult
from service.engine.inference.shared_bank import (
    SHM,
    SharedBank,
    bank_bytes,
    share_bank,
    shared_dir,
    sweep_stale,
)
from service.engine.lifecycle.manager import AdapterManager
from service.engine.lifecycle.pool import Resident
from service.engine.lifecycle.residency import Residency, snapshot
from service.engine.lifecycle.rollout import Rollouts
from service.engine.lifecycle.routing import Route, Target
from service.engine.lifecycle.sizing import available_memory, size_host, size_pool
from service.engine.lifecycle.tiers import build_tiers
from service.engine.lifecycle.upload_checks import UploadCheck, bank_sizes
from service.engine.lifecycle.warmer import Warmer
from service.engine.version_signals import VersionSignals
from service.engine.workers import WorkerPool
from service.errors import ForwardUnavailableError
from service.metrics import Metrics
from service.settings import Settings
from service.store.adapter_store import AdapterStore
from service.threads import apply_thread_policy, choose_thread_policy

log = logging.getLogger("unipelt.engine")


@dataclass(frozen=True)
class TextInput:
    text: str
    text_pair: str | None = None


@dataclass(frozen=True)
class Prediction:
    """One task's answer; `manifest` is the one of the version that computed `results`."""

    task: str
    version: int
    manifest: Manifest
    results: list[RowResult]


class Engine:
    def __init__(
        self, settings: Settings, backbone: Backbone, store: AdapterStore, metrics: Metrics
    ) -> None:
        self.settings, self.backbone, self.store, self.metrics = settings, backbone, store, metrics
        self.device = torch.device(settings.device)
        self.max_tokens = backbone.max_tokens  # read once: a module attribute lookup per row
        self.threads = choose_thread_policy(
            settings.device, settings.torch_threads, settings.forward_workers
        )
        self._threads_before: int | None = None
        self.dtype = getattr(torch, settings.dtype)
        self.tokenizer = load_tokenizer(backbone.path)
        # A cast copy when the dtype differs: the caller's backbone is never changed.
        self.model = UniPELTModel(backbone.with_dtype(self.dtype)).to(self.device).eval()
        self.sizes = bank_sizes(settings)
        self.pool_size = size_pool(
            settings.pool_max_bytes,
            backbone.dims,
            self.sizes,
            dtype=self.dtype,
            max_slots=settings.pool_slots,
        )
        self.bank = TaskBank.allocate(
            self.pool_size.slots, backbone.dims, self.sizes, self.device, self.dtype, lazy=True
        )
        self.forward, self.shared_bank = self._forward_process(settings, backbone)
        self.host_size = size_host(
            settings.host_cache_bytes,
            self.pool_size.bank_bytes,
            bank_on_host=self.device.type == "cpu",
            available=available_memory(),
        )
        self.tiers = build_tiers(
            store,
            backbone,
            metrics,
            self.bank,
            self.host_size.budget,
            pin_host=self.device.type == "cuda",
            live_cache_ttl_s=settings.live_cache_ttl_s,
        )
        self.pool, self.host_cache = self.tiers.pool, self.tiers.host
        self.loader, self.resolver = self.tiers.loader, self.tiers.resolver
        self.store_work = WorkerPool("store", settings.store_workers)
        self.upload_work = WorkerPool("upload", settings.upload_workers)
        self.router = self.tiers.router
        self.signals = VersionSignals(metrics, self.router.routable)
        self.warmer = Warmer(self.loader, self.router.on_event, metrics, settings.warm_queue)
        metrics.pool_slots.set(self.pool_size.slots)
        metrics.pool_free_slots.set(self.pool_size.slots)
        log.info(
            "adapter pool: %d slots of %d bytes (UNIPELT_POOL_MAX_BYTES=%d); host tier %d "
            "bytes (%s)",
            self.pool_size.slots,
            self.pool_size.slot_bytes,
            self.pool_size.budget,
            self.host_size.budget,
            self.host_size.source,
        )
        self.check_upload = UploadCheck(
            settings, backbone, self.model, self.tokenizer, self.device, self.dtype
        )
        self.adapters = AdapterManager(
            store,
            self.resolver,
            self.loader,
            self.check_upload,
            metrics,
            store_work=self.store_work,
            upload_work=self.upload_work,
            router=self.router,
        )
        self.rollouts = Rollouts(store, self.resolver, self.store_work)
        self.gate_record = GateRecord(settings.gate_window, settings.gate_sample_every)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        encoder = BatchEncoder(self.tokenizer, settings.truncate)
        self.runner = BatchRunner(
            self.model,
            self.bank,
            encoder,
            pad,
            self.device,
            max_graphs=settings.cuda_graphs,
            max_rows=settings.max_batch_size,
            remote=self.forward,
            on_remote_cpu=metrics.forward_cpu.inc,
        )
        self.batcher = DynamicBatcher(
            self.runner.prepare,
            self.runner.execute,
            metrics,
            settings.max_batch_size,
            settings.batch_window_ms,
            settings.batch_policy,
            settings.max_queue,
            forward_workers=self.threads.forward_workers,
        )

    def start(self) -> None:
        """Apply the thread policy (undone by `stop`) and start the batcher and warmer."""
        self._threads_before = apply_thread_policy(self.threads)
        log.info("threads: %s", self.threads.describe())
        if self.forward is not None:
            try:
                self.forward.start()
            except ForwardUnavailableError as exc:
                if self.settings.forward_process == "on":
                    raise
                log.warning("forward process unavailable (%s): the forward runs here", exc)
                self._drop_forward_process()
        self.batcher.start()
        self.warmer.start()

    async def stop(self) -> None:
        self.warmer.stop()
        await self.batcher.drain_and_stop()
        self.store_work.shutdown()
        self.upload_work.shutdown()
        self._drop_forward_process()
        if self._threads_before is not None:
            torch.set_num_threads(self._threads_before)

    def _forward_process(
        self, settings: Settings, backbone: Backbone
    ) -> tuple[ForwardProcess | None, SharedBank | None]:
        """The forward process and the shared bank it maps, when the settings and the
        machine allow it (`forward_process.py`); else (None, None): the forward runs here."""
        wanted = settings.forward_process
        if wanted == "off":
            return None, None
        reasons = refusals(self.device.type, backbone.path, bank_bytes(self.bank), SHM)
        if reasons:
            if wanted == "on":
                raise ForwardUnavailableError("UNIPELT_FORWARD_PROCESS=on: " + "; ".join(reasons))
            log.info("forward runs in this process: %s", "; ".join(reasons))
            return None, None
        sweep_stale(SHM)
        shared = share_bank(self.bank, shared_dir(SHM))
        spec = ChildSpec(
            str(backbone.path),
            backbone.fingerprint,
            settings.dtype,
            shared,
            self.threads.forward_workers,
            self.threads.intra_op,
        )
        return ForwardProcess(spec, self.metrics.forward_process_restarts.inc), shared

    def _drop_forward_process(self) -> None:
        """Stop the forward process and free its shared bank files; the forward runs here."""
        if self.forward is not None:
            self.forward.stop()
            self.forward = self.runner.remote = None
        if self.shared_bank is not None:
            self.shared_bank.remove()
            self.shared_bank = None

    def pool_status(self) -> dict:
        """The bank plan and what the tiers hold now (for /readyz)."""
        return {
            **self.pool_size.describe(),
            "resident": len(self.pool),
            "host_adapters": len(self.host_cache),
            "host_bytes": self.host_cache.nbytes,
            **self.host_size.describe(),
        }

    def residency(self) -> Residency:
        """The tasks this replica holds, by tier, and its free slots and queue (routers)."""
        return snapshot(
            self.settings.replica_id, self.pool, self.host_cache, self.loader, self.batcher.depth
        )

    # ---- predict: the one way in ----------------------------------------------------------
    @asynccontextmanager
    async def pinned(
        self, targets: Sequence[str | Target], sticky_key: str | None = None
    ) -> AsyncIterator[list[Resident]]:
        """Each target's adapter, pinned for the block (released on the way out): a pinned
        version as asked, else the version the task's routing chooses, once per target (live,
        or drawn from the split, or by `sticky_key`; `routing.py`).

        Everything read inside the block (manifest, version, predictions) comes from these
        residents, so a hot swap meanwhile cannot mix two versions in one answer. Cached
        residents are pinned on the event loop; only misses go to a thread of the store's
        own pool, all in one hop. An unknown task or version refuses the whole call, before
        any forward."""
        residents = await self._pin(targets, sticky_key)
        try:
            yield residents
        finally:
            self._release_all(residents)

    async def _pin(self, targets: Sequence[str | Target], sticky_key: str | None) -> list[Resident]:
        """`pinned`'s residents, acquired; the caller releases them (`_release_all`)."""
        wanted = [t if isinstance(t, Target) else Target(t) for t in targets]
        routes = [self.router.route_cached(t, sticky_key) for t in wanted]
        held = [None if r is None else self.router.acquire_cached(r) for r in routes]
        missing = [i for i, r in enumerate(held) if r is None]
        try:
            if missing:
                asks = [(wanted[i], routes[i]) for i in missing]
                loaded = await self._acquire_off_loop(asks, sticky_key)
                for i, resident in zip(missing, loaded, strict=True):
                    held[i] = resident
        except BaseException:
            self._release_all(r for r in held if r is not None)
            raise
        return [r for r in held if r is not None]

    async def predict_pinned(
        self, residents: Sequence[Resident], inputs: list[TextInput], want_gates: bool
    ) -> list[Prediction]:
        """Every input through every pinned adapter, in one batcher submission (so the rows
        share mixed batches); one prediction per adapter, in order. Each version's outcome
        is counted for it (`version_signals.py`)."""
        pairs = [item.text_pair for item in inputs]
        for resident in residents:
            try:
                check_pairing(resident.key[0], pairs, resident.manifest.tokenizer.text_pair)
            except Exception as exc:
                self.signals.failed(resident, exc)
                raise
        # Gates are computed when asked for, and for the gate record's sampled requests.
        recorded = [want_gates or self.gate_record.due(*r.key) for r in residents]
        rows = [row for r, g in zip(residents, recorded) for row in self._rows(r, inputs, g)]
        started = time.perf_counter()
        try:
            results = await self.batcher.submit(rows)
        except Exception as exc:
            for resident in residents:
                self.signals.failed(resident, exc)
            raise
        seconds = time.perf_counter() - started
        predictions, refused = [], None
        for n, resident in enumerate(residents):
            (task, version), mine = resident.key, results[n * len(inputs) : (n + 1) * len(inputs)]
            try:
                check_finite(task, version, mine, self.metrics)
            except Exception as exc:
                self.signals.failed(resident, exc)
                refused = refused or exc
                continue
            self.signals.served(resident, mine, seconds)  # gates: of the sampled requests
            if recorded[n]:
                mine = self._record_gates(task, version, mine, want_gates)
            predictions.append(Prediction(task, version, resident.manifest, mine))
        if refused is not None:
            raise refused
        return predictions

    async def predict(
        self,
        task: str,
        inputs: list[TextInput],
        want_gates: bool,
        version: int | None = None,
        sticky_key: str | None = None,
    ) -> Prediction:
        """The task's routed adapter (or the pinned `version`) on every input. (`pinned`'s
        steps written out: the hot path, one context manager's frames fewer.)"""
        residents = await self._pin([Target(task, version)], sticky_key)
        try:
            (prediction,) = await self.predict_pinned(residents, inputs, want_gates)
        finally:
            self._release_all(residents)
        return prediction

    async def predict_tasks(
        self,
        targets: Sequence[str | Target],
        inputs: list[TextInput],
        want_gates: bool,
        sticky_key: str | None = None,
    ) -> list[Prediction]:
        """Each target's prediction for every input, in order, from one set of pins."""
        async with self.pinned(targets, sticky_key) as residents:
            return await self.predict_pinned(residents, inputs, want_gates)

    async def live_manifest(self, task: str) -> tuple[int, Manifest]:
        """The version the task's routing gives and its manifest, read from one pinned
        resident (loads the adapter if this replica lacks it)."""
        async with self.pinned([task]) as (resident,):
            return resident.key[1], resident.manifest

    def _rows(self, resident: Resident, inputs: list[TextInput], want_gates: bool) -> list[Row]:
        task, manifest = resident.key[0], resident.manifest
        max_length = min(self.settings.max_length, manifest.tokenizer.max_length, self.max_tokens)
        return [
            Row(
                text=item.text,
                text_pair=item.text_pair,
                max_length=max_length,
                index=index,
                task=task,
                resident=resident,
                want_gates=want_gates,
            )
            for index, item in enumerate(inputs)
        ]

    def _record_gates(
        self, task: str, version: int, results: list[RowResult], returned: bool
    ) -> list[RowResult]:
        """Fold the rows' gates into the task's record; drop them unless they were asked for."""
        self.gate_record.add(task, version, [r.gates for r in results])
        return results if returned else [replace(r, gates=None) for r in results]

    async def _acquire_off_loop(
        self, asks: Sequence[tuple[Target, Route | None]], sticky_key: str | None
    ) -> list[Resident]:
        """`_acquire_all` on the store's pool. A request cancelled meanwhile (a client that
        hangs up during a load) cannot stop the thread: whatever it pins is released when it
        finishes, so no slot stays pinned by a request that is gone."""
        future = self.store_work.submit(self._acquire_all, asks, sticky_key)
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            future.add_done_callback(self._release_abandoned)
            raise

    def _release_abandoned(self, future: Future[list[Resident]]) -> None:
        if not future.cancelled() and future.exception() is None:
            self._release_all(future.result())

    def _acquire_all(
        self, asks: Sequence[tuple[Target, Route | None]], sticky_key: str | None
    ) -> list[Resident]:
        """Pin every target's adapter, or none (a failure releases what was pinned)."""
        held: list[Resident] = []
        try:
            for target, route in asks:
                held.append(self.router.acquire(target, route, sticky_key))
        except BaseException:
            self._release_all(held)
            raise
        return held

    def _release_all(self, residents: Iterable[Resident]) -> None:
        for resident in residents:
            self.router.release(resident)
