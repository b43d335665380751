"""ASGI middleware that refuses a request without a valid bearer token before its body is read.

Which requests need the token is read from the routes themselves: a route declared with the
`require_write` dependency always does, one with `require_read` when reads are protected. The
dependencies still run; this only moves the refusal ahead of the body (an upload of up to
the size limit is otherwise received in full before a 401).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from service.api.deps import check_token, require_read, require_write
from service.api.error_handlers import response_for
from service.errors import UnauthorizedError
from service.settings import Settings


@dataclass(frozen=True)
class Guard:
    path: re.Pattern[str]
    methods: frozenset[str]
    write: bool


def guards(routes: Iterable[BaseRoute]) -> list[Guard]:
    """The token rule of each route that declares `require_write` or `require_read`."""
    out = []
    for route in routes:
        if not isinstance(route, APIRoute):
            continue
        calls = {d.call for d in route.dependant.dependencies}
        if require_write in calls or require_read in calls:
            methods = frozenset(route.methods or ())
            out.append(Guard(route.path_regex, methods, require_write in calls))
    return out


class EarlyAuthMiddleware:
    def __init__(self, app, guards: list[Guard], settings: Settings) -> None:
        self.app, self.guards, self.settings = app, guards, settings

    def _needs_token(self, path: str, method: str) -> bool:
        for guard in self.guards:
            if method in guard.methods and guard.path.match(path):
                return guard.write or self.settings.protect_reads
        return False

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or self.settings.api_token is None:
            await self.app(scope, receive, send)
            return
        if self._needs_token(scope.get("path", ""), scope.get("method", "GET")):
            headers = dict(scope.get("headers") or [])
            authorization = headers.get(b"authorization", b"").decode("latin-1")
            try:
                check_token(self.settings, authorization)
            except UnauthorizedError as exc:
                await response_for(exc, scope.get("path", ""))(scope, receive, send)
                return
        await self.app(scope, receive, send)
