"""HTTP(S) header probe for CDN fingerprints. Off unless the operator switches it on.

It reads response headers and nothing else: no body is read, redirects are followed only to
the target's own names, every request has a strict timeout, and header size is capped by
aiohttp's parser limits. Host names are resolved through dijkwacht's own DNS engine, so the
probe sees exactly the addresses the scan saw.
"""

from __future__ import annotations

import asyncio
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


class EngineResolver(AbstractResolver):
    """aiohttp resolver backed by the DNSEngine (shared cache, same nameservers)."""

    def __init__(self, engine: DNSEngine) -> None:
        self._engine = engine

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list[dict[str, Any]]:
        out = []
        for qtype, fam in (("A", socket.AF_INET), ("AAAA", socket.AF_INET6)):
            answer = await self._engine.resolve(host, qtype)
            if answer.status == DATA:
                out += [{"hostname": host, "host": a, "port": port, "family": fam, "proto": 0, "flags": socket.AI_NUMERICHOST} for a in answer.records]
        if not out:
            raise OSError(f"{host} has no addresses")
        return out

    async def close(self) -> None:
        return None


def _own(host: str, domain: str) -> bool:
    return host == domain or host.endswith("." + domain)


class HttpProbe:
    def __init__(self, engine: DNSEngine, *, timeout: float = 5.0, https_port: int = 443, http_port: int = 80, verify_tls: bool = True) -> None:
        self._engine = engine
        self._timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=timeout)
        self._ports = {"https": https_port, "http": http_port}
        self._verify = verify_tls
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(resolver=EngineResolver(self._engine), limit=256, ssl=None if self._verify else False)
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
