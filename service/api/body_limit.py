"""ASGI middleware that refuses request bodies over a size limit with 413, before parsing."""

from __future__ import annotations

import json
from collections.abc import Callable

UPLOAD_PATH = "/adapters"


class BodyLimitMiddleware:
    """`limit_for(path, method)` gives the byte limit; bigger bodies get 413 unread."""

    def __init__(self, app, limit_for: Callable[[str, str], int]) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope.get("path", ""), scope.get("method", "GET"))
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _send_413(send, limit)
            return
        state = {"received": 0, "exceeded": False, "started": False}

        async def limited_receive() -> dict:
            message = await receive()
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > limit:  # a chunked body without a length: stop it
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
            await _send_413(send, limit)


async def _send_413(send, limit: int) -> None:
    body = json.dumps(
        {"error": "request_too_large", "detail": f"request body exceeds {limit} bytes"}
    ).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})
