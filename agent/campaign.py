"""A scan campaign: every target once, then the transient failures once more, more slowly.

The first pass scans the targets in input order (in this process or sharded over workers).
A target whose lookups failed for a reason a later try may not repeat (a timeout, REFUSED,
SERVFAIL, a detector timeout) waits; when the first pass is done, those targets are scanned
once more by a fresh engine (no cached failures) at half the rate at which the resolver
answered the first pass -- after a pause, under a limit, so that a resolver's per-second
limit has forgotten the first pass. Every result is handed on the moment it is final, with
its place in the input.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field

import structlog

from .dns import TRANSIENT
from .errors import one_line, shown
from .progress import Progress
from .ratelimit import RateChange, log_rate_change
from .runtime import Runtime
from .scanner import ScanError, TargetResult
from .targets import Target

log = structlog.get_logger()

RETRY_FLOOR = 20.0  # q/s: the retry pass is not slower than this (nor than half the limit)
RETRY_PAUSE = 2.0  # seconds between a rate-limited first pass and its retry pass


def written_name(item: Target | str) -> str:
    """The `target` a result of this input item carries: the domain, or an invalid name as one
    short line (what --resume compares the input with)."""
    return item.domain if isinstance(item, Target) else one_line(item, 253)


@dataclass
class CampaignStats:
    workers: int
    limit: float | None  # the scan's query rate limit, all workers together (None: no limit)
    queries: Counter[str] = field(default_factory=Counter)
    cache_hits: int = 0
    backoffs: int = 0
    lowest_rate: float | None = None  # the lowest the first pass' rate fell to
    retried: int = 0
    retry_rate: float | None = None
    first_pass_seconds: float = 0.0


class LocalSource:
    """The first pass in this process."""

    def __init__(self, runtime: Runtime, targets: list[Target], concurrency: int) -> None:
        self.runtime = runtime
        self.targets = targets
        self.concurrency = concurrency

    def results(self) -> AsyncIterator[TargetResult]:
        return self.runtime.scanner.scan_all(self.targets, self.concurrency)

    def queries(self) -> Counter[str]:
        return self.runtime.engine.queries

    @property
    def rate(self) -> float | None:
        return self.runtime.engine.rate

    @property
    def cache_hits(self) -> int:
        return self.runtime.engine.cache_hits


class Campaign:
    def __init__(self, items: Sequence[Target | str], progress: Progress, *, workers: int, limit: float | None, concurrency: int) -> None:
        self.items = items
        self.progress = progress
        self.concurrency = concurrency
        self.stats = CampaignStats(workers, limit)
        self._source = None
        self._phase = "scan"

    def rate_changed(self, change: RateChange, worker: int | None = None) -> None:
        """From the engines (or workers) of the campaign: log, and keep the figures for --stats."""
        context = {"phase": self._phase} | ({"worker": worker} if worker is not None else {})
        log_rate_change(change, **context)
        self.stats.backoffs += change.kind == "backoff"
        if self._phase == "scan" and self._source is not None and self._source.rate is not None:
            total = self._source.rate
            self.stats.lowest_rate = total if self.stats.lowest_rate is None else min(self.stats.lowest_rate, total)

    async def run(self, source, emit: Callable[[int, TargetResult], None], retry_runtime: Callable[[float], Runtime] | None) -> CampaignStats:
        """Scan everything; `emit(index, result)` gets each final result. `retry_runtime(rate)`
        builds the engine and scanner of the retry pass (None: no retries)."""
        self._source = source
        started = time.monotonic()
        valid = sum(isinstance(t, Target) for t in self.items)
        self.progress.begin("scan", valid, lambda: sum(source.queries().values()), lambda: source.rate)
        pending: list[tuple[int, TargetResult]] = []
        stream = source.results()
        try:
            for index, item in enumerate(self.items):
                if isinstance(item, str):
                    emit(index, TargetResult(Target(written_name(item)), errors=[ScanError("input", f"invalid domain name {shown(item)}")]))
                    continue
                result = await anext(stream)
                hold = result.transient and retry_runtime is not None
                self.progress.advance(result, pending=hold)
                if hold:
                    pending.append((index, result))
                else:
                    emit(index, result)
            async for _ in stream:  # let the stream finish (workers send their statistics last)
                pass
        finally:
            await stream.aclose()
            self.progress.end()
        self.stats.first_pass_seconds = time.monotonic() - started
        self.stats.queries.update(source.queries())
        self.stats.cache_hits += source.cache_hits
        if pending and retry_runtime is not None:
            await self._retry(pending, emit, retry_runtime)
        return self.stats

    def _retry_rate(self) -> float:
        """Half the rate of the first pass' answers that did not fail (what the resolver gave
        us), and at most half the rate the first pass ended with."""
        seconds = max(self.stats.first_pass_seconds, 1e-3)
        answered = sum(n for status, n in self.stats.queries.items() if status not in TRANSIENT) / seconds
        end = self._source.rate if self._source is not None else None
        if end is None:
            return max(RETRY_FLOOR, answered / 2)
        return max(min(RETRY_FLOOR, end / 2), min(answered, end) / 2)

    async def _retry(self, pending: list[tuple[int, TargetResult]], emit: Callable[[int, TargetResult], None], retry_runtime: Callable[[float], Runtime]) -> None:
        rate = self._retry_rate()
        self.stats.retried, self.stats.retry_rate = len(pending), rate
        self._phase = "retry"
        log.info("scan.retrying", targets=len(pending), rate=round(rate, 1), pause_s=RETRY_PAUSE if self.stats.limit is not None else 0)
        if self.stats.limit is not None:
            await asyncio.sleep(RETRY_PAUSE)
        runtime = retry_runtime(rate)
        engine = runtime.engine
        self.progress.begin("retry", len(pending), lambda: sum(engine.queries.values()), lambda: engine.rate)
        results = runtime.scanner.scan_all([r.target for _, r in pending], self.concurrency)
        try:
            for index, _ in pending:
                result = await anext(results)
                result.retried = True
                self.progress.advance(result)
                emit(index, result)
        finally:
            await results.aclose()
            self.progress.end()
            self.stats.queries.update(engine.queries)
            self.stats.cache_hits += engine.cache_hits
            await runtime.close()
