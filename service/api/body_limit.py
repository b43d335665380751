"""ASGI middleware that refuses request bodies over a size limit with 413, before parsing.

This is the one place request sizes are checked, uploads included: `limit_for` names each
route's limit and the error that reports it. Bodies with a Content-Length over the limit are
refused unread; chunked bodies are cut off as soon as they pass it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from service.api.error_handlers import response_for
from service.errors import ServiceError


@dataclass(frozen=True)
class BodyLimit:
    max_bytes: int
    error: Callable[[str], ServiceError]
    what: str = "request body"

    def declared_over(self, declared: bytes | None) -> bool:
        """A Content-Length header value that declares more than the limit."""
        return declared is not None and declared.isdigit() and int(declared) > self.max_bytes

    def refusal(self) -> ServiceError:
        return self.error(f"{self.what} exceeds {self.max_bytes} bytes")


class BodyLimitMiddleware:
    """`limit_for(path, method)` gives the limit; bigger bodies get its 413 unread."""

    def __init__(self, app, limit_for: Callable[[str, str], BodyLimit]) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope.get("path", ""), scope.get("method", "GET"))
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if limit.declared_over(declared):
            await response_for(limit.refusal(), scope.get("path", ""))(scope, receive, send)
            return
        state = {"received": 0, "exceeded": False, "started": False}

        async def limited_receive() -> dict:
            message = await receive()
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > limit.max_bytes:  # a chunked body: stop it
                    state["exceeded"] = True
                    return {"type": "http.request", "body": b"", "more_body": False}
            return message

        async def guarded_send(message: dict) -> None:
            if state["exceeded"]:
                return  # the app's answer to a cut body is replaced by the 413 below
            state["started"] = True
            await send(message)

        await self.app(scope, limited_receive, guarded_send)
        if state["exceeded"] and not state["started"]:
            await response_for(limit.refusal(), scope.get("path", ""))(scope, receive, send)
