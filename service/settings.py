"""Every service setting, read from UNIPELT_* environment variables (REDIS_URL also works)."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from adapters import constants as C


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="UNIPELT_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    data_dir: Path = Path("data")
    redis_url: str | None = Field(
        None, validation_alias=AliasChoices("UNIPELT_REDIS_URL", "REDIS_URL")
    )
    redis_key_prefix: str = "unipelt:"
    blob_backend: Literal["redis", "filesystem"] = "redis"
    backbone: str | None = None  # None: the packaged MiniLM
    device: str = "cpu"
    # Backbone and adapter bank precision (artifacts of any float dtype are cast at slot write).
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    # CUDA only: most forwards captured as CUDA graphs, one per batch shape (0: run eagerly).
    cuda_graphs: int = Field(32, ge=0, le=1024)
    # CPU threads (`service/threads.py`): intra-op threads per forward, and forwards run side
    # by side; unset, one single-threaded forward worker per core (at most 4).
    torch_threads: int | None = Field(None, ge=1)
    forward_workers: int | None = Field(None, ge=1, le=64)
    # The forward in its own process (`forward_process.py`): "auto" on CPU when /dev/shm holds
    # the adapter bank and the backbone loads from a directory; "on" requires it; "off".
    forward_process: Literal["auto", "on", "off"] = "auto"

    # Connections (`unipelt serve`): a request's headers must arrive within header_timeout_s
    # of its connection or first byte; a body may pause at most body_timeout_s between
    # chunks; an idle keep-alive connection is closed after keep_alive_s.
    header_timeout_s: float = Field(10.0, gt=0)
    body_timeout_s: float = Field(30.0, gt=0)
    # A body must average this many bytes/s once body_timeout_s has passed (0: no minimum).
    min_body_rate: float = Field(16384.0, ge=0)
    keep_alive_s: int = Field(5, ge=1)

    api_token: SecretStr | None = None  # bearer token for write endpoints
    protect_reads: bool = False  # also require the token for reads
    # /metrics needs a token when reads are protected; this one opens /metrics only (scrapers)
    metrics_token: SecretStr | None = None

    # uvicorn's access log (`service/access_log.py`): "errors" leaves out predictions that got 200.
    access_log: Literal["all", "errors", "off"] = "errors"
    # FastAPI's native OpenTelemetry (spans and metrics to globally configured providers);
    # off, it costs nothing per request (the service's own metrics are Prometheus').
    otel: bool = False
    # The predict routes' lean path (`service/api/lean_predict.py`); False: FastAPI answers all.
    lean_predict: bool = True

    max_batch_size: int = Field(32, ge=1, le=1024)
    batch_window_ms: float = Field(5.0, ge=0, le=1000)
    batch_policy: Literal["mixed", "grouped"] = "mixed"
    max_queue: int = Field(2048, ge=1)
    max_inputs_per_request: int = Field(64, ge=1)
    max_fanout_rows: int = Field(256, ge=1)  # tasks x inputs in one POST /v1/predict
    max_text_chars: int = Field(20_000, ge=1)
    max_length: int = Field(128, ge=8, le=8192)  # tokens per input
    truncate: bool = False  # False: over-long inputs get 422; True: truncated

    # The device bank: as many slots as pool_max_bytes holds at the largest allowed sizes
    # (pool_slots caps it). CPU pages are touched only as slots fill.
    pool_max_bytes: int = Field(4 * 2**30, ge=1)
    pool_slots: int | None = Field(None, ge=1)
    # Host tier: validated adapters kept in host memory between the bank and the store.
    # None: derived at startup from the bank and the available memory (`sizing.size_host`).
    host_cache_bytes: int | None = Field(None, ge=0)
    # Background loads of new versions of tasks this replica holds (0 turns them off).
    warm_queue: int = Field(16, ge=0)
    pool_max_lora_rank: int = Field(C.BANK_LORA_RANK, ge=1)
    pool_max_bottleneck: int = Field(C.BANK_BOTTLENECK, ge=1)
    pool_max_prefix_length: int = Field(C.BANK_PREFIX_LENGTH, ge=1)
    pool_max_labels: int = Field(C.BANK_LABELS, ge=1)
    live_cache_ttl_s: float = Field(30.0, ge=0)
    # Threads for blocking store calls, and for converting and validating uploads (each
    # holds a whole artifact in memory): their own pools, never the default executor.
    store_workers: int = Field(4, ge=1, le=64)
    upload_workers: int = Field(2, ge=1, le=16)

    # The whole body of an upload request (both files and their multipart framing).
    max_upload_bytes: int = Field(64 * 2**20, ge=1)
    # Any body other than an upload; unset: room for the largest request the input limits allow.
    max_request_bytes: int | None = Field(None, ge=1024)

    @property
    def request_body_limit(self) -> int:
        if self.max_request_bytes is not None:
            return self.max_request_bytes
        # Every input at its character limit, 4 UTF-8 bytes each, twice (text and text pair).
        return self.max_inputs_per_request * self.max_text_chars * 8 + 64 * 1024

    # The console's average gates: one request in gate_sample_every of each task also
    # computes its gates (0: only requests that ask); a running mean over ~gate_window inputs.
    gate_sample_every: int = Field(8, ge=0)
    gate_window: int = Field(256, ge=1)

    canary_on_upload: bool = True
    max_task_labels: int = Field(50, ge=1)  # bound on distinct task labels in metrics

    # Fleet: this replica's name (the X-Unipelt-Replica response header, GET /residency), and
    # how many resident tasks the adapter-info gauge lists (most recently used first).
    replica_id: str = Field(
        default_factory=socket.gethostname, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,252}$"
    )
    adapter_info_max: int = Field(100, ge=1, le=1000)

    @classmethod
    def env_name(cls, field: str) -> str:
        """The environment variable that sets `field`."""
        if field not in cls.model_fields:
            raise KeyError(f"no setting {field!r}")
        return f"{cls.model_config['env_prefix']}{field.upper()}"
