"""Fetch providers' official IP range lists (or read them from a directory, for air-gapped
sites) and write them as `<provider-id>.txt` range files.

Bad input loses nothing: a feed that fails to download or parse, or that suddenly shrinks to
less than half of the file on disk (a truncated download), leaves the old file untouched.
Each file is replaced atomically, so readers never see a half-written list.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import structlog

from . import __version__

log = structlog.get_logger()

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

AMAZON_URLS = ("https://ip-ranges.amazonaws.com/ip-ranges.json",)
# The Service Tags file name carries its date and changes weekly; this page links the current one.
MICROSOFT_URLS = ("https://www.microsoft.com/en-us/download/details.aspx?id=56519",)
GOOGLE_URLS = ("https://www.gstatic.com/ipranges/goog.json", "https://www.gstatic.com/ipranges/cloud.json")
CLOUDFLARE_URLS = ("https://www.cloudflare.com/ips-v4/", "https://www.cloudflare.com/ips-v6/")
FASTLY_URLS = ("https://api.fastly.com/public-ip-list",)
ORACLE_URLS = ("https://docs.oracle.com/en-us/iaas/tools/public_ip_ranges.json",)

MAX_BYTES = 64 * 1024 * 1024  # the largest feed (Azure Service Tags) is a few MiB
_SERVICE_TAGS_LINK = re.compile(r"""https?://[^\s"'<>]+?/ServiceTags_Public_(\d{8})\.json""")


class FeedError(Exception):
    """A feed could not be fetched or its content is not what the provider publishes."""

    def __init__(self, provider: str, url: str, reason: str) -> None:
        self.provider = provider
        self.url = url
        self.reason = reason
        super().__init__(f"{provider}: {url}: {reason}")


@dataclass(frozen=True, slots=True)
class FeedResult:
    provider: str
    ok: bool
    prefixes_v4: int = 0
    prefixes_v6: int = 0
    path: Path | None = None
    error: str = ""


# --- parsers: pure, body in, networks out; `url` only names the source in errors ---------------


def _json(provider: str, body: bytes | str, url: str) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise FeedError(provider, url, f"malformed JSON: {exc}") from None


def _networks(provider: str, values: Iterable[object], url: str) -> list[Network]:
    networks = []
    for value in values:
        # ip_network() would also accept an int; a feed must give CIDR text.
        if not isinstance(value, str):
            raise FeedError(provider, url, f"prefix {value!r} is not a string")
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise FeedError(provider, url, f"invalid CIDR prefix {value!r}") from None
    if not networks:
        raise FeedError(provider, url, "the list has no prefixes")
    return networks


def _walk(provider: str, url: str, extract: Callable[[], list[object]]) -> list[Network]:
    """Run `extract` over parsed JSON, turning a missing key or wrong shape into a FeedError."""
    try:
        values = extract()
    except (KeyError, TypeError, AttributeError) as exc:
        raise FeedError(provider, url, f"unexpected structure (missing or wrong key {exc})") from None
    return _networks(provider, values, url)


def parse_amazon(body: bytes | str, url: str) -> list[Network]:
    data = _json("amazon", body, url)
    return _walk("amazon", url, lambda: [p["ip_prefix"] for p in data["prefixes"]] + [p["ipv6_prefix"] for p in data["ipv6_prefixes"]])


def parse_microsoft(body: bytes | str, url: str) -> list[Network]:
    data = _json("microsoft", body, url)
    return _walk("microsoft", url, lambda: [prefix for tag in data["values"] for prefix in tag["properties"]["addressPrefixes"]])


def find_service_tags_url(page: bytes | str, url: str) -> str:
    """The newest ServiceTags_Public_YYYYMMDD.json link on Microsoft's download details page."""
    text = page.decode("utf-8", "replace") if isinstance(page, bytes) else page
    # The page embeds its links in script JSON, where "/" may be escaped as "\/".
    links = {match.group(0): match.group(1) for match in _SERVICE_TAGS_LINK.finditer(text.replace("\\/", "/"))}
    if not links:
        raise FeedError("microsoft", url, "no ServiceTags_Public_YYYYMMDD.json link on the page")
    return max(links, key=lambda link: links[link])


def _google_prefix(entry: Mapping[str, object]) -> object:
    if "ipv4Prefix" in entry:
        return entry["ipv4Prefix"]
    return entry["ipv6Prefix"]


def parse_google(body: bytes | str, url: str) -> list[Network]:
    """goog.json and cloud.json share one format: each entry has ipv4Prefix or ipv6Prefix."""
    data = _json("google", body, url)
    return _walk("google", url, lambda: [_google_prefix(entry) for entry in data["prefixes"]])


def parse_cloudflare(body: bytes | str, url: str) -> list[Network]:
    try:
        text = body.decode("utf-8") if isinstance(body, bytes) else body
    except UnicodeDecodeError:
        raise FeedError("cloudflare", url, "the list is not UTF-8 text") from None
    return _networks("cloudflare", (line for line in text.splitlines() if line.strip()), url)


def parse_fastly(body: bytes | str, url: str) -> list[Network]:
    data = _json("fastly", body, url)
    return _walk("fastly", url, lambda: list(data["addresses"]) + list(data["ipv6_addresses"]))


def parse_oracle(body: bytes | str, url: str) -> list[Network]:
    """Oracle publishes IPv4 only."""
    data = _json("oracle", body, url)
    return _walk("oracle", url, lambda: [cidr["cidr"] for region in data["regions"] for cidr in region["cidrs"]])


@dataclass(frozen=True, slots=True)
class Feed:
    urls: tuple[str, ...]
    parse: Callable[[bytes | str, str], list[Network]]
    # The names the official lists have when downloaded by hand (for `--from DIR`), one per
    # list; a glob picks the newest (last by name) of dated files.
    files: tuple[str, ...]
    # For a URL that is a landing page linking to the current list rather than the list itself.
    resolve: Callable[[bytes | str, str], str] | None = None


FEEDS: dict[str, Feed] = {
    "amazon": Feed(AMAZON_URLS, parse_amazon, ("ip-ranges.json",)),
    "microsoft": Feed(MICROSOFT_URLS, parse_microsoft, ("ServiceTags_Public_*.json",), find_service_tags_url),
    "google": Feed(GOOGLE_URLS, parse_google, ("goog.json", "cloud.json")),
    "cloudflare": Feed(CLOUDFLARE_URLS, parse_cloudflare, ("ips-v4", "ips-v6")),
    "fastly": Feed(FASTLY_URLS, parse_fastly, ("public-ip-list",)),
    "oracle": Feed(ORACLE_URLS, parse_oracle, ("public_ip_ranges.json",)),
}


# --- range files --------------------------------------------------------------------------------


def render(provider: str, sources: Sequence[str], fetched: dt.datetime, networks: Iterable[Network]) -> tuple[str, int, int]:
    """The range file text for `networks` (normalised, collapsed, IPv4 first) and its v4/v6 counts."""
    nets = list(networks)
    v4 = list(ipaddress.collapse_addresses(n for n in nets if n.version == 4))
    v6 = list(ipaddress.collapse_addresses(n for n in nets if n.version == 6))
    lines = [
        f"# provider: {provider}",
        f"# source: {' + '.join(sources)}",
        f"# fetched: {fetched.astimezone(dt.UTC).isoformat(timespec='seconds')}",
        f"# prefixes: {len(v4)} IPv4, {len(v6)} IPv6",
        *map(str, v4),
        *map(str, v6),
    ]
    return "\n".join(lines) + "\n", len(v4), len(v6)


def _count_prefixes(path: Path) -> int:
    with path.open(encoding="utf-8", errors="replace") as handle:
        return sum(1 for line in handle if line.strip() and not line.lstrip().startswith("#"))


class _Refused(Exception):
    pass


def _store(path: Path, text: str, count: int, force: bool) -> None:
    """Atomically replace `path` with `text`, unless that would more than halve its prefixes."""
    try:
        old_count = _count_prefixes(path)
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        old_count, mode = 0, 0o644
    if not force and count * 2 < old_count:
        raise _Refused(
            f"refusing to replace {path}: new list has {count} prefixes, "
            f"fewer than half of the {old_count} in the existing file (force to override)"
        )
    # The temporary name does not end in .txt, so a concurrent loader never picks it up.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


# --- fetching -----------------------------------------------------------------------------------


async def _get(session: aiohttp.ClientSession, provider: str, url: str, timeout: float) -> bytes:
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=timeout)) as response:
            if response.status != 200:
                raise FeedError(provider, url, f"HTTP {response.status} {response.reason or ''}".rstrip())
            if (response.content_length or 0) > MAX_BYTES:
                raise FeedError(provider, url, f"response larger than {MAX_BYTES} bytes")
            body = bytearray()
            async for chunk in response.content.iter_chunked(1 << 16):
                body += chunk
                if len(body) > MAX_BYTES:
                    raise FeedError(provider, url, f"response larger than {MAX_BYTES} bytes")
            return bytes(body)
    except TimeoutError:
        raise FeedError(provider, url, f"timed out after {timeout:g} s") from None
    except aiohttp.ClientError as exc:
        raise FeedError(provider, url, f"request failed: {str(exc) or type(exc).__name__}") from None


async def _update_one(session: aiohttp.ClientSession, path: Path, urls: Sequence[str], *, timeout: float, force: bool) -> FeedResult:
    provider = path.stem
    feed = FEEDS[provider]
    try:
        networks: list[Network] = []
        sources = []
        # A provider's URLs are fetched in turn: all must succeed, a partial merge would lose data.
        for listed in urls:
            url, body = listed, await _get(session, provider, listed, timeout)
            if feed.resolve is not None:
                url = feed.resolve(body, listed)
                body = await _get(session, provider, url, timeout)
            networks += feed.parse(body, url)
            sources.append(url)
        text, v4, v6 = render(provider, sources, dt.datetime.now(dt.UTC), networks)
        await asyncio.to_thread(_store, path, text, v4 + v6, force)
    except FeedError as exc:
        return _failed(provider, f"{exc.url}: {exc.reason}")
    except _Refused as exc:
        return _failed(provider, str(exc))
    except OSError as exc:
        return _failed(provider, f"cannot write {path}: {exc}")
    log.info("feed.updated", provider=provider, v4=v4, v6=v6, path=str(path))
    return FeedResult(provider, True, v4, v6, path)


def _import_one(path: Path, source_dir: Path, *, force: bool) -> FeedResult:
    """Like _update_one, from the official files downloaded elsewhere into `source_dir`. The
    range file is dated with the oldest file's modification time: the data is that old."""
    provider = path.stem
    feed = FEEDS[provider]
    try:
        networks: list[Network] = []
        sources = []
        mtimes = []
        for pattern in feed.files:
            found = sorted(source_dir.glob(pattern))
            if not found:
                raise FeedError(provider, str(source_dir), f"no {pattern} in the directory")
            source = found[-1]
            networks += feed.parse(source.read_bytes(), str(source))
            sources.append(f"file:{source}")
            mtimes.append(source.stat().st_mtime)
        text, v4, v6 = render(provider, sources, dt.datetime.fromtimestamp(min(mtimes), dt.UTC), networks)
        _store(path, text, v4 + v6, force)
    except FeedError as exc:
        return _failed(provider, f"{exc.url}: {exc.reason}")
    except _Refused as exc:
        return _failed(provider, str(exc))
    except OSError as exc:
        return _failed(provider, f"{exc.filename or path}: {exc.strerror or exc}")
    log.info("feed.imported", provider=provider, v4=v4, v6=v6, path=str(path))
    return FeedResult(provider, True, v4, v6, path)


def import_ranges(data_dir: Path, source_dir: Path, *, providers: Sequence[str] | None = None, force: bool = False) -> list[FeedResult]:
    """Write range files from the providers' official lists in `source_dir` (an air-gapped
    site fetches them elsewhere, under the names in Feed.files); same rules as update_ranges."""
    chosen = list(FEEDS) if providers is None else list(dict.fromkeys(providers))
    if not source_dir.is_dir():
        raise FileNotFoundError(f"--from {source_dir}: not a directory")
    data_dir.mkdir(parents=True, exist_ok=True)
    return [_import_one(data_dir / f"{p}.txt", source_dir, force=force) for p in chosen]


def _failed(provider: str, error: str) -> FeedResult:
    log.warning("feed.failed", provider=provider, error=error)
    return FeedResult(provider, False, error=error)


async def update_ranges(
    data_dir: Path,
    *,
    providers: Sequence[str] | None = None,
    urls: Mapping[str, Sequence[str]] | None = None,
    session: aiohttp.ClientSession | None = None,
    timeout: float = 30.0,
    force: bool = False,
) -> list[FeedResult]:
    """Fetch the feeds of `providers` (default: all of FEEDS) concurrently and rewrite their files.

    `urls` replaces a provider's default URLs. `timeout` bounds each request. `force` replaces a
    file even when the new list has fewer than half of its prefixes (an empty list never does).
    Results are in `providers` order; files of other providers are never touched.
    """
    chosen = list(FEEDS) if providers is None else list(dict.fromkeys(providers))
    unknown = sorted({*chosen, *(urls or {})} - FEEDS.keys())
    if unknown:
        raise ValueError(f"unknown provider feed(s): {', '.join(unknown)}; known: {', '.join(FEEDS)}")
    # A bare string would be iterated as characters; no URL at all would write an empty file.
    overrides = {p: (u,) if isinstance(u, str) else tuple(u) for p, u in (urls or {}).items()}
    if not all(overrides.values()):
        raise ValueError("every provider in urls needs at least one URL")
    data_dir.mkdir(parents=True, exist_ok=True)
    own_session = session is None
    if session is None:
        # trust_env: HTTPS_PROXY, HTTP_PROXY and NO_PROXY from the environment, as curl does.
        session = aiohttp.ClientSession(headers={"User-Agent": f"dijkwacht/{__version__}"}, trust_env=True)
    try:
        jobs = (_update_one(session, data_dir / f"{p}.txt", overrides.get(p, FEEDS[p].urls), timeout=timeout, force=force) for p in chosen)
        return list(await asyncio.gather(*jobs))
    finally:
        if own_session:
            await session.close()
