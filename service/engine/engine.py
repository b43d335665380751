"""The engine: one frozen backbone, a slot pool of adapters, a dynamic batcher, the store."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import torch

from adapters.artifact import Artifact, parse_artifact
from adapters.backbone import Backbone
from adapters.bank import BankSizes, TaskBank
from adapters.model import UniPELTModel
from adapters.plan import plan_batch
from adapters.tokenization import load_tokenizer
from service.engine.batcher import DynamicBatcher
from service.engine.checks import check_finite, check_pairing
from service.engine.encode import BatchEncoder
from service.engine.host_cache import HostCache
from service.engine.loader import AdapterLoader
from service.engine.pool import AdapterPool
from service.engine.registry import AdapterRegistry
from service.engine.resolver import AdapterResolver
from service.engine.runner import BatchRunner, Row, RowResult
from service.engine.sizing import plan_pool
from service.engine.warmer import Warmer
from service.errors import (
    AdapterTooLargeError,
    InvalidAdapterError,
)
from service.metrics import Metrics
from service.settings import Settings
from service.store.adapter_store import AdapterStore

log = logging.getLogger("unipelt.engine")
CANARY_TEXT = ("the quick brown fox jumps over the lazy dog", "a second segment")


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
        self.model = UniPELTModel(backbone).to(self.device, self.dtype).eval()
        self.sizes = BankSizes(
            lora_rank=settings.pool_max_lora_rank,
            bottleneck=settings.pool_max_bottleneck,
            prefix_length=settings.pool_max_prefix_length,
            num_labels=settings.pool_max_labels,
        )
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
        self.host_cache = HostCache(
            settings.host_cache_bytes, pin=self.device.type == "cuda", dtype=self.dtype
        )
        self.loader = AdapterLoader(store, self.pool, self.host_cache, backbone, metrics)
        self.resolver = AdapterResolver(store, self.loader, metrics, settings.live_cache_ttl_s)
        self.warmer = Warmer(self.loader, self.resolver.on_event, metrics, settings.warm_queue)
        metrics.pool_slots.set(self.plan.slots)
        log.info(
            "adapter pool: %d slots of %d bytes (UNIPELT_POOL_MAX_BYTES=%d); host tier %d bytes",
            self.plan.slots,
            self.plan.slot_bytes,
            self.plan.budget,
            settings.host_cache_bytes,
        )
        self.adapters = AdapterRegistry(
            store, self.resolver, self.loader, self.validate_upload, metrics
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
            self.runner.run,
            metrics,
            settings.max_batch_size,
            settings.batch_window_ms,
            settings.batch_policy,
            settings.max_queue,
        )
        offset = 2 if backbone.config.model_type in ("roberta", "xlm-roberta", "camembert") else 0
        self.position_limit = backbone.max_positions - offset

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
            "host_budget_bytes": self.host_cache.max_bytes,
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
                self.position_limit,
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

    # ---- adapters ------------------------------------------------------------------------
    def validate_upload(self, manifest_bytes: bytes, weights: bytes) -> Artifact:
        """Everything short of publishing: size, schema, backbone, tensors, limits, canary."""
        total = len(manifest_bytes) + len(weights)
        if total > self.settings.max_upload_bytes:
            raise AdapterTooLargeError(
                f"upload is {total} bytes; the limit is {self.settings.max_upload_bytes}"
            )
        artifact = parse_artifact(manifest_bytes, weights, self.backbone)
        self.check_fits_pool(artifact)
        if self.settings.canary_on_upload:
            self.canary(artifact)
        return artifact

    def check_fits_pool(self, artifact: Artifact) -> None:
        cfg, s = artifact.config, self.sizes
        limits = [
            ("lora_r", cfg.lora_r if cfg.lora else 0, s.lora_rank),
            ("bottleneck", cfg.bottleneck if cfg.adapter else 0, s.bottleneck),
            ("prefix_length", cfg.prefix_length if cfg.prefix else 0, s.prefix_length),
            ("labels", artifact.manifest.num_labels, s.num_labels),
        ]
        for name, value, limit in limits:
            if value > limit:
                raise InvalidAdapterError(
                    f"{name}={value} exceeds this server's limit of {limit} "
                    f"(UNIPELT_POOL_MAX_{name.upper().replace('_R', '_RANK')})"
                )
        # Within these limits an adapter fits a slot by construction (`sizing.plan_pool`).

    @torch.inference_mode()
    def canary(self, artifact: Artifact) -> None:
        """Run the adapter once on a fixed input; it must give finite outputs."""
        bank = TaskBank.from_tasks(
            [(artifact.config, artifact.weights)], self.backbone.dims, self.device, self.dtype
        )
        pair = CANARY_TEXT if artifact.manifest.tokenizer.text_pair else CANARY_TEXT[:1]
        enc = self.tokenizer(*[[t] for t in pair], return_tensors="pt")
        out = self.model(
            enc["input_ids"].to(self.device),
            enc["attention_mask"].to(self.device),
            bank,
            torch.zeros(1, dtype=torch.long, device=self.device),
            enc.get("token_type_ids").to(self.device) if "token_type_ids" in enc else None,
            plan=plan_batch(bank, [0], padded=False),  # host-side: no device read
        )
        if not torch.isfinite(out.logits).all():
            raise InvalidAdapterError("canary forward pass produced NaN or Inf outputs")

    def _evicted(self, resident) -> None:
        self.metrics.cache_evictions.inc()
        log.debug("evicted adapter %s v%s from slot %s", *resident.key, resident.slot)
