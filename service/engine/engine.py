"""The engine: one frozen backbone, a slot pool of adapters, a dynamic batcher, the store."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import torch

from adapters.backbone import Backbone
from adapters.bank import TaskBank
from adapters.model import UniPELTModel
from adapters.tokenization import load_tokenizer
from service.engine.inference.batcher import DynamicBatcher
from service.engine.inference.encode import BatchEncoder
from service.engine.inference.row_checks import check_finite, check_pairing
from service.engine.inference.runner import BatchRunner, Row, RowResult
from service.engine.lifecycle.host_tier import HostCache
from service.engine.lifecycle.loader import AdapterLoader
from service.engine.lifecycle.manager import AdapterRegistry
from service.engine.lifecycle.pool import AdapterPool
from service.engine.lifecycle.resolver import AdapterResolver
from service.engine.lifecycle.sizing import available_memory, plan_host, plan_pool
from service.engine.lifecycle.upload_checks import UploadCheck, bank_sizes
from service.engine.lifecycle.warmer import Warmer
from service.metrics import Metrics
from service.settings import Settings
from service.store.adapter_store import AdapterStore

log = logging.getLogger("unipelt.engine")


@dataclass(frozen=True)
class TextInput:
    text: str
    text_pair: str | None = None


@dataclass(frozen=True)
class Prediction:
    task: str
    version: int
    results: list[RowResult]


class Engine:
    def __init__(
        self, settings: Settings, backbone: Backbone, store: AdapterStore, metrics: Metrics
    ) -> None:
        self.settings, self.backbone, self.store, self.metrics = settings, backbone, store, metrics
        self.device = torch.device(settings.device)
        self.dtype = getattr(torch, settings.dtype)
        self.tokenizer = load_tokenizer(backbone.path)
        # A cast copy when the dtype differs: the caller's backbone is never changed.
        self.model = UniPELTModel(backbone.with_dtype(self.dtype)).to(self.device).eval()
        self.sizes = bank_sizes(settings)
        self.plan = plan_pool(
            settings.pool_max_bytes,
            backbone.dims,
            self.sizes,
            dtype=self.dtype,
            max_slots=settings.pool_slots,
        )
        self.bank = TaskBank.allocate(
            self.plan.slots, backbone.dims, self.sizes, self.device, self.dtype, lazy=True
        )
        self.pool = AdapterPool(self.bank, on_evict=self._evicted)
        self.host_plan = plan_host(
            settings.host_cache_bytes,
            self.plan.bank_bytes,
            bank_on_host=self.device.type == "cpu",
            available=available_memory(),
        )
        self.host_cache = HostCache(self.host_plan.budget, pin=self.device.type == "cuda")
        self.loader = AdapterLoader(store, self.pool, self.host_cache, backbone, metrics)
        self.resolver = AdapterResolver(store, self.loader, metrics, settings.live_cache_ttl_s)
        self.warmer = Warmer(self.loader, self.resolver.on_event, metrics, settings.warm_queue)
        metrics.pool_slots.set(self.plan.slots)
        log.info(
            "adapter pool: %d slots of %d bytes (UNIPELT_POOL_MAX_BYTES=%d); host tier %d "
            "bytes (%s)",
            self.plan.slots,
            self.plan.slot_bytes,
            self.plan.budget,
            self.host_plan.budget,
            self.host_plan.source,
        )
        self.check_upload = UploadCheck(
            settings, backbone, self.model, self.tokenizer, self.device, self.dtype
        )
        self.adapters = AdapterRegistry(
            store, self.resolver, self.loader, self.check_upload, metrics
        )
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
        )
        self.batcher = DynamicBatcher(
            self.runner.prepare,
            self.runner.execute,
            metrics,
            settings.max_batch_size,
            settings.batch_window_ms,
            settings.batch_policy,
            settings.max_queue,
        )

    def start(self) -> None:
        self.batcher.start()
        self.warmer.start()

    async def stop(self) -> None:
        self.warmer.stop()
        await self.batcher.drain_and_stop()

    def pool_status(self) -> dict:
        """The bank plan and what the tiers hold now (for /readyz)."""
        return {
            **self.plan.describe(),
            "resident": len(self.pool),
            "host_adapters": len(self.host_cache),
            "host_bytes": self.host_cache.nbytes,
            **self.host_plan.describe(),
        }

    # ---- predict -------------------------------------------------------------------------
    async def predict(self, task: str, inputs: list[TextInput], want_gates: bool) -> Prediction:
        resident = self.resolver.acquire_cached(task)  # a hit needs no thread hop
        if resident is None:
            resident = await asyncio.to_thread(self.resolver.acquire, task)
        try:
            manifest = resident.manifest
            check_pairing(task, [i.text_pair for i in inputs], manifest.tokenizer.text_pair)
            max_length = min(
                self.settings.max_length,
                manifest.tokenizer.max_length,
                self.backbone.max_tokens,
            )
            rows = [
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
            results = await self.batcher.submit(rows)
            check_finite(task, resident.key[1], results, self.metrics)
        finally:
            self.resolver.release(resident)
        return Prediction(task=task, version=resident.key[1], results=results)

    def _evicted(self, resident) -> None:
        self.metrics.cache_evictions.inc()
        log.debug("evicted adapter %s v%s from slot %s", *resident.key, resident.slot)
        self.loader.evicted(resident)
