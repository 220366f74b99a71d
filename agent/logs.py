"""structlog set-up: readable console output on a terminal, JSON lines otherwise. Always stderr.

Other libraries log through the standard `logging` module (aiohttp's "Error handling request",
asyncio's errors); those records are turned into the same one-line events, with the exception's
type and message but never its traceback, so that a hostile client cannot fill the log with
multi-line tracebacks. A request aiohttp's parser rejects (oversized, malformed, TLS bytes on
the plain port) is the client's doing and any client can send them, unauthenticated: aiohttp
logs each at error; here each is a debug event, and a warning (`http.bad_requests`, with how
many since the last one) comes at most once per BAD_REQUESTS_EVERY seconds.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time

import structlog
from aiohttp.http_exceptions import HttpProcessingError

from .errors import one_line

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
_LOCK = threading.Lock()
BAD_REQUESTS_EVERY = 60.0  # seconds


class _BadRequests:
    """Counts requests rejected by aiohttp's parser; says so at most once per BAD_REQUESTS_EVERY."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.count = 0  # since the last warning
        self.last = -BAD_REQUESTS_EVERY  # time.monotonic() of the last warning

    def add(self, error: str, peer: str) -> None:
        with self.lock:
            self.count += 1
            now = time.monotonic()
            if now - self.last < BAD_REQUESTS_EVERY:
                return
            count, self.count, self.last = self.count, 0, now
        structlog.get_logger().warning("http.bad_requests", count=count, every=f"{BAD_REQUESTS_EVERY:g}s", last_error=error, last_peer=peer)


_BAD_REQUESTS = _BadRequests()  # for the process: configure() runs again at every reload


class _Stderr:
    """Writes each event to whatever sys.stderr is at that moment. A line that cannot be
    written (stderr closed, a broken pipe) is dropped: logging must never break the code
    that logs, least of all an error handler."""

    def msg(self, message: str) -> None:
        with _LOCK, contextlib.suppress(OSError, ValueError):
            print(message, file=sys.stderr, flush=True)

    log = debug = info = warning = warn = error = critical = exception = fatal = msg


class _OneLine(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a library's malformed format arguments
            message = str(record.msg)
        fields = {"logger": record.name}
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None:
            fields["error"] = f"{type(exc).__name__}: {one_line(str(exc))}"
        if isinstance(exc, HttpProcessingError) and record.name == "aiohttp.server" and record.levelno > logging.DEBUG:
            structlog.get_logger().debug(one_line(message), **fields)
            peer = record.args[0] if isinstance(record.args, tuple) and record.args else ""
            _BAD_REQUESTS.add(fields["error"], one_line(str(peer), 100))
            return
        structlog.get_logger().log(record.levelno, one_line(message), **fields)


def configure(level: str = "info", *, json: bool | None = None) -> None:
    if json is None:
        json = not sys.stderr.isatty()
    renderer = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=lambda *args: _Stderr(),
        cache_logger_on_first_use=False,
    )
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _OneLine)]:
        root.removeHandler(handler)
    root.addHandler(_OneLine())
    root.setLevel(_LEVELS[level])
