"""HTTP(S) header probe for CDN fingerprints. Off unless the operator switches it on.

It reads response headers and nothing else: no body is read, redirects are followed only to
the target's own names, every request has a strict timeout, and header size is capped by
aiohttp's parser limits. Host names are resolved through dijkwacht's own DNS engine, so the
probe sees exactly the addresses the scan saw -- and connects only to public ones: a target
whose name points at 127.0.0.1, a private network, link-local, CGNAT or a cloud metadata
address (169.254.169.254, fd00:ec2::254) is not contacted, unless the operator allows it
(`[agent] http_probe_allow_private`), because the answer would come back through /probe.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import socket
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver

from . import __version__
from .dns import DATA, DNSEngine

MAX_REDIRECTS = 3
USER_AGENT = f"dijkwacht/{__version__} (+dependency jurisdiction monitor; reads headers only)"


@dataclass(frozen=True)
class ProbeResult:
    url: str = ""
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    error: str = ""


_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def is_public(address: str) -> bool:
    """True for a globally routable unicast address, looking through IPv6 forms that carry an
    IPv4 address (mapped, 6to4, NAT64) so that ::ffff:127.0.0.1 is no way around the rule."""
    try:
        ip = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF) if ip in _NAT64 else None)
        if embedded is not None:
            return is_public(str(embedded))
    return ip.is_global and not ip.is_multicast


class EngineResolver(AbstractResolver):
    """aiohttp resolver backed by the DNSEngine (shared cache, same nameservers)."""

    def __init__(self, engine: DNSEngine, allow_private: bool = False) -> None:
        self._engine = engine
        self._allow_private = allow_private

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list[dict[str, Any]]:
        out = []
        refused = []
        for qtype, fam in (("A", socket.AF_INET), ("AAAA", socket.AF_INET6)):
            answer = await self._engine.resolve(host, qtype)
            if answer.status != DATA:
                continue
            for address in answer.records:
                if self._allow_private or is_public(address):
                    out.append({"hostname": host, "host": address, "port": port, "family": fam, "proto": 0, "flags": socket.AI_NUMERICHOST})
                else:
                    refused.append(address)
        if not out:
            if refused:
                # (errno, text): aiohttp shows only the strerror of what a resolver raises
                raise OSError(errno.EACCES, f"{host} has no public addresses (not contacted: {', '.join(refused[:4])}; see [agent] http_probe_allow_private)")
            raise OSError(f"{host} has no addresses")
        return out

    async def close(self) -> None:
        return None


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]").split("%")[0])
    except ValueError:
        return False
    return True


def _own(host: str, domain: str) -> bool:
    return host == domain or host.endswith("." + domain)


class HttpProbe:
    def __init__(self, engine: DNSEngine, *, timeout: float = 5.0, https_port: int = 443, http_port: int = 80, verify_tls: bool = True, allow_private: bool = False) -> None:
        self._engine = engine
        self._allow_private = allow_private
        self._timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=timeout)
        self._ports = {"https": https_port, "http": http_port}
        self._verify = verify_tls
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(resolver=EngineResolver(self._engine, self._allow_private), limit=256, ssl=None if self._verify else False)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self._timeout, headers={"User-Agent": USER_AGENT}, auto_decompress=False
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def headers(self, host: str, domain: str) -> ProbeResult:
        """GET https://host/ (then http://host/) and return the final response's headers."""
        last = ProbeResult(error="not probed")
        for scheme in ("https", "http"):
            last = await self._get(f"{scheme}://{host}:{self._ports[scheme]}/", domain)
            if not last.error:
                return last
        return last

    async def _get(self, url: str, domain: str) -> ProbeResult:
        session = self._client()
        try:
            for _ in range(MAX_REDIRECTS + 1):
                literal = aiohttp.client.URL(url).host or ""
                if not self._allow_private and _is_address(literal) and not is_public(literal):
                    # An address in the URL skips the resolver, so the same rule is applied here.
                    return ProbeResult(url, 0, {}, f"{literal} is not a public address (see [agent] http_probe_allow_private)")
                async with session.get(url, allow_redirects=False) as response:
                    headers = {k.lower(): v for k, v in response.headers.items()}
                    location = headers.get("location")
                    if response.status not in (301, 302, 303, 307, 308) or not location:
                        return ProbeResult(url, response.status, headers)
                    following = response.url.join(aiohttp.client.URL(location))
                    if not following.host or not _own(following.host.lower(), domain):
                        # Off the target's names: report what this hop said, go no further.
                        return ProbeResult(url, response.status, headers)
                    url = str(following)
            return ProbeResult(url, 0, {}, "too many redirects")
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError, ValueError) as exc:
            detail = str(exc)
            return ProbeResult(url, 0, {}, f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__)
