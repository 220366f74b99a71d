"""Errors that the CLI turns into a one-line message and a non-zero exit."""

from __future__ import annotations

from pathlib import Path


def one_line(text: str, limit: int = 200) -> str:
    """`text` fit for one line of a message or log: control characters escaped, cut at `limit`."""
    cut = text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"
    return cut if cut.isprintable() else "".join(c if c.isprintable() else repr(c)[1:-1] for c in cut)


def shown(value: str, limit: int = 80) -> str:
    """A user's value quoted inside a message (a 50 MB line must not become 50 MB of stderr)."""
    return f"'{one_line(value, limit)}'"


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
        what = f"{one_line(key, 80)}: " if key else ""
        super().__init__(one_line(f"{where}: {what}{message}", 1000))


def describe(exc: BaseException) -> str:
    """`Type: message` of an exception raised by plugin code, without trusting its __str__."""
    try:
        text = str(exc)
    except Exception:
        text = ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def read_text(path: Path, what: str) -> str:
    """A configuration file's text (`what`: "config", "catalog", ...); every way reading it
    can fail is one ConfigError naming the file."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read {what}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(str(path), f"not valid UTF-8 (byte {exc.start + 1})") from None
    except ValueError as exc:  # a NUL in the path
        raise ConfigError(str(path), f"cannot read {what}: {exc}") from None
