"""Sharding a large scan over worker processes, so that every CPU core does DNS work.

A scan of thousands of domains is CPU-bound in Python long before the DNS server is busy.
Workers are forked after the catalog, IP ranges and plugins are loaded (so they share that
read-only data copy-on-write) and before any event loop or c-ares channel exists. Target i
goes to worker i % n; each worker yields its shard in order, so the parent can restore the
input order by reading the workers round-robin.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import sys
from collections import Counter, deque
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from .config import AgentSettings
from .errors import DijkwachtError
from .runtime import Data, build_runtime
from .scanner import TargetResult
from .targets import Target

BATCH = 200


@dataclass
class ScanStats:
    queries: Counter[str] = field(default_factory=Counter)
    cache_hits: int = 0


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
    async def main() -> None:
        runtime = build_runtime(settings, data, detector_settings, only=only)
        try:
            batch: list[TargetResult] = []
            async for result in runtime.scanner.scan_all(shard, settings.concurrency):
                batch.append(result)
                if len(batch) >= BATCH:
                    conn.send(batch)
                    batch = []
            if batch:
                conn.send(batch)
            conn.send(_Done(dict(runtime.engine.queries), runtime.engine.cache_hits))
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
    """Forked scan workers and the pipes their results come back on."""

    def __init__(self, settings: AgentSettings, data: Data, detector_settings: Mapping[str, Any], only: Sequence[str], targets: list[Target], n: int) -> None:
        context = multiprocessing.get_context("fork")
        self.total = len(targets)
        self.stats = ScanStats()
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
                if isinstance(message, list):
                    buffers[w].extend(message)
                else:
                    raise DijkwachtError(f"scan worker {w} stopped early: {getattr(message, 'message', message)}")
            yield buffers[w].popleft()
        for w in range(n):
            message = await loop.run_in_executor(None, self._receive, w)
            if isinstance(message, _Done):
                self.stats.queries.update(message.queries)
                self.stats.cache_hits += message.cache_hits

    def _receive(self, w: int) -> object:
        try:
            return self._conns[w].recv()
        except EOFError:
            return _Failed("no more results (the worker exited)")

    def close(self) -> None:
        for conn in self._conns:
            conn.close()
        for proc in self._procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()
