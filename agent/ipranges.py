"""Provider IP ranges: a directory of `<provider-id>.txt` CIDR lists and a longest-prefix lookup.

Nested prefixes (a /24 of one provider inside another's /12) are flattened once, at load, into
sorted disjoint intervals where the most specific prefix wins, so a lookup is one `bisect` in C
and a comparison: millions of lookups per second, in one shared read-only structure.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
import socket
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .asn import FEED as ASN_FEED
from .asn import AsInfo, AsTable, load_table
from .errors import ConfigError

_FETCHED = re.compile(r"^#\s*(?:fetched|snapshot)[^0-9]*(\d{4}-\d{2}-\d{2}T[0-9:]+(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?)")
_ID = re.compile(r"^[a-z0-9][a-z0-9-]*$")


@dataclass(frozen=True, slots=True)
class RangeFile:
    provider: str
    path: Path
    prefixes_v4: int
    prefixes_v6: int
    updated: float  # unix time: the header's fetch time if it has one, else the file's mtime


class _Table:
    """Disjoint [start, end] intervals with their owners, for one address family."""

    __slots__ = ("starts", "ends", "owners")

    def __init__(self, prefixes: list[tuple[int, int, str]]) -> None:
        # Identical prefixes from two files are a tie: both providers own the interval.
        grouped: dict[tuple[int, int], set[str]] = {}
        for start, end, owner in prefixes:
            grouped.setdefault((start, end), set()).add(owner)
        items = sorted(grouped.items(), key=lambda item: (item[0][0], -item[0][1]))
        segments: list[tuple[int, int, tuple[str, ...]]] = []

        def emit(start: int, end: int, owners: tuple[str, ...]) -> None:
            if start > end:
                return
            if segments and segments[-1][2] == owners and segments[-1][1] + 1 == start:
                segments[-1] = (segments[-1][0], end, owners)
            else:
                segments.append((start, end, owners))

        stack: list[tuple[int, tuple[str, ...]]] = []  # enclosing prefixes: (end, owners)
        cursor = 0
        for (start, end), owners in items:
            while stack and stack[-1][0] < start:
                parent_end, parent_owners = stack.pop()
                emit(cursor, parent_end, parent_owners)
                cursor = parent_end + 1
            if stack:
                emit(cursor, start - 1, stack[-1][1])
            stack.append((end, tuple(sorted(owners))))
            cursor = start
        while stack:
            parent_end, parent_owners = stack.pop()
            emit(cursor, parent_end, parent_owners)
            cursor = parent_end + 1
        self.starts = [s for s, _, _ in segments]
        self.ends = [e for _, e, _ in segments]
        self.owners = [o for _, _, o in segments]

    def lookup(self, value: int) -> tuple[str, ...]:
        i = bisect_right(self.starts, value) - 1
        if i >= 0 and value <= self.ends[i]:
            return self.owners[i]
        return ()


class IPRanges:
    """Which providers announce or publish an address, and (with an IP-to-AS table) which AS
    routes it. Empty when no data is configured."""

    def __init__(
        self,
        prefixes: Iterable[tuple[str, ipaddress.IPv4Network | ipaddress.IPv6Network]] = (),
        files: Iterable[RangeFile] = (),
        asn: AsTable | None = None,
    ) -> None:
        v4: list[tuple[int, int, str]] = []
        v6: list[tuple[int, int, str]] = []
        for owner, net in prefixes:
            bucket = v4 if net.version == 4 else v6
            bucket.append((int(net.network_address), int(net.broadcast_address), owner))
        self._v4 = _Table(v4)
        self._v6 = _Table(v6)
        self.files = tuple(files)
        self.asn = asn

    @property
    def empty(self) -> bool:
        return not (self._v4.starts or self._v6.starts)

    def lookup(self, address: str) -> tuple[str, ...]:
        """Providers owning the most specific prefix containing `address` (usually one)."""
        try:
            return self._v4.lookup(int.from_bytes(socket.inet_pton(socket.AF_INET, address), "big"))
        except OSError:
            pass
        try:
            return self._v6.lookup(int.from_bytes(socket.inet_pton(socket.AF_INET6, address), "big"))
        except OSError:
            return ()

    def origin(self, address: str) -> AsInfo | None:
        """The AS routing `address` (None without an IP-to-AS table or for an unrouted address)."""
        return self.asn.lookup(address) if self.asn is not None else None

    def as_info(self, asn: int) -> AsInfo | None:
        return self.asn.info(asn) if self.asn is not None else None


def _parse_file(path: Path, provider: str) -> tuple[list[tuple[str, ipaddress.IPv4Network | ipaddress.IPv6Network]], RangeFile]:
    prefixes = []
    fetched = None
    counts = [0, 0]
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            line = line.strip()
            if not line:
                continue
            if line.startswith("#"):
                match = _FETCHED.match(line)
                if match and fetched is None:
                    fetched = dt.datetime.fromisoformat(match.group(1).replace("Z", "+00:00"))
                continue
            try:
                net = ipaddress.ip_network(line, strict=False)
            except ValueError:
                raise ConfigError(str(path), f"'{line}' is not a CIDR prefix", line=number) from None
            prefixes.append((provider, net))
            counts[net.version == 6] += 1
    updated = fetched.timestamp() if fetched and fetched.tzinfo else path.stat().st_mtime
    return prefixes, RangeFile(provider, path, counts[0], counts[1], updated)


def load_ranges(data_dir: Path | str | None) -> IPRanges:
    """Load every `<provider-id>.txt` in `data_dir`, and its IP-to-AS table if it has one; a
    missing or empty dir gives empty ranges."""
    if not data_dir:
        return IPRanges()
    directory = Path(data_dir)
    if not directory.is_dir():
        return IPRanges()
    prefixes = []
    files = []
    for path in sorted(directory.glob("*.txt")):
        provider = path.stem
        if not _ID.match(provider):
            continue
        found, info = _parse_file(path, provider)
        prefixes.extend(found)
        files.append(info)
    table = load_table(directory)
    if table is not None:  # listed with the range files, so its age is in the metrics too
        files.extend(RangeFile(ASN_FEED, f.path, f.rows_v4, f.rows_v6, f.updated) for f in table.files)
    return IPRanges(prefixes, files, table)
