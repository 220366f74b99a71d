"""Running one detector class directly against the fake DNS server, for the per-detector tests.

No Scanner and no Classifier: a test sees the detector's raw findings (duplicates included, as
the detector returned them) and the lookups its TargetResolver recorded as failed.
"""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import cache
from typing import Any

from dijkwacht.catalog import Catalog, load_catalog
from dijkwacht.detector import Detector, DetectorContext, Finding, TargetResolver
from dijkwacht.dns import Answer, DNSEngine
from dijkwacht.ipranges import IPRanges
from dijkwacht.targets import Target
from dijkwacht.testing import FakeDNSServer

C, I, F = "confirmed", "indicated", "inferred"


@cache
def catalog() -> Catalog:
    """The built-in catalog, loaded once for all tests (it is read-only)."""
    return load_catalog()


def ranges(*pairs: tuple[str, str]) -> IPRanges:
    """Hand-built IP ranges: ranges(("ovh", "2001:db8:1::/48"), ("leaseweb", "2001:db8:1::/48"))."""
    return IPRanges([(provider, ipaddress.ip_network(cidr)) for provider, cidr in pairs])


def f(category: str, provider: str, confidence: str, *evidence: str) -> tuple[str, str, str, tuple[str, ...]]:
    """One expected finding, in the form `Run.summary` lists them."""
    return (category, provider, confidence, evidence)


def expect(*findings: tuple[str, str, str, tuple[str, ...]]) -> list[tuple[str, str, str, tuple[str, ...]]]:
    return sorted(findings)


@dataclass
class Run:
    findings: list[Finding]
    failures: list[Answer]

    @property
    def summary(self) -> list[tuple[str, str, str, tuple[str, ...]]]:
        """Every finding as (category, provider, confidence, evidence), sorted; duplicates kept."""
        return sorted((x.category, x.provider, x.confidence, tuple(x.evidence)) for x in self.findings)

    @property
    def providers(self) -> set[tuple[str, str]]:
        return {(x.category, x.provider) for x in self.findings}

    @property
    def failed(self) -> list[str]:
        return [a.describe() for a in self.failures]


@asynccontextmanager
async def detector_context(
    server: FakeDNSServer,
    domain: str,
    *,
    ip: IPRanges | None = None,
    settings: Mapping[str, Any] | None = None,
    http: Any = None,
    engine: DNSEngine | None = None,
) -> AsyncIterator[DetectorContext]:
    """A DetectorContext as the Scanner builds it, over a DNSEngine pointed at `server`."""
    own = engine is None
    engine = engine or DNSEngine([server.address], timeout=0.4, tries=1)
    try:
        resolver = TargetResolver(engine, domain, {})
        yield DetectorContext(resolver, catalog(), ip if ip is not None else IPRanges(), dict(settings or {}), http)
    finally:
        if own:
            await engine.close()


async def run_detector(
    detector: Detector,
    server: FakeDNSServer,
    domain: str,
    *,
    ip: IPRanges | None = None,
    hosts: Iterable[str] = (),
    http: Any = None,
    engine: DNSEngine | None = None,
) -> Run:
    async with detector_context(server, domain, ip=ip, settings=detector.options, http=http, engine=engine) as ctx:
        findings = list(await detector.detect(Target(domain, hosts=tuple(hosts)), ctx))
    return Run(findings, ctx.dns.failures)


def asked(server: FakeDNSServer, name: str, qtype: str) -> int:
    """How often the fake server was asked `name`/`qtype`."""
    return server.asked[(name, qtype)]


def names_asked(server: FakeDNSServer) -> set[str]:
    return {name for name, _ in server.asked}
