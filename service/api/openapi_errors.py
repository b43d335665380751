"""Which errors each operation can answer, with one example body per error kind.

The statuses come from the one error table (`service/errors.py`); this module only says which
kinds each operation can meet, so that the OpenAPI document lists every one of them.
"""

from __future__ import annotations

from dataclasses import dataclass

from service.errors import ERROR_TABLE, HTTP_KINDS, INTERNAL

# Every error kind and its status: the service's table plus the HTTP layer's own.
KIND_STATUS: dict[str, int] = {
    **{entry.kind: entry.status for entry in ERROR_TABLE.values()},
    **{kind: status for status, kind in HTTP_KINDS.items()},
    INTERNAL.kind: INTERNAL.status,
}

# What a `detail` looks like for each kind (the texts the service writes).
EXAMPLE_DETAIL: dict[str, str] = {
    "bad_request": "the multipart body does not parse: missing boundary",
    "unauthorized": "a valid bearer token is required (Authorization: Bearer ...)",
    "unknown_task": "no adapter is uploaded for task 'nope'",
    "unknown_version": "task 'sst2' has no version 7",
    "not_found": "Not Found",
    "method_not_allowed": "Method Not Allowed",
    "version_conflict": "a concurrent change to task 'sst2' won; retry",
    "adapter_too_large": "upload exceeds 67108864 bytes",
    "request_too_large": "request body exceeds 10551296 bytes",
    "invalid_input": "body.inputs: text must not be empty or only whitespace",
    "input_too_long": "input 0 has 311 tokens; the limit is 128 (UNIPELT_TRUNCATE=true truncates)",
    "invalid_adapter": "weights: tensor 'layers.0.lora_q.A' has shape [6, 384], expected [8, 384]",
    "invalid_traffic": "weights sum to 99, not 100",
    "backbone_mismatch": "the artifact was trained on another backbone (fingerprint differs)",
    "overloaded": "the queue holds 2048 sequences; retry after Retry-After seconds",
    "corrupt_adapter": "stored weights of sst2 v3 fail their sha256",
    "non_finite_output": "task 'sst2' version 3 gave NaN or Inf for input 0",
    "internal": "internal server error",
    "store_unavailable": "the adapter store is unreachable",
    "not_ready": "the engine is still starting",
    "shutting_down": "the service is shutting down",
    "forward_unavailable": "the forward process stopped; it is restarting",
    # The Open Inference Protocol routes' own kind for a request that breaks the protocol.
    "invalid_request": "request must be a JSON object with an 'inputs' list",
}

# Kinds every route can meet, or every route of a kind.
ANY = ("internal",)
ENGINE = ("not_ready",)  # the route needs the engine, which may still be starting
STORE = ("store_unavailable",)
AUTH = ("unauthorized",)  # writes always; reads only with UNIPELT_PROTECT_READS=true
JSON_BODY = ("invalid_input", "request_too_large")
TASK = ("invalid_input", "unknown_task")  # a task name in the path
RESOLVE = ("unknown_task", "overloaded", "corrupt_adapter", "store_unavailable")  # live adapter
SERVE = (
    *RESOLVE,
    "invalid_input",
    "input_too_long",
    "non_finite_output",
    "shutting_down",
    "forward_unavailable",
)
UPLOAD = (
    "bad_request",
    "version_conflict",
    "adapter_too_large",
    "invalid_input",
    "invalid_adapter",
    "backbone_mismatch",
)


@dataclass(frozen=True)
class Errors:
    """An operation's error kinds: `plain` answered as {"error", "detail"}, `protocol` as the
    Open Inference Protocol's {"error": "<kind>: <detail>"} (everything under /v2: the routes'
    own errors and those of their middlewares, dependencies and path checks)."""

    plain: tuple[str, ...] = ()
    protocol: tuple[str, ...] = ()


V2_REQUEST = (*AUTH, "request_too_large", "invalid_input", *ENGINE, "invalid_request")
V2_INFER = Errors(protocol=(*V2_REQUEST, *SERVE, "unknown_version", *ANY))
V2_MODEL = Errors(protocol=(*AUTH, "invalid_input", *ENGINE, *RESOLVE, *ANY))
V2_OPEN = Errors(protocol=ANY)

OPERATION_ERRORS: dict[tuple[str, str], Errors] = {
    ("GET", "/healthz"): Errors(),
    ("GET", "/readyz"): Errors((*ENGINE, *STORE)),
    ("GET", "/metrics"): Errors(AUTH),  # with UNIPELT_PROTECT_READS or UNIPELT_METRICS_TOKEN
    ("GET", "/residency"): Errors((*AUTH, *ENGINE)),
    ("POST", "/v1/{task}/predict"): Errors((*AUTH, *JSON_BODY, *SERVE)),
    ("POST", "/v1/{task}/versions/{version}/predict"): Errors(
        (*AUTH, *JSON_BODY, *SERVE, "unknown_version")
    ),
    ("POST", "/v1/predict"): Errors((*AUTH, *JSON_BODY, *SERVE, "unknown_version")),
    ("PUT", "/adapters"): Errors((*AUTH, *UPLOAD, *ENGINE, *STORE)),
    ("GET", "/adapters"): Errors((*AUTH, *ENGINE, *STORE)),
    ("GET", "/adapters/{task}"): Errors((*AUTH, *TASK, *ENGINE, *STORE)),
    ("GET", "/adapters/{task}/gates"): Errors((*AUTH, *TASK, *ENGINE, *STORE)),
    ("POST", "/adapters/{task}/rollback"): Errors(
        (*AUTH, *TASK, *JSON_BODY, "unknown_version", *ENGINE, *STORE)
    ),
    ("DELETE", "/adapters/{task}"): Errors((*AUTH, *TASK, *ENGINE, *STORE)),
    ("DELETE", "/adapters/{task}/versions/{version}"): Errors(
        (*AUTH, *TASK, "unknown_version", "version_conflict", *ENGINE, *STORE)
    ),
    ("GET", "/adapters/{task}/traffic"): Errors((*AUTH, *TASK, *ENGINE, *STORE)),
    ("PUT", "/adapters/{task}/traffic"): Errors(
        (*AUTH, *TASK, *JSON_BODY, "invalid_traffic", "version_conflict", *ENGINE, *STORE)
    ),
    ("POST", "/adapters/{task}/promote"): Errors(
        (*AUTH, *TASK, *JSON_BODY, "unknown_version", "version_conflict", *ENGINE, *STORE)
    ),
    ("POST", "/adapters/{task}/abort"): Errors((*AUTH, *TASK, *ENGINE, *STORE)),
    ("GET", "/v2"): V2_OPEN,
    ("GET", "/v2/health/live"): V2_OPEN,
    ("GET", "/v2/health/ready"): V2_OPEN,  # 503 is {"ready": false}, not an error body
    ("GET", "/v2/models/{task}"): V2_MODEL,
    ("GET", "/v2/models/{task}/ready"): V2_MODEL,
    ("POST", "/v2/models/{task}/infer"): V2_INFER,
    ("POST", "/v2/models/{task}/versions/{version}/infer"): V2_INFER,
}


@dataclass(frozen=True)
class DocumentedError:
    kind: str
    status: int
    protocol: bool  # the Open Inference Protocol's shape

    @property
    def name(self) -> str:
        return f"{self.kind} (protocol)" if self.protocol else self.kind

    def body(self) -> dict[str, str]:
        detail = EXAMPLE_DETAIL[self.kind]
        if self.protocol:
            return {"error": f"{self.kind}: {detail}"}
        return {"error": self.kind, "detail": detail}


def status_of_kind(kind: str) -> int:
    """The status of an error kind; the protocol's `invalid_request` is a 400."""
    return 400 if kind == "invalid_request" else KIND_STATUS[kind]


def errors_of(method: str, path: str) -> dict[int, list[DocumentedError]]:
    """The errors an operation can answer, by status. An operation missing from the table
    gets only `internal` (the docs still load; a test requires every one to be listed)."""
    errors = OPERATION_ERRORS.get((method, path), Errors())
    plain = errors.plain if errors.protocol else (*errors.plain, *ANY)  # /v2: all protocol
    listed = [(k, False) for k in plain] + [(k, True) for k in errors.protocol]
    out: dict[int, list[DocumentedError]] = {}
    for kind, protocol in dict.fromkeys(listed):
        error = DocumentedError(kind, status_of_kind(kind), protocol)
        out.setdefault(error.status, []).append(error)
    return dict(sorted(out.items()))
