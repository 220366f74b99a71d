"""What a detector is, what it gets, and what it returns.

Detectors only look and report: they get a context with the DNS engine, the catalog and the
IP lookup, and return findings. Timeouts, timing, error capture, jurisdiction and the
`foreign` flag are the core's business, so every plugin gets them right for free.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from .catalog import CONFIDENCES, Catalog, Fact
from .dns import DATA, NXDOMAIN, Answer, DNSEngine
from .ipranges import IPRanges
from .targets import Target

if TYPE_CHECKING:
    from .httpprobe import HttpProbe

CONFIRMED, INDICATED, INFERRED = CONFIDENCES  # strongest first
CONFIDENCE_RANK = {c: len(CONFIDENCES) - i for i, c in enumerate(CONFIDENCES)}


def stronger(a: str, b: str) -> str:
    return a if CONFIDENCE_RANK.get(a, 0) >= CONFIDENCE_RANK.get(b, 0) else b


@dataclass(slots=True)
class Finding:
    """One provider a detector found for a target, with the evidence an engineer can check."""

    category: str
    provider: str
    evidence: list[str]
    confidence: str = CONFIRMED
    service: str = ""
    # What the provider does for the target (email: mailbox, gateway or sending; plugins may
    # use identity or their own). Empty: the core takes the catalog's default for the provider.
    role: str = ""

    @classmethod
    def from_fact(cls, fact: Fact, evidence: str, *, category: str | None = None, confidence: str | None = None) -> Finding:
        return cls(category or fact.category, fact.provider, [evidence], confidence or fact.confidence, fact.service, fact.role)


class TargetResolver:
    """The DNS view of one detector scanning one target.

    It records every lookup that failed (SERVFAIL, REFUSED, timeout), so the core knows the
    detector's result is incomplete even if the detector ignores the failure, and caches the
    target's own names privately (they are asked by several detectors but by no other target).
    """

    __slots__ = ("_engine", "_cache", "_domain", "failures")

    def __init__(self, engine: DNSEngine, domain: str, cache: dict) -> None:
        self._engine = engine
        self._domain = domain
        self._cache = cache
        self.failures: list[Answer] = []

    async def resolve(self, name: str, qtype: str) -> Answer:
        answer = await self._engine.resolve(name, qtype, self._cache, local_suffix=self._domain)
        # A lookup that failed, or the target itself not existing, makes the result unknown.
        if answer.failed or (answer.status == NXDOMAIN and answer.name == self._domain):
            self.failures.append(answer)
        return answer

    async def addresses(self, name: str) -> tuple[list[str], tuple[str, ...]]:
        """A and AAAA of `name`: (addresses, CNAME chain)."""
        v4 = await self.resolve(name, "A")
        v6 = await self.resolve(name, "AAAA")
        addresses = [*(v4.records if v4.status == DATA else ()), *(v6.records if v6.status == DATA else ())]
        return addresses, v4.chain or v6.chain


@dataclass
class DetectorContext:
    """Everything a detector may use. Shared parts are read-only."""

    dns: TargetResolver
    catalog: Catalog
    ip: IPRanges
    settings: Mapping[str, Any] = field(default_factory=dict)
    http: HttpProbe | None = None  # None unless HTTP probing is switched on
    # Problems of the target's own records that do not make the result unknown (an SPF loop,
    # more than 10 SPF lookups): reported with the scan, never counted as a failed lookup.
    warnings: list[str] = field(default_factory=list)

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)


class Detector:
    """Base class for detectors. Subclass, set the class attributes, implement `detect`.

    `settings` declares the detector's options and their defaults; users set them in
    `[detectors.<name>]` and the core validates the types before the detector is built.
    """

    name: ClassVar[str] = ""
    categories: ClassVar[tuple[str, ...]] = ()
    description: ClassVar[str] = ""
    settings: ClassVar[Mapping[str, Any]] = {}

    def __init__(self, settings: Mapping[str, Any] | None = None) -> None:
        self.options: dict[str, Any] = {**self.settings, **(settings or {})}

    async def detect(self, target: Target, ctx: DetectorContext) -> Iterable[Finding]:
        raise NotImplementedError
