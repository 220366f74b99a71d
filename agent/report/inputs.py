"""What a report is made of, read into scan JSON objects (the form `dijkwacht scan` prints).

Scan results come as the JSON array of `scan --format json` or the lines of `--format jsonl`,
from a file or stdin; the agent's state as its SQLite database (confirmed dependencies, the
latest scan's errors per detector, the change history). Everything read is checked on the way
in: a result that is not what `scan` writes is an error naming file, line and key.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from ..catalog import is_foreign
from ..errors import ConfigError, DijkwachtError
from ..scanner import CATEGORY_ORDER, Dependency
from ..state import StateStore

log = structlog.get_logger()

_WHITESPACE = " \t\r\n"
# Scan JSON keys and what each must be; a missing optional key reads as its empty value.
_DEP_STRINGS = ("category", "provider", "role", "name", "jurisdiction", "parent", "confidence")
_REQUIRED = ("category", "provider")


@dataclass
class Loaded:
    """Results in input order, where they came from, and (from a state) the change history."""

    results: list[dict[str, Any]]
    kind: str  # "scan" (a results file or stdin), "state" (the agent's database), "agent" (live)
    path: str
    scanned: tuple[float, float] | None = None  # first and last scan time, where known
    changes: list[dict[str, Any]] | None = None  # None: no history (scan results)
    notes: list[str] = field(default_factory=list)


def _skip(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in _WHITESPACE:
        pos += 1
    return pos


def _objects(text: str, path: str) -> Iterator[tuple[int, Any]]:
    """(line, value) of every result in a JSON array or in JSON lines, with the line each starts on."""
    decoder = json.JSONDecoder()
    pos = _skip(text, 0)
    if pos == len(text):
        raise ConfigError(path, "empty: expected the JSON array or JSON lines that `dijkwacht scan` writes")
    array = text[pos] == "["
    if not array and text[pos] != "{":
        raise ConfigError(path, "not scan results: expected the JSON array or JSON lines that `dijkwacht scan` writes", line=text.count("\n", 0, pos) + 1)
    line, counted_to = 1, 0
    if array:
        pos = _skip(text, pos + 1)
        if pos < len(text) and text[pos] == "]":
            return
    while pos < len(text):
        line += text.count("\n", counted_to, pos)
        counted_to = pos
        try:
            value, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise ConfigError(path, f"invalid JSON: {exc.msg}", line=exc.lineno) from None
        yield line, value
        pos = _skip(text, end)
        if not array:
            continue
        if pos < len(text) and text[pos] == ",":
            pos = _skip(text, pos + 1)
        elif pos < len(text) and text[pos] == "]":
            if _skip(text, pos + 1) < len(text):
                raise ConfigError(path, "invalid JSON: extra data after the array", line=text.count("\n", 0, pos) + 1)
            return
        else:
            raise ConfigError(path, "invalid JSON: expected ',' or ']' after a result", line=text.count("\n", 0, pos) + 1)
    if array:
        raise ConfigError(path, "invalid JSON: the array is not closed (was the scan interrupted? --format jsonl keeps every finished line)")


def _string(value: Any, path: str, line: int, key: str, *, required: bool = False) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise ConfigError(path, "must be a non-empty string" if required else "must be a string", key=key, line=line)
    return value


def _result(obj: Any, path: str, line: int) -> dict[str, Any]:
    """One scan JSON object, checked, with every key the report reads set (in place: 16,500
    results are not copied)."""
    if not isinstance(obj, dict):
        raise ConfigError(path, "a result must be a JSON object", line=line)
    _string(obj.get("target"), path, line, "target", required=True)
    deps = obj.setdefault("dependencies", [])
    if type(deps) is not list:
        raise ConfigError(path, "must be a list", key="dependencies", line=line)
    for i, d in enumerate(deps):
        if type(d) is not dict:
            raise ConfigError(path, "must be an object", key=f"dependencies[{i}]", line=line)
        for k in _DEP_STRINGS:
            value = d.get(k)
            if type(value) is not str or (not value and k in _REQUIRED):
                d[k] = _string(value, path, line, f"dependencies[{i}].{k}", required=k in _REQUIRED)
        evidence = d.setdefault("evidence", [])
        if type(evidence) is not list or not all(type(e) is str for e in evidence):
            raise ConfigError(path, "must be a list of strings", key=f"dependencies[{i}].evidence", line=line)
        if not isinstance(d.setdefault("foreign", False), bool):
            raise ConfigError(path, "must be true or false", key=f"dependencies[{i}].foreign", line=line)
    errors = obj.setdefault("errors", [])
    if type(errors) is not list:
        raise ConfigError(path, "must be a list", key="errors", line=line)
    for i, e in enumerate(errors):
        if type(e) is not dict:
            raise ConfigError(path, "must be an object", key=f"errors[{i}]", line=line)
        for k in ("detector", "message"):
            e[k] = _string(e.get(k), path, line, f"errors[{i}].{k}")
    labels = obj.get("labels", {})
    if type(labels) is not dict or not all(type(v) is str for v in labels.values()):
        raise ConfigError(path, "must be an object of strings", key="labels", line=line)
    return obj


def read_results(path: str) -> Loaded:
    """Scan results from `path` ("-": stdin): a JSON array or JSON lines. A target listed twice
    counts once (its first result), with a warning."""
    name = "<stdin>" if path == "-" else path
    try:
        text = (sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(name, f"not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(name, f"cannot read: {exc.strerror}") from None
    results: list[dict[str, Any]] = []
    seen: set[str] = set()
    # An empty file is zero JSON lines: a campaign stopped before its first result leaves one.
    # Nothing at all on stdin is more likely a scan that failed upstream: that stays an error.
    empty_file = path != "-" and not text.strip()
    for line, obj in () if empty_file else _objects(text, name):
        result = _result(obj, name, line)
        if result["target"] in seen:
            log.warning("report.duplicate_target", file=name, line=line, target=result["target"], kept="the first result")
            continue
        seen.add(result["target"])
        results.append(result)
    scanned = None
    if path != "-":
        written = os.stat(path).st_mtime
        scanned = (written, written)
    notes = [] if path != "-" else ["scan results read from standard input: the scan date is not known"]
    return Loaded(results, "scan", name, scanned, None, notes)


def apply_home(results: Iterable[dict[str, Any]], home: frozenset[str]) -> int:
    """Set every dependency's `foreign` from its jurisdiction and `home` (the one definition,
    catalog.is_foreign); return how many disagreed with what the results said (scanned with
    another home)."""
    changed = 0
    for result in results:
        for dep in result["dependencies"]:
            foreign = is_foreign(dep["jurisdiction"], home)
            changed += foreign != dep.get("foreign", foreign)
            dep["foreign"] = foreign
    return changed


def apply_labels(results: Iterable[dict[str, Any]], labels: Mapping[str, Mapping[str, str]]) -> None:
    """Give targets without labels of their own the labels `labels` has for them (from a config)."""
    for result in results:
        found = labels.get(result["target"])
        if found and not result.get("labels"):
            result["labels"] = dict(found)


def target_object(domain: str, labels: Mapping[str, str], deps: Iterable[Dependency], errors: Mapping[str, int] | None) -> dict[str, Any]:
    """A scan JSON object for a target as the agent keeps it: its confirmed dependencies and
    the errors of its latest scan per detector (None: never scanned). `foreign` is set later
    (apply_home), as for scan results."""
    ordered = sorted(deps, key=lambda d: (CATEGORY_ORDER.get(d.category, 99), d.category, d.provider))
    if errors is None:
        problems = [{"detector": "agent", "message": "not scanned yet"}]
    else:
        problems = [{"detector": det, "message": f"{n} failed lookup(s) or error(s) in the latest scan"} for det, n in sorted(errors.items()) if n]
    out: dict[str, Any] = {"target": domain, "dependencies": [d.to_json() for d in ordered], "errors": problems}
    if labels:
        out["labels"] = dict(labels)
    return out


def read_state(path: str, *, targets: Mapping[str, Mapping[str, str]] | None, since: float) -> Loaded:
    """The agent's state at `path`: every target it holds (or only `targets`, the configured
    ones, with their labels) and the changes at or after `since`."""
    if not Path(path).is_file():
        raise DijkwachtError(f"no state database at {path} (has `dijkwacht run` been started with this configuration?)")
    try:
        store = StateStore(path, readonly=True)  # beside a running agent, which holds the lock
        try:
            stored = store.dependencies()
            scans = store.scans()
            changes = [c.to_json() for c in store.changes(since=since)]
        finally:
            store.close()
    except sqlite3.Error as exc:
        raise ConfigError(path, f"cannot read the state database: {exc}") from None
    if targets is None:
        targets = {domain: {} for domain in sorted(set(scans) | set(stored))}
    else:
        changes = [c for c in changes if c["target"] in targets]
    results = []
    for domain, labels in targets.items():
        record = scans.get(domain)
        deps = [d for found in stored.get(domain, {}).values() for d in found]
        results.append(target_object(domain, labels, deps, dict(record.errors) if record else None))
    attempts = [scans[d].last_attempt for d in targets if d in scans]
    scanned = (min(attempts), max(attempts)) if attempts else None
    return Loaded(results, "state", path, scanned, changes)

