"""Prometheus metrics: every name in one place, task and version labels bounded."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
LOAD_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
GATE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
OTHER_TASK = "_other"
OTHER_VERSION = "_other"
OTHER_LABEL = "_other"
VERSION_LABELS_PER_TASK = 8  # more than live + the largest split, so routed ones always fit
PREDICTED_LABELS_PER_TASK = 20  # a task's first 20 label names (head order); the rest: _other


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


class VersionLabels:
    """Version numbers to metric labels, per task. A version that is routable when it serves
    (live, or in the split) gets its own label; the `limit` most recently routable versions
    of a task keep theirs (so a version just promoted away or aborted stays comparable), an
    older one loses it and its series are removed (`on_drop`); any other version, such as a
    pin on an old one, is counted as _other."""

    def __init__(self, limit: int, on_drop: Callable[[str, str], None]) -> None:
        self.limit = limit
        self.on_drop = on_drop
        self._labelled: dict[str, OrderedDict[int, None]] = {}
        self._lock = threading.Lock()

    def label(self, task_label: str, version: int, routable: bool) -> str:
        dropped: list[int] = []
        with self._lock:
            versions = self._labelled.setdefault(task_label, OrderedDict())
            if routable:
                versions[version] = None
                versions.move_to_end(version)
                while len(versions) > self.limit:
                    dropped.append(versions.popitem(last=False)[0])
            name = str(version) if version in versions else OTHER_VERSION
        for old in dropped:
            self.on_drop(task_label, str(old))
        return name


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
        self.predicts_in_flight = Gauge(
            "unipelt_predict_requests_in_flight",
            "v1 predict requests received and not yet answered",
            registry=r,
        )
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
            "CPU time of the forward threads, in this process or the forward process (all of "
            "the forward's CPU with one intra-op thread)",
            registry=r,
        )
        self.forward_process_restarts = Counter(
            "unipelt_forward_process_restarts",
            "Times the forward process stopped and a new one was started",
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
        # Per version (routed or pinned): labels from `version_label`.
        self.version_label = VersionLabels(VERSION_LABELS_PER_TASK, self._drop_version)
        self.version_requests = Counter(
            "unipelt_version_requests",
            "Predictions asked of each task version, by the status the version's part got",
            ["task", "version", "status"],
            registry=r,
        )
        self.version_duration = Histogram(
            "unipelt_version_request_duration_seconds",
            "Time from a version's rows entering the batcher to their predictions",
            ["task", "version"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.version_predictions = Counter(
            "unipelt_version_predictions",
            "Predicted labels of each task version (one per input; classification only)",
            ["task", "version", "label"],
            registry=r,
        )
        self.version_gates = Histogram(
            "unipelt_version_gate_value",
            "Gate values of each gated task version (one per input and gate, mean over layers)",
            ["task", "version", "gate"],
            buckets=GATE_BUCKETS,
            registry=r,
        )

    def _drop_version(self, task: str, version: str) -> None:
        for family in (
            self.version_requests,
            self.version_duration,
            self.version_predictions,
            self.version_gates,
        ):
            family.remove_by_labels({"task": task, "version": version})


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
