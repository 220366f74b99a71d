"""Targets: domain names normalised to the form DNS answers use, with their labels."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import idna

from .errors import ConfigError, shown

_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")
_LABEL_KEY = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
# Label names the per-target metrics use themselves (a target label of that name would clash
# in every join) or that Prometheus sets on every series it scrapes.
RESERVED_LABELS = frozenset({"target", "category", "provider", "jurisdiction", "foreign", "role", "detector", "reason", "job", "instance"})
MAX_LINE = 4096  # bytes; a targets file line longer than this is reported, not parsed


class InvalidTarget(ValueError):
    """A name that is not a usable domain name; the message says why."""


@dataclass(frozen=True, slots=True)
class Target:
    domain: str  # lowercase A-label form, no trailing dot
    labels: Mapping[str, str] = field(default_factory=dict)
    hosts: tuple[str, ...] = ()  # extra host names (relative or absolute) to check for CDN/hosting


def normalise_domain(raw: str) -> str:
    """Lowercase, strip one trailing dot, IDN to punycode A-labels; raise InvalidTarget."""
    name = raw.strip()
    if name.endswith("."):
        name = name[:-1]
    if not name:
        raise InvalidTarget("empty domain name")
    if not name.isprintable() or any(ch.isspace() for ch in name) or "/" in name or ":" in name or "@" in name:
        raise InvalidTarget(f"{shown(raw)} is not a domain name (looks like a URL, address or has spaces)")
    if len(name) > 253 * 4:  # no IDN label turns into fewer characters; skip IDNA on absurd input
        raise InvalidTarget(f"{shown(raw)} is longer than 253 characters")
    if not name.isascii():
        try:
            name = idna.encode(name, uts46=True).decode("ascii")
        except (idna.IDNAError, UnicodeError) as exc:
            raise InvalidTarget(f"{shown(raw)} is not a valid internationalised domain name: {exc}") from None
    name = name.lower()
    if len(name) > 253:
        raise InvalidTarget(f"{shown(raw)} is longer than 253 characters")
    labels = name.split(".")
    if len(labels) < 2:
        raise InvalidTarget(f"{shown(raw)} has no dot; a registered domain such as example.nl is expected")
    for label in labels:
        if not _LABEL.match(label):
            raise InvalidTarget(f"{shown(raw)} has an invalid label {shown(label)}")
        if label.startswith("xn--") and not _valid_a_label(label):
            # The same rules as for a name written in Unicode: xn--zz.de is no more a name than its U-label.
            raise InvalidTarget(f"{shown(raw)} has an invalid IDN label {shown(label)}")
    if labels[-1].isdigit():
        raise InvalidTarget(f"{shown(raw)} looks like an IP address, not a domain name")
    return name


def normalise_host(raw: str) -> str:
    """A target's extra host name: relative ("portal", i.e. portal.<domain>) or absolute with a
    trailing dot ("cdn.example.com."); the label rules of normalise_domain; raise InvalidTarget."""
    text = raw.strip()
    absolute = text.endswith(".")
    try:
        # A relative name gets a stand-in parent, so that one label ("portal") passes the rules too.
        name = normalise_domain(text if absolute else f"{text}.invalid")
    except InvalidTarget:
        raise InvalidTarget(f"{shown(raw)} is not a host name: a relative name such as \"portal\" or an absolute one ending in a dot") from None
    return name + "." if absolute else name.removesuffix(".invalid")


def _valid_a_label(label: str) -> bool:
    try:
        return idna.encode(idna.decode(label)).decode("ascii") == label
    except (idna.IDNAError, UnicodeError):
        return False


def check_label_name(key: str) -> str:
    """A target label becomes a Prometheus label name on dijkwacht_target_info."""
    if not _LABEL_KEY.match(key):
        raise InvalidTarget(f"label name {shown(key)} must match [a-zA-Z_][a-zA-Z0-9_]*")
    if key.startswith("__"):
        raise InvalidTarget(f"label name {shown(key)} is reserved: names starting with __ are Prometheus' own")
    if key in RESERVED_LABELS:
        raise InvalidTarget(f"label name {shown(key)} is reserved (it would clash with the metrics' own labels: {', '.join(sorted(RESERVED_LABELS))})")
    return key


def check_labels(labels: Mapping[str, object]) -> dict[str, str]:
    """Labels become Prometheus label names on dijkwacht_target_info, so they must be valid ones."""
    out = {}
    for key, value in labels.items():
        check_label_name(key)
        if not isinstance(value, str):
            raise InvalidTarget(f"label {shown(key)} must be a string")
        out[key] = value
    return out


@dataclass(frozen=True, slots=True)
class TargetsFileProblem:
    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


def _lines(handle: BinaryIO) -> Iterator[bytes | None]:
    """The file's lines, or None for a line longer than MAX_LINE (skipped in bounded memory)."""
    while True:
        line = handle.readline(MAX_LINE + 1)
        if not line:
            return
        if len(line) > MAX_LINE and not line.endswith(b"\n"):
            while (rest := handle.readline(1 << 16)) and not rest.endswith(b"\n"):
                pass
            yield None
            continue
        yield line


def read_targets(path: Path | str) -> tuple[list[tuple[Target, int]], list[TargetsFileProblem]]:
    """Parse a targets file: one domain per line, `#` comments, optional `key=value` labels.

    Example line: `gemeente.nl  sector=municipality owner=team-a  # comment`.
    Returns the targets with their line numbers, in file order; bad lines are returned as
    problems (the good ones are still scanned).
    """
    targets: list[tuple[Target, int]] = []
    problems: list[TargetsFileProblem] = []
    try:
        handle = open(path, "rb")
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read targets file: {exc.strerror}") from exc
    except ValueError as exc:  # a NUL in the path
        raise ConfigError(str(path), f"cannot read targets file: {exc}") from None
    with handle:
        try:
            for number, raw in enumerate(_lines(handle), start=1):
                if raw is None:
                    problems.append(TargetsFileProblem(str(path), number, f"line longer than {MAX_LINE} bytes"))
                    continue
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    problems.append(TargetsFileProblem(str(path), number, f"not valid UTF-8 (byte {exc.start + 1} of the line)"))
                    continue
                content = line.split("#", 1)[0].split()
                if not content:
                    continue
                try:
                    domain = normalise_domain(content[0])
                    labels = {}
                    for word in content[1:]:
                        key, sep, value = word.partition("=")
                        if not sep:
                            raise InvalidTarget(f"{shown(word)} is not a key=value label")
                        labels[key] = value
                    targets.append((Target(domain, check_labels(labels)), number))
                except InvalidTarget as exc:
                    problems.append(TargetsFileProblem(str(path), number, str(exc)))
        except OSError as exc:  # e.g. a directory, or an I/O error halfway
            raise ConfigError(str(path), f"cannot read targets file: {exc.strerror or exc}") from exc
    return targets, problems


def dedupe(located: Iterable[tuple[Target, str, int]]) -> tuple[list[Target], list[TargetsFileProblem]]:
    """Targets without repeated domains, keeping the first occurrence (and its labels); every
    repetition is reported where it was written. `scan` and the agent both use this."""
    first: dict[str, str] = {}
    out: list[Target] = []
    problems: list[TargetsFileProblem] = []
    for target, path, line in located:
        if target.domain in first:
            problems.append(TargetsFileProblem(path, line, f"{target.domain} repeats {first[target.domain]}; the first is kept"))
            continue
        first[target.domain] = f"{path}:{line}"
        out.append(target)
    return out, problems


def read_targets_file(path: Path | str) -> tuple[list[Target], list[TargetsFileProblem]]:
    """read_targets without line numbers and without repeated domains (reported as problems)."""
    located, problems = read_targets(path)
    targets, repeated = dedupe((t, str(path), line) for t, line in located)
    return targets, sorted([*problems, *repeated], key=lambda p: p.line)


def unique(targets: list[Target]) -> Iterator[Target]:
    """Drop repeated domains, keeping the first occurrence (and its labels)."""
    seen: set[str] = set()
    for target in targets:
        if target.domain not in seen:
            seen.add(target.domain)
            yield target
