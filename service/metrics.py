"""Prometheus metrics: every name in one place, task labels bounded."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
LOAD_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
OTHER_TASK = "_other"


class TaskLabels:
    """Task names to metric labels. Only a task shown to exist gets a label (`add`); after
    `limit` distinct tasks, new ones share _other. Names never added have no label (`get`)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def get(self, task: str) -> str | None:
        """The task's label if it has one, else None (never takes a label)."""
        with self._lock:
            return task if task in self._seen else None

    def add(self, task: str) -> str:
        """The label of a task that exists (one served or resolved a request)."""
        with self._lock:
            if task in self._seen:
                return task
            if len(self._seen) < self.limit:
                self._seen.add(task)
                return task
        return OTHER_TASK


class Metrics:
    """The service's metric families, registered on their own registry."""

    def __init__(self, max_task_labels: int = 50) -> None:
        r = self.registry = CollectorRegistry()
        ProcessCollector(registry=r)  # process_cpu_seconds_total, process_resident_memory_bytes
        self.task_label = TaskLabels(max_task_labels)
        self.requests = Counter(
            "unipelt_requests",
            "Predict requests by task and HTTP status",
            ["task", "status"],
            registry=r,
        )
        self.request_duration = Histogram(
            "unipelt_request_duration_seconds",
            "End-to-end predict latency",
            ["task"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_wait = Histogram(
            "unipelt_queue_wait_seconds",
            "Time a request waits for its batch",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.forward_duration = Histogram(
            "unipelt_forward_seconds",
            "Model forward time per batch",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "unipelt_batch_size", "Sequences per forward batch", buckets=BATCH_BUCKETS, registry=r
        )
        self.batch_tasks = Histogram(
            "unipelt_batch_tasks",
            "Distinct tasks per forward batch",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge("unipelt_queue_depth", "Sequences waiting", registry=r)
        self.resident_adapters = Gauge(
            "unipelt_resident_adapters", "Adapters resident in the slot pool", registry=r
        )
        self.resident_bytes = Gauge(
            "unipelt_resident_adapter_bytes", "Bytes of resident adapter weights", registry=r
        )
        self.cache_hits = Counter("unipelt_adapter_cache_hits", "Slot pool hits", registry=r)
        self.cache_misses = Counter("unipelt_adapter_cache_misses", "Slot pool misses", registry=r)
        self.cache_evictions = Counter(
            "unipelt_adapter_cache_evictions", "Adapters evicted from the pool", registry=r
        )
        self.adapter_load = Histogram(
            "unipelt_adapter_load_seconds",
            "Time from a cache miss to a servable adapter",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.adapter_load_by_source = Histogram(
            "unipelt_adapter_load_source_seconds",
            "Time from a bank miss to a servable adapter, by where it came from (host or store)",
            ["source"],
            buckets=LOAD_BUCKETS,
            registry=r,
        )
        self.host_adapters = Gauge(
            "unipelt_host_adapters", "Validated adapters held in the host tier", registry=r
        )
        self.host_bytes = Gauge(
            "unipelt_host_adapter_bytes", "Bytes of adapters held in the host tier", registry=r
        )
        self.pool_slots = Gauge("unipelt_pool_slots", "Slots of the device bank", registry=r)
        self.pool_free_slots = Gauge(
            "unipelt_pool_free_slots", "Device bank slots holding no adapter", registry=r
        )
        self.warm_loads = Counter(
            "unipelt_warm_loads",
            "Background loads of newly live versions, by result",
            ["result"],
            registry=r,
        )
        self.forward_cpu = Counter(
            "unipelt_forward_cpu_seconds",
            "CPU time of the forward thread (all of the forward's CPU with one torch thread)",
            registry=r,
        )
        self.uploads = Counter(
            "unipelt_adapter_uploads", "Adapter uploads by result", ["result"], registry=r
        )
        self.non_finite_outputs = Counter(
            "unipelt_non_finite_outputs",
            "Predict requests refused because the adapter gave NaN or Inf outputs",
            ["task"],
            registry=r,
        )
        self.store_up = Gauge("unipelt_store_up", "1 when the adapter store answers", registry=r)
        self.embedded_redis_restarts = Counter(
            "unipelt_embedded_redis_restarts",
            "Times the embedded redis-server died and was started again",
            registry=r,
        )


ADAPTER_INFO = "unipelt_lora_requests_info"
ADAPTER_INFO_LABELS = ("running_lora_adapters", "waiting_lora_adapters", "max_lora")
ADAPTER_INFO_DOC = "Adapters (tasks) resident and loading, in the inference extension's LoRA shape"


@dataclass(frozen=True)
class AdapterInfo:
    running: list[str]  # tasks resident in the bank, most recently used first
    waiting: list[str]  # tasks whose load into the bank is under way
    max_adapters: int  # bank slots


class AdapterInfoCollector(Collector):
    """`unipelt_lora_requests_info`: the Gateway API Inference Extension's LoRA adapter gauge
    (vLLM's `vllm:lora_requests_info`), task = adapter. Built at each scrape: one sample,
    comma-separated task lists as labels, the scrape time as its value. `read` returns None
    while the engine is not running (the family is then empty)."""

    def __init__(self, read: Callable[[], AdapterInfo | None]) -> None:
        self.read = read

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(ADAPTER_INFO, ADAPTER_INFO_DOC, labels=ADAPTER_INFO_LABELS)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(ADAPTER_INFO, ADAPTER_INFO_DOC, labels=ADAPTER_INFO_LABELS)
        info = self.read()
        if info is not None:
            labels = [",".join(info.running), ",".join(info.waiting), str(info.max_adapters)]
            family.add_metric(labels, time.time())
        yield family
