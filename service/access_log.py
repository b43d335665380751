"""Which requests uvicorn's access log records (`UNIPELT_ACCESS_LOG`).

"all": every request. "errors" (the default): every request except predictions answered 200,
which `unipelt_requests_total` and the latency histograms already count; at hundreds of
requests per second their lines are noise, and formatting and writing them was about a tenth
of the event loop's time (`docs/benchmarks.md`, the serving path). "off": none.
"""

from __future__ import annotations

import logging

from service.api.request_metrics import PREDICT_PATH

ACCESS_LOGGER = "uvicorn.access"


class AccessLogFilter(logging.Filter):
    def __init__(self, mode: str) -> None:
        super().__init__()
        self.mode = mode

    def filter(self, record: logging.LogRecord) -> bool:
        if self.mode == "all":
            return True
        if self.mode == "off":
            return False
        args = record.args  # uvicorn's: (client, method, path, http version, status)
        if not isinstance(args, tuple) or len(args) != 5:
            return True
        path, status = str(args[2]).split("?", 1)[0], args[4]
        return not (status == 200 and PREDICT_PATH.match(path))


def install_access_log_filter(mode: str) -> None:
    """Replace any filter of ours on uvicorn's access logger with one for `mode`."""
    logger = logging.getLogger(ACCESS_LOGGER)
    for old in [f for f in logger.filters if isinstance(f, AccessLogFilter)]:
        logger.removeFilter(old)
    logger.addFilter(AccessLogFilter(mode))


def skip_access_line(send: object) -> None:
    """Spare uvicorn building the access record of this answer, one the filter would drop
    (a 200 prediction under "errors", anything under "off"): uvicorn's request cycle, whose
    bound `send` this is, reads its `access_log` flag when the response starts. Under another
    server, or a `send` that is not uvicorn's, nothing changes and the filter decides."""
    cycle = getattr(send, "__self__", None)
    if cycle is not None and getattr(cycle, "access_log", None) is True:
        cycle.access_log = False
