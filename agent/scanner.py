"""The scan orchestrator, shared by `dijkwacht scan` and the daemon.

For one target it runs every detector concurrently, each under the core's timeout, times them,
captures their exceptions and failed lookups as errors, checks what they returned against the
detector contract (see `accept`), then merges the findings into dependencies and attaches name,
parent, jurisdiction and `foreign` from the catalog. Third-party detectors run on their own
threads (see isolation.py); built-in ones on the scan's loop.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import time
from collections import deque
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from .asn import parse_provider_id
from .budget import Budget
from .catalog import CONFIDENCES, EMAIL_ROLES, Catalog, is_foreign
from .detector import CONFIDENCE_RANK, Detector, DetectorContext, Finding, TargetResolver, stronger
from .dns import TRANSIENT, DNSEngine
from .errors import describe
from .ipranges import IPRanges
from .isolation import Isolation
from .ratelimit import RateChange
from .targets import Target

log = structlog.get_logger()

CATEGORY_ORDER = {"email": 0, "video": 1, "cdn": 2, "hosting": 3, "dns": 4}


def target_slots(concurrency: int, rate: float | None) -> int:
    """Targets in flight under a query rate: a target asks about 16 questions, so `rate / 2`
    targets wait at most about 8 s for their turn -- far inside the detector timeout."""
    return concurrency if rate is None else max(2, min(concurrency, int(rate / 2)))


@dataclass(frozen=True, slots=True)
class Dependency:
    category: str
    provider: str
    name: str
    jurisdiction: str  # ISO alpha-2 of the ultimate parent, "" if unknown
    foreign: bool
    evidence: tuple[str, ...]
    confidence: str
    parent: str = ""
    role: str = ""  # mailbox, gateway, sending, meeting, cdn, hosting, dns, or a plugin's

    def to_json(self) -> dict[str, Any]:
        return {
            "category": self.category,
            "role": self.role,
            "provider": self.provider,
            "name": self.name,
            "jurisdiction": self.jurisdiction,
            "foreign": self.foreign,
            "evidence": list(self.evidence),
            "confidence": self.confidence,
            "parent": self.parent,
        }


def _role_rank(role: str) -> int:
    """Email roles first to last (mailbox, gateway, sending); any other role after them."""
    return EMAIL_ROLES.index(role) if role in EMAIL_ROLES else len(EMAIL_ROLES)


@dataclass(frozen=True, slots=True)
class ScanError:
    detector: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"detector": self.detector, "message": self.message}


@dataclass(slots=True)
class TargetResult:
    target: Target
    dependencies: list[Dependency] = field(default_factory=list)
    errors: list[ScanError] = field(default_factory=list)
    incomplete: frozenset[str] = frozenset()  # categories whose detectors could not finish cleanly
    scanned: frozenset[str] = frozenset()  # categories that were looked at
    duration: float = 0.0  # seconds
    timings: dict[str, float] = field(default_factory=dict)  # detector -> seconds
    transient: bool = False  # a lookup timed out, was refused or SERVFAILed: a later try may answer
    retried: bool = False  # this is the result of a second scan of the target
    warnings: list[ScanError] = field(default_factory=list)  # see DetectorContext.warn

    def to_json(self) -> dict[str, Any]:
        out = {
            "target": self.target.domain,
            "dependencies": [d.to_json() for d in self.dependencies],
            "errors": [e.to_json() for e in self.errors],
        }
        if self.warnings:
            out["warnings"] = [w.to_json() for w in self.warnings]
        if self.target.labels:
            out["labels"] = dict(self.target.labels)
        if self.retried:
            out["retried"] = True
        return out


@dataclass(frozen=True)
class Services:
    """The shared, read-only (or internally synchronised) parts every scan uses."""

    dns: DNSEngine
    catalog: Catalog
    ip: IPRanges
    home: frozenset[str]
    http: Any = None  # HttpProbe when probing is on


MAX_FINDINGS = 1000  # per detector and target; real detectors return a handful
_ROLE = re.compile(r"^[a-z0-9][a-z0-9-]*$")


def accept(returned: Any, detector: Detector, catalog: Catalog, ip: IPRanges) -> tuple[list[Finding], str]:
    """The findings of `returned` that keep the detector contract, and what was wrong with the rest.

    The contract: a list (or tuple) of `Finding` (the class itself) whose category is one the
    detector declares, whose confidence is a known one, whose evidence is a list of strings and
    whose provider is in the catalog or an AS organisation the IP-to-AS table knows (`as<N>`;
    an unknown provider would silently count as "not foreign"). Only exact built-in types are accepted, so checking runs no plugin code on the
    scan's loop; accepted findings are copied, so the plugin cannot change them afterwards.
    """
    if type(returned) not in (list, tuple):
        return [], f"detect() returned {type(returned).__name__}, not a list of Finding"
    if len(returned) > MAX_FINDINGS:
        return [], f"detect() returned {len(returned)} findings (at most {MAX_FINDINGS} are accepted)"
    found: list[Finding] = []
    problems: list[str] = []
    for i, item in enumerate(returned):
        finding, problem = _check(item, detector, catalog, ip)
        if finding is not None:
            found.append(finding)
        elif len(problems) < 3:
            problems.append(f"finding {i}: {problem}")
    rejected = len(returned) - len(found)
    if not rejected:
        return found, ""
    more = f" (and {rejected - len(problems)} more)" if rejected > len(problems) else ""
    return found, f"rejected {rejected} of {len(returned)} findings: " + "; ".join(problems) + more


def _check(item: Any, detector: Detector, catalog: Catalog, ip: IPRanges) -> tuple[Finding | None, str]:
    if type(item) is not Finding:
        return None, f"{type(item).__name__}, not a Finding"
    category, provider, evidence, confidence, service = item.category, item.provider, item.evidence, item.confidence, item.service
    if type(category) is not str or category not in detector.categories:
        return None, f"category {_show(category)} is not one the detector declares ({', '.join(detector.categories)})"
    if type(confidence) is not str or confidence not in CONFIDENCES:
        return None, f"confidence {_show(confidence)} is not one of {', '.join(CONFIDENCES)}"
    if type(evidence) not in (list, tuple) or not all(type(e) is str for e in evidence):
        return None, f"evidence must be a list of strings, not {_shape(evidence)}"
    if type(provider) is not str or not (provider in catalog.providers or _known_as(provider, ip)):
        return None, f"provider {_show(provider)} is not in the catalog"
    if type(service) is not str:
        return None, f"service must be a string, not {type(service).__name__}"
    role = item.role
    if type(role) is not str or (role and not _ROLE.match(role)):
        return None, f"role {_show(role)} is not a lowercase word ([a-z0-9-])"
    return Finding(category, provider, list(evidence), confidence, service, role), ""


def _known_as(provider: str, ip: IPRanges) -> bool:
    asn = parse_provider_id(provider)
    return asn is not None and ip.as_info(asn) is not None


def _show(value: Any) -> str:
    return repr(value[:60]) if type(value) is str else type(value).__name__


def _shape(value: Any) -> str:
    if type(value) in (list, tuple):
        return f"a {type(value).__name__} holding " + ", ".join(sorted({type(v).__name__ for v in value}))
    return type(value).__name__


class Classifier:
    """Merges findings into dependencies and applies the ownership model, in one place."""

    def __init__(self, catalog: Catalog, home: frozenset[str], today: dt.date | None = None, ip: IPRanges | None = None) -> None:
        self.catalog = catalog
        self.home = home
        self.today = today
        self.ip = ip  # names the AS organisations (provider "as<N>") that are not in the catalog

    def dependencies(self, findings: Iterable[Finding]) -> list[Dependency]:
        """One dependency per (category, provider). Its role is the first of its findings'
        roles in EMAIL_ROLES order: Microsoft as mailbox (MX) and as sender (SPF) is one
        mailbox dependency, so a provider is counted once per category."""
        catalog = self.catalog
        merged: dict[tuple[str, str], Finding] = {}
        for f in findings:
            key = (f.category, f.provider)
            role = f.role or catalog.default_role(f.category, f.provider)
            seen = merged.get(key)
            if seen is None:
                merged[key] = Finding(f.category, f.provider, list(dict.fromkeys(f.evidence)), f.confidence, f.service, role)
                continue
            seen.evidence.extend(e for e in f.evidence if e not in seen.evidence)
            seen.confidence = stronger(seen.confidence, f.confidence)
            seen.service = seen.service or f.service
            if _role_rank(role) < _role_rank(seen.role):
                seen.role = role
        day = self.today or dt.date.today()
        out = []
        for f in merged.values():
            provider = catalog.providers.get(f.provider)
            if provider is None:
                out.append(self._uncatalogued(f))
                continue
            owner = provider.owner_on(day)
            foreign = is_foreign(owner.jurisdiction, self.home)
            name = f.service or provider.name
            out.append(Dependency(f.category, f.provider, name, owner.jurisdiction, foreign, tuple(f.evidence), f.confidence, owner.parent, f.role))
        out.sort(key=lambda d: (CATEGORY_ORDER.get(d.category, 99), d.category, -CONFIDENCE_RANK.get(d.confidence, 0), d.provider))
        return out


    def _uncatalogued(self, f: Finding) -> Dependency:
        """A provider the catalog does not know. An AS organisation (as<N>, attributed through
        the IP-to-AS table) gets its holder and registration country; anything else no
        jurisdiction."""
        asn = parse_provider_id(f.provider)
        info = self.ip.as_info(asn) if asn is not None and self.ip is not None else None
        if info is None:
            return Dependency(f.category, f.provider, f.service or f.provider, "", False, tuple(f.evidence), f.confidence, "", f.role)
        name = f"AS{info.asn} {info.name}".strip()
        foreign = is_foreign(info.country, self.home)
        return Dependency(f.category, f.provider, name, info.country, foreign, tuple(f.evidence), f.confidence, info.name, f.role)


class Scanner:
    """Runs detectors on targets. With `isolation`, detectors not named in `trusted` run on lanes."""

    def __init__(
        self,
        services: Services,
        detectors: Sequence[Detector],
        *,
        detector_timeout: float = 30.0,
        today: dt.date | None = None,
        isolation: Isolation | None = None,
        trusted: Iterable[str] = (),
    ) -> None:
        self.services = services
        self.detectors = list(detectors)
        self.detector_timeout = detector_timeout
        self.classifier = Classifier(services.catalog, services.home, today, services.ip)
        trusted = frozenset(trusted)
        self.lanes = {} if isolation is None else {d.name: isolation.lane(d.name) for d in self.detectors if d.name not in trusted}
        if isolation is not None:
            isolation.watchdog.watch(self.detectors)

    async def _run(self, detector: Detector, target: Target, cache: dict) -> tuple[list[Finding], list[str], float, bool, list[str]]:
        services = self.services
        resolver = TargetResolver(services.dns, target.domain, cache)
        ctx = DetectorContext(resolver, services.catalog, services.ip, detector.options, services.http)
        started = time.perf_counter()
        lane = self.lanes.get(detector.name)
        if lane is None:
            returned, problem, transient = await self._on_loop(detector, target, ctx)
        else:
            returned, problem, transient = await lane.run(detector, target, ctx, self.detector_timeout)
        findings: list[Finding] = []
        problems = [problem] if problem else []
        if not problem:
            findings, rejected = accept(returned, detector, services.catalog, services.ip)
            if rejected:
                problems.append(rejected)
        if problems:
            log.warning("detector.failed", detector=detector.name, target=target.domain, error=problems[0])
        for answer in resolver.failures:
            transient = transient or answer.status in TRANSIENT
            message = answer.describe()
            if message not in problems:
                problems.append(message)
        return findings, problems, time.perf_counter() - started, transient, ctx.warnings

    async def _on_loop(self, detector: Detector, target: Target, ctx: DetectorContext) -> tuple[Any, str, bool]:
        """(returned value, "", False) or (None, why it failed, whether that is transient: a timeout)."""
        try:
            async with asyncio.timeout(self.detector_timeout):  # no extra task, unlike wait_for
                return await detector.detect(target, ctx), "", False
        except TimeoutError:
            return None, f"timed out after {self.detector_timeout:g}s", True
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():  # the scan itself is cancelled: shutdown, /probe timeout
                raise
            return None, "raised CancelledError", False
        except KeyboardInterrupt:  # on the main thread this is the operator's Ctrl-C
            raise
        except BaseException as exc:  # a broken detector must never take the scan down
            return None, describe(exc), False

    async def scan(self, target: Target) -> TargetResult:
        t0 = time.perf_counter()
        cache: dict = {}  # the target's own names, shared by its detectors only
        outcomes = await asyncio.gather(*(self._run(d, target, cache) for d in self.detectors))
        findings: list[Finding] = []
        errors: list[ScanError] = []
        warnings: list[ScanError] = []
        incomplete: set[str] = set()
        scanned: set[str] = set()
        timings = {}
        transient = False
        for detector, (found, problems, seconds, passing, noted) in zip(self.detectors, outcomes):
            warnings.extend(ScanError(detector.name, w) for w in noted)
            transient = transient or passing
            scanned.update(detector.categories)
            timings[detector.name] = seconds
            if problems:
                incomplete.update(detector.categories)
                errors.extend(ScanError(detector.name, p) for p in problems)
            findings.extend(found)
        return TargetResult(
            target,
            self.classifier.dependencies(findings),
            errors,
            frozenset(incomplete),
            frozenset(scanned),
            time.perf_counter() - t0,
            timings,
            transient,
            warnings=warnings,
        )

    async def scan_all(self, targets: Iterable[Target], concurrency: int = 64) -> AsyncIterator[TargetResult]:
        """Scan targets with at most `concurrency` in progress; yield results in input order.

        Tasks are created a window ahead of the one being awaited, so one slow target delays
        only its own place in the output, not the scanning of the others. Under a query rate
        limit the targets in flight follow the rate (target_slots).
        """
        engine = self.services.dns
        budget = Budget(target_slots(concurrency, engine.rate))

        def follow(change: RateChange) -> None:
            budget.resize(target_slots(concurrency, change.rate))

        if engine.rate is not None:
            engine.rate_listeners.append(follow)

        async def bounded(target: Target) -> TargetResult:
            async with budget:
                return await self.scan(target)

        window: deque[asyncio.Task[TargetResult]] = deque()
        iterator = iter(targets)
        # Wide enough that a target waiting out DNS timeouts (seconds) does not stall the rest.
        limit = max(concurrency * 16, 2048)
        try:
            for target in iterator:
                window.append(asyncio.ensure_future(bounded(target)))
                if len(window) >= limit:
                    yield await window.popleft()
            while window:
                yield await window.popleft()
        finally:
            for task in window:
                task.cancel()
            if follow in engine.rate_listeners:
                engine.rate_listeners.remove(follow)
