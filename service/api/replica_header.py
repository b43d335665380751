"""ASGI middleware naming the answering replica in every response (`X-Unipelt-Replica`)."""

from __future__ import annotations

REPLICA_HEADER = b"x-unipelt-replica"


class ReplicaHeaderMiddleware:
    def __init__(self, app, replica_id: str) -> None:
        self.app = app
        self.header = (REPLICA_HEADER, replica_id.encode("latin-1"))

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_replica(message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), self.header]
            await send(message)

        await self.app(scope, receive, send_with_replica)
