"""Errors that the CLI turns into a one-line message and a non-zero exit."""

from __future__ import annotations


class DijkwachtError(Exception):
    """Base class for user-facing errors (configuration, catalog, usage)."""


class ConfigError(DijkwachtError):
    """A configuration or data file is invalid; names the file, line and key where known."""

    def __init__(self, path: str, message: str, *, key: str = "", line: int | None = None) -> None:
        self.path = path
        self.key = key
        self.line = line
        self.message = message
        where = path if line is None else f"{path}:{line}"
        what = f"{key}: " if key else ""
        super().__init__(f"{where}: {what}{message}")


def describe(exc: BaseException) -> str:
    """`Type: message` of an exception raised by plugin code, without trusting its __str__."""
    try:
        text = str(exc)
    except Exception:
        text = ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
