"""Targets: domain names normalised to the form DNS answers use, with their labels."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import idna

from .errors import ConfigError

_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")
_LABEL_KEY = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


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
    if any(ch.isspace() for ch in name) or "/" in name or ":" in name or "@" in name:
        raise InvalidTarget(f"'{raw}' is not a domain name (looks like a URL, address or has spaces)")
    if not name.isascii():
        try:
            name = idna.encode(name, uts46=True).decode("ascii")
        except idna.IDNAError as exc:
            raise InvalidTarget(f"'{raw}' is not a valid internationalised domain name: {exc}") from None
    name = name.lower()
    if len(name) > 253:
        raise InvalidTarget(f"'{raw}' is longer than 253 characters")
    labels = name.split(".")
    if len(labels) < 2:
        raise InvalidTarget(f"'{raw}' has no dot; a registered domain such as example.nl is expected")
    for label in labels:
        if not _LABEL.match(label):
            raise InvalidTarget(f"'{raw}' has an invalid label '{label}'")
    if labels[-1].isdigit():
        raise InvalidTarget(f"'{raw}' looks like an IP address, not a domain name")
    return name


def check_labels(labels: Mapping[str, object]) -> dict[str, str]:
    """Labels become Prometheus label names on dijkwacht_target_info, so they must be valid ones."""
    out = {}
    for key, value in labels.items():
        if not _LABEL_KEY.match(key) or key == "target":
            raise InvalidTarget(f"label name '{key}' must match [a-zA-Z_][a-zA-Z0-9_]* and not be 'target'")
        if not isinstance(value, str):
            raise InvalidTarget(f"label '{key}' must be a string")
        out[key] = value
    return out


@dataclass(frozen=True, slots=True)
class TargetsFileProblem:
    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


def read_targets_file(path: Path | str) -> tuple[list[Target], list[TargetsFileProblem]]:
    """Parse a targets file: one domain per line, `#` comments, optional `key=value` labels.

    Example line: `gemeente.nl  sector=municipality owner=team-a  # comment`.
    Bad lines are returned as problems; the good ones are still scanned.
    """
    targets: list[Target] = []
    problems: list[TargetsFileProblem] = []
    try:
        handle = open(path, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read targets file: {exc.strerror}") from exc
    with handle:
        for number, line in enumerate(handle, start=1):
            content = line.split("#", 1)[0].split()
            if not content:
                continue
            try:
                domain = normalise_domain(content[0])
                labels = {}
                for word in content[1:]:
                    key, sep, value = word.partition("=")
                    if not sep:
                        raise InvalidTarget(f"'{word}' is not a key=value label")
                    labels[key] = value
                targets.append(Target(domain, check_labels(labels)))
            except InvalidTarget as exc:
                problems.append(TargetsFileProblem(str(path), number, str(exc)))
    return targets, problems


def unique(targets: list[Target]) -> Iterator[Target]:
    """Drop repeated domains, keeping the first occurrence (and its labels)."""
    seen: set[str] = set()
    for target in targets:
        if target.domain not in seen:
            seen.add(target.domain)
            yield target
