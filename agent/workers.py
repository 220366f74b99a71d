"""Sharding a large scan over worker processes, so that every CPU core does DNS work.

A scan of thousands of domains is CPU-bound in Python long before the DNS server is busy.
Workers are forked after the catalog, IP ranges and plugins are loaded (so they share that
read-only data copy-on-write) and before any event loop or c-ares channel exists. Target i
goes to worker i % n; each worker yields its shard in order, so the parent can restore the
input order by reading the workers round-robin. With each batch of results a worker reports its
query counts and its rate (under a limit, each worker has an equal share of it), so the parent
can show progress; Ctrl-C is the parent's business (workers ignore SIGINT and are stopped).
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import signal
import sys
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from .config import AgentSettings
from .errors import DijkwachtError
from .ratelimit import RateChange
from .runtime import Data, build_runtime
from .scanner import TargetResult
from .targets import Target

BATCH = 200
BATCH_SECONDS = 0.5  # a slow (rate-limited) worker still reports at least this often


@dataclass
class ScanStats:
    queries: Counter[str] = field(default_factory=Counter)
    cache_hits: int = 0


@dataclass
class _Batch:
    results: list[TargetResult]
    queries: dict[str, int]
    rate: float | None
    changes: list[RateChange]


@dataclass
class _Done:
    queries: dict[str, int]
    cache_hits: int


@dataclass
class _Failed:
    message: str


def auto_workers(targets: int) -> int:
    """One process for small scans (forking costs more than it saves), else one per core."""
    return 1 if targets < 2000 else max(1, min(os.cpu_count() or 1, 4))


def _work(settings: AgentSettings, data: Data, detector_settings: Mapping[str, Any], only: Sequence[str], shard: list[Target], conn: Connection) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent ends the scan cleanly and stops us

    async def main() -> None:
        changes: list[RateChange] = []
        runtime = build_runtime(settings, data, detector_settings, only=only, on_rate_change=changes.append)
        engine = runtime.engine

        def send(batch: list[TargetResult]) -> None:
            conn.send(_Batch(batch, dict(engine.queries), engine.rate, changes[:]))
            changes.clear()

        try:
            batch: list[TargetResult] = []
            sent = time.monotonic()
            async for result in runtime.scanner.scan_all(shard, settings.concurrency):
                batch.append(result)
                if len(batch) >= BATCH or time.monotonic() - sent >= BATCH_SECONDS:
                    send(batch)
                    batch = []
                    sent = time.monotonic()
            send(batch)
            conn.send(_Done(dict(engine.queries), engine.cache_hits))
        finally:
            await runtime.close()

    try:
        asyncio.run(main())
    except BaseException as exc:  # tell the parent (if it still listens), whatever happened
        with contextlib.suppress(OSError):
            conn.send(_Failed(f"{type(exc).__name__}: {exc}"))
        sys.exit(1)  # the parent reports it, in one line; no traceback from here
    finally:
        conn.close()


class Workers:
    """Forked scan workers and the pipes their results come back on.

    `settings.max_qps` is each worker's own share of the scan's rate. `on_rate_change` is
    called in the parent with each worker's rate changes (and the worker's number).
    """

    def __init__(self, settings: AgentSettings, data: Data, detector_settings: Mapping[str, Any], only: Sequence[str], targets: list[Target], n: int,
                 on_rate_change: Callable[[RateChange, int], None] | None = None) -> None:
        context = multiprocessing.get_context("fork")
        self.total = len(targets)
        self.stats = ScanStats()
        self._on_rate_change = on_rate_change
        self._queries: list[dict[str, int]] = [{} for _ in range(n)]
        self._rates: list[float | None] = [settings.query_rate] * n
        self._conns: list[Connection] = []
        self._procs = []
        for i in range(n):
            receive, send = context.Pipe(duplex=False)
            proc = context.Process(target=_work, args=(settings, data, detector_settings, only, targets[i::n], send), daemon=True)
            proc.start()
            send.close()
            self._conns.append(receive)
            self._procs.append(proc)

    async def results(self) -> AsyncIterator[TargetResult]:
        loop = asyncio.get_running_loop()
        n = len(self._conns)
        buffers: list[deque[TargetResult]] = [deque() for _ in range(n)]
        for i in range(self.total):
            w = i % n
            while not buffers[w]:
                message = await loop.run_in_executor(None, self._receive, w)
                if isinstance(message, _Batch):
                    buffers[w].extend(message.results)
                    self._progress(w, message)
                else:
                    raise DijkwachtError(f"scan worker {w} stopped early: {getattr(message, 'message', message)}")
            yield buffers[w].popleft()
        for w in range(n):
            message = await loop.run_in_executor(None, self._receive, w)
            while isinstance(message, _Batch):  # the last, empty one
                self._progress(w, message)
                message = await loop.run_in_executor(None, self._receive, w)
            if isinstance(message, _Done):
                self.stats.queries.update(message.queries)
                self.stats.cache_hits += message.cache_hits

    def _progress(self, w: int, message: _Batch) -> None:
        self._queries[w] = message.queries
        self._rates[w] = message.rate
        if self._on_rate_change is not None:
            for change in message.changes:
                self._on_rate_change(change, w)

    def queries(self) -> Counter[str]:
        """Queries sent so far by all workers, by result status (as of their last report)."""
        total: Counter[str] = Counter()
        for counts in self._queries:
            total.update(counts)
        return total

    @property
    def cache_hits(self) -> int:
        return self.stats.cache_hits

    @property
    def rate(self) -> float | None:
        """The scan's current rate limit: the workers' rates together (None: no limit)."""
        return None if any(r is None for r in self._rates) else sum(self._rates)  # type: ignore[misc]

    def _receive(self, w: int) -> object:
        try:
            return self._conns[w].recv()
        except EOFError:
            return _Failed("no more results (the worker exited)")

    def close(self, *, now: bool = False) -> None:
        """Wait for the workers to exit (or, `now`, stop them: an interrupted scan)."""
        for proc in self._procs:
            if now:
                proc.terminate()
            proc.join(timeout=0 if now else 5)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)
        for conn in self._conns:
            conn.close()
