"""Reading TOML files, and line numbers for their keys.

tomllib gives no positions, but an error that says only "bad value for dns_timeout" in a
200-line file wastes an operator's time; this finds the line a key was written on.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from .errors import ConfigError, read_text

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\-\"'. ]+?)\s*=")


def _norm(key: str) -> str:
    return ".".join(part.strip().strip("\"'") for part in key.split("."))


def find_line(text: str, table: str, key: str = "", index: int | None = None) -> int | None:
    """Return the 1-based line of `key` inside `table` (`index`-th entry of an array of tables).

    `table` is a dotted path such as "agent" or "targets"; with an empty key the table header's
    line is returned. Dotted keys (`a.b = 1` inside `[agent]`) and inline tables at the top
    level of the table are found by their first component. None if it cannot be located.
    """
    current = ""
    seen = -1
    header_line = None
    first = key.split(".")[0] if key else ""
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            current = _norm(header.group(2))
            if first and index is None and current == f"{table}.{first}".lstrip("."):
                return number  # the key is itself a table: [table.key]
            if current == table:
                if header.group(1) == "[[":
                    seen += 1
                if index is None or seen == index:
                    header_line = number
            continue
        if current != table or (index is not None and seen != index):
            continue
        if not first:
            continue
        match = _KEY.match(line)
        if match and _norm(match.group(1)).split(".")[0] == first:
            return number
    return header_line


def read_toml(path: Path, what: str) -> tuple[str, dict[str, Any]]:
    """The text and the tables of a TOML file; every way it can fail is one ConfigError."""
    text = read_text(path, what)
    try:
        return text, tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = re.search(r"line (\d+)", str(exc))
        raise ConfigError(str(path), f"invalid TOML: {exc}", line=int(line.group(1)) if line else None) from None
    except RecursionError:
        raise ConfigError(str(path), "invalid TOML: arrays or tables nested too deeply") from None
