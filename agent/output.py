"""Rendering scan results: the JSON contract, JSON lines for campaigns, and a table for people.

Writers take final results as a campaign produces them: (index in the input, result), and
all of them restore the input order. JSON lines are written the moment a result is final and
every result before it is written: only a target waiting for the retry pass holds back the
ones after it (held as text; on Ctrl-C they are written and the waiting ones left to
`--resume`). Each line goes out with a single write() to a file opened for appending, so a
crash can cut at most the last line short -- which `--resume` removes.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TextIO

import structlog

from .errors import DijkwachtError
from .figures import Tally, counted, headline, status
from .scanner import TargetResult

log = structlog.get_logger()


class ResumeError(DijkwachtError):
    pass


class _InOrder:
    """Passes (index, value) pairs on in index order, holding back those that come early."""

    def __init__(self, emit: Callable[[Any], None]) -> None:
        self._emit = emit
        self._next = 0
        self._held: dict[int, Any] = {}

    def add(self, index: int, value: Any) -> None:
        self._held[index] = value
        while self._next in self._held:
            self._emit(self._held.pop(self._next))
            self._next += 1

    def flush(self) -> None:
        """Pass on whatever is held, in order, gaps skipped (an interrupted scan)."""
        for index in sorted(self._held):
            self._emit(self._held[index])
        self._held.clear()


class Writer:
    """Where the results of `dijkwacht scan` go: stdout, or `path`."""

    count = 0

    def write(self, index: int, obj: dict[str, Any], result: TargetResult) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class JsonWriter(Writer):
    """ONE JSON array, one object per target, in input order. To a file: written beside it
    and renamed into place when closed, so the file is never half an array."""

    def __init__(self, path: str | None = None) -> None:
        self._path = path
        self._partial = f"{path}.partial" if path else None
        self._out: TextIO = open(self._partial, "w", encoding="utf-8") if self._partial else sys.stdout  # noqa: SIM115
        self._order = _InOrder(self._put)
        self._out.write("[")

    def _put(self, text: str) -> None:
        self._out.write(("\n" if not self.count else ",\n") + text)
        self.count += 1

    def write(self, index: int, obj: dict[str, Any], result: TargetResult) -> None:
        # Held as text: behind a target waiting for the retry pass, a whole scan may wait
        # (16,500 objects as dicts: 78 MB; as text: 26 MB).
        self._order.add(index, json.dumps(obj, ensure_ascii=False))

    def close(self) -> None:
        self._order.flush()
        self._out.write("\n]\n" if self.count else "]\n")
        self._out.flush()
        if self._partial:
            self._out.close()
            os.replace(self._partial, self._path)  # type: ignore[arg-type]


class JsonLinesWriter(Writer):
    """One JSON object per line, each written whole and at once (see the module docstring)."""

    def __init__(self, path: str | None = None, *, append: bool = False) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | (0 if append else os.O_TRUNC)
        self._fd = os.open(path, flags, 0o644) if path else None
        self._order = _InOrder(self._put)

    def write(self, index: int, obj: dict[str, Any], result: TargetResult) -> None:
        self._order.add(index, json.dumps(obj, ensure_ascii=False) + "\n")

    def _put(self, line: str) -> None:
        if self._fd is None:
            sys.stdout.write(line)
            sys.stdout.flush()
        else:
            data = line.encode("utf-8")
            while data:
                data = data[os.write(self._fd, data):]
        self.count += 1

    def close(self) -> None:
        self._order.flush()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class TableWriter(Writer):
    def __init__(self, path: str | None = None, *, ip_data: bool = True, count_inferred: bool = False) -> None:
        self._path = path
        self._ip_data = ip_data
        self._count_inferred = count_inferred
        self._results: list[TargetResult] = []
        self._order = _InOrder(self._results.append)

    def write(self, index: int, obj: dict[str, Any], result: TargetResult) -> None:
        self._order.add(index, result)
        self.count += 1

    def close(self) -> None:
        self._order.flush()
        text = render_table(self._results, ip_data=self._ip_data, count_inferred=self._count_inferred)
        if self._path:
            Path(self._path).write_text(text, encoding="utf-8")
        else:
            sys.stdout.write(text)


def read_for_resume(path: str, on_object: Callable[[dict[str, Any]], None]) -> set[str]:
    """The targets a JSON lines output file already holds (each object passed to `on_object`
    once). A last line cut short by a crash, or not valid JSON, is removed from the file; any
    other invalid line is an error naming it."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return set()
    done: set[str] = set()
    good = pos = 0
    number = 0
    while pos < len(data):
        end = data.find(b"\n", pos)
        number += 1
        if end == -1:
            break  # no newline: the write of this line never completed
        line = data[pos:end]
        if line.strip():
            try:
                obj = json.loads(line)
                target = obj["target"]
                if not isinstance(target, str):
                    raise TypeError("target is not a string")
            except (ValueError, KeyError, TypeError) as exc:
                if data[end + 1:].strip():
                    raise ResumeError(f"{path}:{number}: not a scan result ({exc}); cannot resume from this file") from None
                break
            if target not in done:
                done.add(target)
                on_object(obj)
        pos = good = end + 1
    if good < len(data):
        log.warning("resume.cut_line_removed", file=path, line=number, bytes=len(data) - good)
        with open(path, "r+b") as f:
            f.truncate(good)
    return done


def _evidence(evidence: Iterable[str]) -> str:
    items = list(evidence)
    text = items[0] if items else ""
    return text + (f" (+{len(items) - 1} more)" if len(items) > 1 else "")


def render_table(results: Iterable[TargetResult], *, ip_data: bool = True, count_inferred: bool = False) -> str:
    """A per-target summary an ops engineer can read: one line per dependency, then errors.
    What counts is agent/figures.py's: inferred dependencies are listed but not counted as
    foreign unless `count_inferred`; a target with errors and nothing foreign is unknown."""
    lines = []
    header = ("CATEGORY", "ROLE", "PROVIDER", "JURIS", "FOREIGN", "CONFIDENCE", "EVIDENCE")
    tally = Tally(count_inferred=count_inferred)
    for result in results:
        obj = result.to_json()
        tally.add(obj)
        deps = result.dependencies
        foreign = sum(d.foreign for d in counted(deps, count_inferred))
        summary = f"{len(deps)} dependencies, {foreign} foreign" + (f", {len(result.errors)} errors" if result.errors else "")
        if status(obj, count_inferred=count_inferred) == "unknown":
            summary += ": unknown, nothing foreign found"
        lines.append(f"{result.target.domain}  ({summary})")
        rows = [(d.category, d.role, d.provider, d.jurisdiction or "?", "yes" if d.foreign else "no", d.confidence, _evidence(d.evidence)) for d in deps]
        if rows:
            widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(6)]
            for row in [header, *rows]:
                lines.append("  " + "  ".join(str(c).ljust(w) for c, w in zip(row[:6], widths)) + "  " + row[6])
        for error in result.errors:
            lines.append(f"  ! {error.detector}: {error.message}")
        for warning in result.warnings:
            lines.append(f"  ~ {warning.detector}: {warning.message}")
        lines.append("")
    fig = tally.figures()
    lines.append(f"{headline(fig)}; {fig['incomplete']} with errors")
    if not ip_data:
        lines.append("note: no IP range data loaded (--data-dir); only hostname evidence was used")
    return "\n".join(lines) + "\n"
