"""The lean path: a well-formed predict request answered without FastAPI's routing,
dependency injection and response-model validation.

The predict routes are the service's hot path; on a CPU replica the framework's work per
request (about half of the event loop's time) competes with the forward for the cores and
for the interpreter. This ASGI layer sits inside the other middlewares (the replica header,
metrics, early auth and the body limit still apply) and answers POST `/v1/{task}/predict`
and `/v1/{task}/versions/{v}/predict` itself when the request is one the routes would accept:
a JSON object body that validates as `PredictRequest` (the same model, in the same Python
mode), a valid task name and version, an engine that is up. Anything else (a malformed body, a
validation failure, another content type, an over-long header) is handed to the app with its
body replayed, so every refusal keeps its one shape and status. Errors while answering are
rendered by the same `response_for` the app's handlers use.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from pydantic import ValidationError
from pydantic_core import from_json

from adapters.constants import TASK_NAME_PATTERN
from service.api.deps import check_token
from service.api.error_handlers import response_for
from service.api.predict_answer import answer_predict
from service.api.schemas import STICKY_KEY_CHARS, PredictRequest
from service.engine.engine import Engine
from service.settings import Settings

TASK = TASK_NAME_PATTERN.removeprefix("^").removesuffix("$")
PATH = re.compile(rf"^/v1/({TASK})(?:/versions/([1-9][0-9]{{0,17}}))?/predict$")
JSON_TYPES = (b"", b"application/json")
STICKY_HEADER = b"x-sticky-key"

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class LeanPredictMiddleware:
    def __init__(self, app, settings: Settings, engine: Callable[[], Engine | None]) -> None:
        self.app, self.settings, self.engine = app, settings, engine

    async def __call__(self, scope, receive: Receive, send: Send) -> None:
        match = None
        if scope["type"] == "http" and scope["method"] == "POST":
            match = PATH.match(scope["path"])
        engine = self.engine() if match is not None else None
        if match is None or engine is None:
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        if headers is None:  # a repeated header the app's own parsing must judge
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        if body is None:  # the client went away
            return
        request = self._request(body, headers)
        if request is None:
            await self.app(scope, _replay(body, receive), send)
            return
        try:
            if self.settings.protect_reads:  # as the route's `require_read`
                check_token(self.settings, headers.get(b"authorization", b"").decode("latin-1"))
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
            await response_for(exc, scope["path"])(scope, receive, send)
            return
        await _send_json(send, answer.__pydantic_serializer__.to_json(answer))

    def _request(self, body: bytes, headers: dict[bytes, bytes]) -> PredictRequest | None:
        """The body as the route would validate it, or None: let the route answer."""
        content_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        sticky = headers.get(STICKY_HEADER)
        if content_type not in JSON_TYPES:
            return None
        if sticky is not None and not 0 < len(sticky) <= STICKY_KEY_CHARS:
            return None
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


def _headers(scope) -> dict[bytes, bytes] | None:
    """The request's headers by lowercase name; None when one the path reads is repeated."""
    out: dict[bytes, bytes] = {}
    for name, value in scope.get("headers") or ():
        if name in out and name in (b"content-type", b"authorization", STICKY_HEADER):
            return None
        out[name] = value
    return out


async def _read_body(receive: Receive) -> bytes | None:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that gives `body` once, then whatever the connection sends."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replayed


async def _send_json(send: Send, content: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-length", str(len(content)).encode()),
                (b"content-type", b"application/json"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": content})
