"""The lean path: a well-formed predict request answered in front of FastAPI, in one ASGI
call, without its middleware stack, routing, dependency injection and response validation.

The predict routes are the service's hot path; on a CPU replica the framework's work per
request competes with the forward for the cores and for the interpreter. `ServiceApp` hands
POST `/v1/{task}/predict` and `/v1/{task}/versions/{v}/predict` to `PredictLane` before its
middleware stack runs. The lane answers the request itself when it is one the routes would
accept: a bearer token that passes (when reads are protected), a JSON object body within the
request limit that validates as `PredictRequest` (the same model, in the same Python mode),
one of each header it reads, an engine that is up. What the stack's middlewares do for such a
request the lane does too, in the same words: the replica header on every answer, the request
metrics (`record_predict`), errors while answering rendered by the same `response_for`.

Anything else (a refused token, an over-long or malformed body, a validation failure,
another content type, a client gone mid-body) goes to the whole app with what was read
replayed, so every refusal keeps its one shape, status and count.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from fastapi import FastAPI
from pydantic import ValidationError
from pydantic_core import from_json
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from adapters.constants import TASK_NAME_PATTERN
from service.access_log import skip_access_line
from service.api.body_limit import BodyLimit
from service.api.deps import check_token
from service.api.error_handlers import response_for
from service.api.predict_answer import answer_predict
from service.api.replica_header import REPLICA_HEADER
from service.api.request_metrics import record_predict
from service.api.schemas import STICKY_KEY_CHARS, PredictRequest
from service.engine.engine import Engine
from service.errors import UnauthorizedError
from service.metrics import Metrics
from service.settings import Settings

TASK = TASK_NAME_PATTERN.removeprefix("^").removesuffix("$")
PATH = re.compile(rf"^/v1/({TASK})(?:/versions/([1-9][0-9]{{0,17}}))?/predict$")
JSON_TYPES = (b"", b"application/json")
STICKY_HEADER = b"x-sticky-key"
READ_HEADERS = (b"content-type", b"authorization", STICKY_HEADER, b"content-length")


class PredictLane:
    """Answers the predict requests the routes would accept; `app` (the whole stack) the rest."""

    def __init__(
        self,
        app: ASGIApp,
        settings: Settings,
        metrics: Metrics,
        engine: Callable[[], Engine | None],
        limit: BodyLimit,
    ) -> None:
        self.app, self.settings, self.metrics, self.engine = app, settings, metrics, engine
        self.limit = limit
        self.replica = (REPLICA_HEADER, settings.replica_id.encode("latin-1"))
        self.log_answers = settings.access_log == "all"  # else uvicorn need not log a 200

    def match(self, scope: Scope) -> re.Match[str] | None:
        """The task (and version) of a request the lane may take, else None."""
        if scope["type"] != "http" or scope["method"] != "POST":
            return None
        return PATH.match(scope["path"])

    async def __call__(
        self, scope: Scope, receive: Receive, send: Send, match: re.Match[str]
    ) -> None:
        started = time.perf_counter()
        engine = self.engine()
        headers = _headers(scope)
        if engine is None or headers is None or not self._admits(headers):
            await self.app(scope, receive, send)
            return
        read: list[Message] = []
        body = await _read_body(receive, read, self.limit.max_bytes)
        request = None if body is None else _request(body, headers)
        if request is None:
            await self.app(scope, _replay(read, receive), send)
            return
        self.metrics.predicts_in_flight.inc()
        code = 500
        try:
            try:
                version = int(match.group(2)) if match.group(2) else None
                sticky = headers.get(STICKY_HEADER)
                answer = await answer_predict(
                    engine,
                    self.settings,
                    match.group(1),
                    request,
                    version,
                    None if sticky is None else sticky.decode("latin-1"),
                )
            except Exception as exc:  # rendered as the app's handlers render it
                response = response_for(exc, scope["path"])
                response.raw_headers.append(self.replica)
                code = response.status_code
                await response(scope, receive, send)
                return
            code = 200
            await self._send_json(send, answer.__pydantic_serializer__.to_json(answer))
        finally:
            self.metrics.predicts_in_flight.dec()
            record_predict(self.metrics, match.group(1), code, started)

    def _admits(self, headers: dict[bytes, bytes]) -> bool:
        """The token passes (as the route's `require_read`), the body's declared length is
        within the limit, the content type is JSON and the sticky key has a valid length."""
        if self.settings.protect_reads:
            try:
                check_token(self.settings, headers.get(b"authorization", b"").decode("latin-1"))
            except UnauthorizedError:
                return False
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or self.limit.declared_over(declared)):
            return False  # the body limit judges an odd or too large length
        content_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        sticky = headers.get(STICKY_HEADER)
        if sticky is not None and not 0 < len(sticky) <= STICKY_KEY_CHARS:
            return False
        return content_type in JSON_TYPES

    async def _send_json(self, send: Send, content: bytes) -> None:
        headers = [
            (b"content-length", str(len(content)).encode()),
            (b"content-type", b"application/json"),
            self.replica,
        ]
        if not self.log_answers:
            skip_access_line(send)
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": content})


class ServiceApp(FastAPI):
    """FastAPI with the predict lane in front of its middleware stack (`lane` None: off)."""

    lane: PredictLane | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        lane = self.lane
        match = None if lane is None else lane.match(scope)
        if lane is None or match is None:
            await super().__call__(scope, receive, send)
            return
        scope["app"] = self
        await lane(scope, receive, send, match)

    async def stack(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The whole app, middlewares and routes: where the lane hands a request it leaves."""
        await super().__call__(scope, receive, send)


def _request(body: bytes, headers: dict[bytes, bytes]) -> PredictRequest | None:
    """The body as the route would validate it, or None: let the route answer."""
    try:
        value = from_json(body)
    except ValueError:
        return None
    if not isinstance(value, dict):
        return None
    try:
        return PredictRequest.model_validate(value)
    except ValidationError:
        return None


def _headers(scope: Scope) -> dict[bytes, bytes] | None:
    """The request's headers by lowercase name; None when one the lane reads is repeated."""
    out: dict[bytes, bytes] = {}
    for name, value in scope.get("headers") or ():
        if name in out and name in READ_HEADERS:
            return None
        out[name] = value
    return out


async def _read_body(receive: Receive, read: list[Message], max_bytes: int) -> bytes | None:
    """The whole body, every message kept in `read`; None when the client went away or the
    body passed `max_bytes` (the app's body limit answers that)."""
    size = 0
    while True:
        message = await receive()
        read.append(message)
        if message["type"] != "http.request":
            return None
        size += len(message.get("body", b""))
        if size > max_bytes:
            return None
        if not message.get("more_body", False):
            return b"".join(m.get("body", b"") for m in read)


def _replay(read: list[Message], receive: Receive) -> Receive:
    """A receive that gives the messages already `read` again, then the connection's own."""
    pending = list(read)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed
