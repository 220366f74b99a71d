"""structlog set-up: readable console output on a terminal, JSON lines otherwise. Always stderr.

Other libraries log through the standard `logging` module (aiohttp's "Error handling request"
for an oversized or malformed request, asyncio's errors); those records are turned into the
same one-line events, with the exception's type and message but never its traceback, so that
a hostile client cannot fill the log with multi-line tracebacks.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading

import structlog

from .errors import one_line

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
_LOCK = threading.Lock()


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
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            fields["error"] = f"{type(exc).__name__}: {one_line(str(exc))}"
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
