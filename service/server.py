"""The HTTP server's connection limits: header and body timeouts, keep-alive.

uvicorn only times out idle keep-alive connections. A client that opens a connection and
sends nothing, sends headers byte by byte, or stops halfway through a body would hold a
connection (and the request's task) forever. `timed_protocol` closes such connections.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.auto import AutoHTTPProtocol

from service.settings import Settings


def timed_protocol(
    header_timeout_s: float, body_timeout_s: float, min_body_rate: float = 0.0
) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol, closing a connection whose request stalls.

    - Headers: a new connection, or a request's first bytes, must be followed by the complete
      headers within `header_timeout_s` (a total deadline: dripping bytes does not extend it).
    - Body: while the app waits for more body, each chunk must arrive within `body_timeout_s`
      of the previous one (paused reads, the server's own back-pressure, do not count), and
      the body as a whole at `min_body_rate` bytes/s on average: `t` seconds after it began
      it must have sent `(t - body_timeout_s) * min_body_rate` bytes (0 turns that off), so
      dripping bytes keeps a connection no longer than a stall does.
    - While the app works on a complete request, no deadline runs; between requests
      uvicorn's keep-alive timeout applies.
    """

    class TimedHTTPProtocol(AutoHTTPProtocol):  # type: ignore[misc, valid-type]
        def connection_made(self, transport: Any) -> None:
            self._deadline: asyncio.TimerHandle | None = None
            self._phase: str | None = None
            self._body_of: object | None = None  # the request cycle whose body is counted
            self._body_started, self._body_bytes = 0.0, 0
            super().connection_made(transport)
            self._arm("headers", header_timeout_s)

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            cycle = self.cycle
            if cycle is None or cycle.response_complete:  # part of a request's headers
                if self._phase != "headers":
                    self._arm("headers", header_timeout_s)
            elif cycle.more_body:  # the app may be waiting for the rest of the body
                self._arm("body", self._body_allowance(cycle, len(data)))
            else:
                self._disarm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            cycle = self.cycle
            if cycle is not None and not cycle.response_complete and cycle.more_body:
                self._arm("body", self._body_allowance(cycle, 0))  # a pipelined request
            else:
                self._disarm()  # idle: the keep-alive timeout takes over

        def _body_allowance(self, cycle: object, received: int) -> float:
            """Seconds until this body must have sent more: the pause bound, or sooner when
            it has fallen behind the minimum rate."""
            now = self.loop.time()
            if cycle is not self._body_of:  # the chunk that ended the headers is not counted
                self._body_of, self._body_started, self._body_bytes = cycle, now, 0
            else:
                self._body_bytes += received
            if min_body_rate <= 0:
                return body_timeout_s
            due = self._body_started + body_timeout_s + self._body_bytes / min_body_rate
            return max(0.0, min(body_timeout_s, due - now))

        def _arm(self, phase: str, seconds: float) -> None:
            self._disarm()
            self._phase = phase
            self._deadline = self.loop.call_later(seconds, self._expired, seconds)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
            self._deadline, self._phase = None, None

        def _expired(self, seconds: float) -> None:
            if self._phase == "body" and self.flow is not None and self.flow.read_paused:
                self._body_started += seconds  # we stopped reading, not the client
                self._arm("body", body_timeout_s)
                return
            self._deadline, self._phase = None, None
            if not self.transport.is_closing():
                self.transport.close()

    return TimedHTTPProtocol


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for `uvicorn.run` that bound every connection."""
    return {
        "http": timed_protocol(
            settings.header_timeout_s, settings.body_timeout_s, settings.min_body_rate
        ),
        "timeout_keep_alive": settings.keep_alive_s,
        "timeout_graceful_shutdown": 30,
    }
