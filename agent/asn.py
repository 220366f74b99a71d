"""IP-to-AS: which autonomous system announces an address, and who registered that AS.

An address that no provider range file claims (a municipality's own mail server, a small
hoster) is still attributable through the AS that routes it. The table is iptoasn.com's
ip2asn (public domain), one row per announced range:

    range_start <TAB> range_end <TAB> AS_number <TAB> country_code <TAB> AS_description

`ip2asn-combined.tsv.gz` holds IPv4 and IPv6; `ip2asn-v4.tsv.gz` / `ip2asn-v6.tsv.gz` one family
each (plain `.tsv` works too). AS 0 rows ("Not routed") are left out. Ranges are kept as sorted
starts and ends in typed arrays, so a lookup is one `bisect` like the range lookup, and the
table (about 600,000 rows) costs about 22 MB with its AS records (benchmarks/asn_lookup.py).

`dijkwacht data update` fetches the table into the data directory; it is checked by parsing it
completely before the old one is replaced, and its parsed arrays are kept in an index file
beside it, so agents and scans load it in well under a second.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import os
import re
import socket
import tempfile
import zlib
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import structlog

from . import __version__
from .errors import ConfigError
from .rangefeeds import FeedError, FeedResult, _get

log = structlog.get_logger()

FEED = "ip2asn"  # its name in `dijkwacht data update` and in the range-file metrics
URL = "https://iptoasn.com/data/ip2asn-combined.tsv.gz"
COMBINED = "ip2asn-combined.tsv.gz"
# What load_table() looks for, in order: the combined table, else one file per family.
NAMES = (("ip2asn-combined.tsv.gz", "ip2asn-combined.tsv"), ("ip2asn-v4.tsv.gz", "ip2asn-v4.tsv"), ("ip2asn-v6.tsv.gz", "ip2asn-v6.tsv"))
_PROVIDER_ID = re.compile(r"^as(\d+)$")
# Registries also use EU, AP and user-assigned codes (ZZ...): no country, so no jurisdiction.
_COUNTRY = re.compile(r"^(?!EU|AP|AA|ZZ|Q[M-Z]|X[A-Z])[A-Z]{2}$")


@dataclass(frozen=True, slots=True)
class AsInfo:
    asn: int
    country: str  # ISO alpha-2 of the AS's registration, "" when the table has none
    name: str  # the AS description: handle and holder, e.g. "A1TELEKOM-AT A1 Telekom Austria AG"


def provider_id(asn: int) -> str:
    """The dependency id of an AS organisation that is not in the catalog: "as8447"."""
    return f"as{asn}"


def parse_provider_id(provider: str) -> int | None:
    match = _PROVIDER_ID.match(provider)
    return int(match.group(1)) if match else None


class _Family:
    """Sorted disjoint ranges of one address family with their AS numbers, in typed arrays:
    4 bytes a number for IPv4, 8 for IPv6 kept at /64 granularity (no route is longer than
    /48). They are filled row by row, so loading never holds the table as Python objects.

    A bisect over half a million array entries makes a Python int per probe; an index of the
    first range per 65,536 buckets (the top 16 bits) narrows it to the few ranges of the
    address's bucket, so a lookup costs what the range-file lookup does (asn_lookup.py)."""

    __slots__ = ("starts", "ends", "asns", "buckets", "_shift", "_sorted")

    def __init__(self, typecode: str) -> None:
        self.starts = array(typecode)
        self.ends = array(typecode)
        self.asns = array("I")
        self.buckets = array("I")
        self._shift = self.starts.itemsize * 8 - 16
        self._sorted = True

    def add(self, start: int, end: int, asn: int) -> None:
        if self.asns:
            last = len(self.asns) - 1
            if start < self.starts[last]:
                self._sorted = False
            elif start <= self.ends[last] + 1:
                if self.asns[last] == asn:  # adjacent or overlapping ranges of one AS: one range
                    self.ends[last] = max(end, self.ends[last])
                    return
                if start <= self.ends[last]:  # overlap: the earlier range keeps its part
                    start = self.ends[last] + 1
                    if start > end:
                        return
        self.starts.append(start)
        self.ends.append(end)
        self.asns.append(asn)

    def finish(self) -> None:
        """Sort rows that came out of order (ip2asn files are sorted; hand-made ones may not
        be), then build the bucket index."""
        if not self._sorted:
            rows = sorted(zip(self.starts, self.ends, self.asns))
            for name in ("starts", "ends", "asns"):
                setattr(self, name, array(getattr(self, name).typecode))
            self._sorted = True
            for row in rows:
                self.add(*row)
        self.buckets = array("I", (bisect_left(self.starts, bucket << self._shift) for bucket in range(65537)))

    def lookup(self, value: int) -> int:
        bucket = value >> self._shift
        first = self.buckets[bucket]
        # The range holding `value` starts in its bucket, or is the last one starting before it.
        i = bisect_right(self.starts, value, first - 1 if first else 0, self.buckets[bucket + 1]) - 1
        if i >= 0 and value <= self.ends[i]:
            return self.asns[i]
        return 0

    def __len__(self) -> int:
        return len(self.asns)


@dataclass(frozen=True, slots=True)
class TableFile:
    path: Path
    rows_v4: int
    rows_v6: int
    updated: float  # unix time of the file


class AsTable:
    """Address -> announcing AS, with each AS's registration country and description."""

    def __init__(self) -> None:
        self._v4 = _Family("I")
        self._v6 = _Family("Q")
        self._info: dict[int, AsInfo] = {}
        self.files: tuple[TableFile, ...] = ()

    def add(self, version: int, start: int, end: int, asn: int, country: str, name: str) -> None:
        if version == 4:
            self._v4.add(start, end, asn)
        else:
            self._v6.add(start >> 64, end >> 64, asn)
        if asn not in self._info:
            self._info[asn] = AsInfo(asn, country, name)

    def finish(self) -> None:
        self._v4.finish()
        self._v6.finish()

    def __len__(self) -> int:
        return len(self._v4) + len(self._v6)

    def lookup(self, address: str) -> AsInfo | None:
        """The AS announcing `address`, or None (unrouted, not in the table, not an address)."""
        try:
            asn = self._v4.lookup(int.from_bytes(socket.inet_pton(socket.AF_INET, address), "big"))
        except OSError:
            try:
                asn = self._v6.lookup(int.from_bytes(socket.inet_pton(socket.AF_INET6, address)[:8], "big"))
            except OSError:
                return None
        return self._info.get(asn) if asn else None

    def info(self, asn: int) -> AsInfo | None:
        return self._info.get(asn)


def _address(text: str) -> tuple[int, int]:
    """(IP version, integer) of an address in text form; ValueError if it is none."""
    version, family = (6, socket.AF_INET6) if ":" in text else (4, socket.AF_INET)
    try:
        return version, int.from_bytes(socket.inet_pton(family, text), "big")
    except OSError:
        raise ValueError(f"'{text}' is not an IP address") from None


def parse_rows(lines: Iterable[str], name: str) -> Iterator[tuple[int, int, int, int, str, str]]:
    """(version, start, end, asn, country, description) per routed row; ConfigError naming the
    file and line for a malformed one."""
    countries: dict[str, str] = {}  # a few hundred distinct values: check each once
    for number, line in enumerate(lines, start=1):
        fields = line.rstrip("\r\n").split("\t", 4)
        if len(fields) < 5:
            if not line.strip():
                continue
            raise ConfigError(name, f"expected 5 tab-separated fields (range_start, range_end, AS_number, country_code, AS_description), got {len(fields)}", line=number)
        try:
            version, start = _address(fields[0])
            end_version, end = _address(fields[1])
        except ValueError as exc:
            raise ConfigError(name, str(exc), line=number) from None
        if not fields[2].isdigit():
            raise ConfigError(name, f"AS number '{fields[2]}' is not a number", line=number)
        if end_version != version or end < start:
            raise ConfigError(name, f"range {fields[0]} - {fields[1]} is not a range of one family", line=number)
        asn = int(fields[2])
        if asn == 0:  # "Not routed"
            continue
        country = countries.get(fields[3])
        if country is None:
            code = fields[3].strip().upper()
            country = countries[fields[3]] = code if _COUNTRY.match(code) else ""
        yield version, start, end, asn, country, fields[4].strip()


def _open_text(path: Path) -> io.TextIOBase:
    raw = path.open("rb")
    stream = gzip.open(raw) if path.suffix == ".gz" else raw
    return io.TextIOWrapper(stream, encoding="utf-8", errors="replace", newline="")


def read_table(paths: Iterable[Path]) -> AsTable:
    """Parse table files into one AsTable; ConfigError (file, line) for a bad row or a broken file."""
    table = AsTable()
    files = []
    for path in paths:
        counts = [0, 0]
        try:
            with _open_text(path) as handle:
                for row in parse_rows(handle, str(path)):
                    table.add(*row)
                    counts[row[0] == 6] += 1
        except (OSError, EOFError, zlib.error) as exc:
            raise ConfigError(str(path), f"cannot read the IP-to-AS table: {exc}") from None
        files.append(TableFile(path, counts[0], counts[1], path.stat().st_mtime))
    table.finish()
    table.files = tuple(files)
    return table


def table_paths(data_dir: Path) -> list[Path]:
    """The table files in `data_dir`: the combined table if present, else the per-family ones."""
    found = []
    for names in NAMES:
        path = next((data_dir / n for n in names if (data_dir / n).is_file()), None)
        if path is not None:
            if names is NAMES[0]:
                return [path]
            found.append(path)
    return found


def load_table(data_dir: Path | str | None) -> AsTable | None:
    """The IP-to-AS table of the data directory, or None when it has none (the scan works without).

    Parsing the text table takes seconds; its arrays are then kept in an index file beside it
    (INDEX), which later loads read in a fraction of a second as long as the table files are
    unchanged (same names, sizes and modification times)."""
    if not data_dir or not Path(data_dir).is_dir():
        return None
    directory = Path(data_dir)
    paths = table_paths(directory)
    if not paths:
        return None
    stamp = [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in paths]
    table = _read_index(directory / INDEX, stamp, paths)
    if table is None:
        table = read_table(paths)
        _write_index(directory / INDEX, stamp, table)
    return table


INDEX = ".ip2asn.index"
_MAGIC = b"dijkwacht ip2asn index 1\n"


def _read_index(path: Path, stamp: list, paths: list[Path]) -> AsTable | None:
    """The table from its index, or None if there is none or it does not match the files."""
    try:
        with path.open("rb") as handle:
            if handle.readline() != _MAGIC:
                return None
            header = json.loads(handle.readline())
            if header["stamp"] != stamp:
                return None
            table = AsTable()
            for family, counts in ((table._v4, header["v4"]), (table._v6, header["v6"])):
                for name, count in zip(("starts", "ends", "asns", "buckets"), counts):
                    getattr(family, name).fromfile(handle, count)
            table._info = {asn: AsInfo(asn, country, name) for asn, country, name in json.loads(handle.read())}
    except (OSError, EOFError, ValueError, KeyError, TypeError):
        return None  # a missing, old or damaged index: parse the table again
    table.files = tuple(TableFile(p, rows[0], rows[1], p.stat().st_mtime) for p, rows in zip(paths, header["rows"]))
    return table


def _write_index(path: Path, stamp: list, table: AsTable) -> None:
    """Write the index atomically; a read-only data directory only costs the next load its parse."""
    families = (table._v4, table._v6)
    header = {
        "stamp": stamp,
        "rows": [[f.rows_v4, f.rows_v6] for f in table.files],
        **{key: [len(getattr(f, n)) for n in ("starts", "ends", "asns", "buckets")] for key, f in zip(("v4", "v6"), families)},
    }
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(_MAGIC + json.dumps(header).encode() + b"\n")
                for family in families:
                    for name in ("starts", "ends", "asns", "buckets"):
                        getattr(family, name).tofile(handle)
                handle.write(json.dumps([[i.asn, i.country, i.name] for i in table._info.values()], ensure_ascii=False).encode())
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError as exc:
        log.warning("asn.index_not_written", path=str(path), error=str(exc))


# --- fetching -----------------------------------------------------------------------------------


def _count_rows(body: bytes, url: str) -> tuple[int, int]:
    """Parse a downloaded table completely: (IPv4 rows, IPv6 rows), or FeedError."""
    try:
        text = gzip.decompress(body) if body[:2] == b"\x1f\x8b" else body
        counts = [0, 0]
        for version, *_ in parse_rows(io.StringIO(text.decode("utf-8", "replace")), url):
            counts[version == 6] += 1
    except (OSError, EOFError, zlib.error) as exc:
        raise FeedError(FEED, url, f"not a gzip file: {exc}") from None
    except ConfigError as exc:
        raise FeedError(FEED, url, f"line {exc.line}: {exc.message}") from None
    if not counts[0] + counts[1]:
        raise FeedError(FEED, url, "the table has no routed ranges")
    return counts[0], counts[1]


def _store(path: Path, body: bytes, rows: int, force: bool) -> None:
    """Atomically replace `path`, unless the new table has fewer than half of the old one's rows."""
    if path.exists() and not force:
        try:
            with gzip.open(path, "rb") as handle:
                old = sum(1 for _ in handle)
        except (OSError, EOFError, zlib.error):
            old = 0  # a broken old file is replaced
        if rows * 2 < old:
            raise FeedError(FEED, str(path), f"refusing to replace it: new table has {rows} rows, fewer than half of the {old} in the existing file (force to override)")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(body if body[:2] == b"\x1f\x8b" else gzip.compress(body))
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


async def update_table(data_dir: Path, *, url: str | None = None, session: aiohttp.ClientSession | None = None, timeout: float = 30.0, force: bool = False) -> FeedResult:
    """Download the ip2asn table (default URL) into `data_dir`/ip2asn-combined.tsv.gz; a failed,
    malformed or suspiciously shrunken download keeps the old file."""
    url = url or URL
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / COMBINED
    own = session is None
    if session is None:  # trust_env: HTTPS_PROXY, HTTP_PROXY and NO_PROXY, as for the range feeds
        session = aiohttp.ClientSession(headers={"User-Agent": f"dijkwacht/{__version__}"}, trust_env=True)
    try:
        body = await _get(session, FEED, url, timeout)
        v4, v6 = await asyncio.to_thread(_count_rows, body, url)
        await asyncio.to_thread(_store, path, body, v4 + v6, force)
        await asyncio.to_thread(load_table, data_dir)  # builds the index now, not at the next start
    except FeedError as exc:
        return _failed(f"{exc.url}: {exc.reason}")
    except OSError as exc:
        return _failed(f"cannot write {path}: {exc}")
    finally:
        if own:
            await session.close()
    log.info("feed.updated", provider=FEED, v4=v4, v6=v6, path=str(path))
    return FeedResult(FEED, True, v4, v6, path)


def import_table(data_dir: Path, source_dir: Path, *, force: bool = False) -> FeedResult:
    """Like update_table, from an ip2asn-combined.tsv.gz fetched elsewhere (air-gapped sites)."""
    source = source_dir / COMBINED
    path = data_dir / COMBINED
    try:
        body = source.read_bytes()
        v4, v6 = _count_rows(body, str(source))
        data_dir.mkdir(parents=True, exist_ok=True)
        _store(path, body, v4 + v6, force)
        load_table(data_dir)
    except FeedError as exc:
        return _failed(f"{exc.url}: {exc.reason}")
    except OSError as exc:
        return _failed(f"{exc.filename or path}: {exc.strerror or exc}")
    log.info("feed.imported", provider=FEED, v4=v4, v6=v6, path=str(path))
    return FeedResult(FEED, True, v4, v6, path)


def _failed(error: str) -> FeedResult:
    log.warning("feed.failed", provider=FEED, error=error)
    return FeedResult(FEED, False, error=error)
