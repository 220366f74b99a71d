"""Progress of a long scan on stderr: a bar on a terminal, structured log lines otherwise.

The bar (tqdm) shows targets done, queries per second, the rate limit in force, targets with
errors and the time left. Without a terminal (a log file, a CI job) a `scan.progress` line
with the same figures is logged every `interval` seconds. Log lines written while the bar is
shown go above it instead of through it.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from typing import Any

import structlog

from .scanner import TargetResult

log = structlog.get_logger()

BAR_REFRESH = 0.5  # seconds between refreshes of the bar's figures
QPS_WINDOW = 5.0  # queries per second are measured over this many seconds


class _AboveBars:
    """A stderr for the logger that prints whole lines through tqdm.write (above the bar)."""

    def __init__(self, write: Callable[..., None]) -> None:
        self._write = write
        self._buffer = ""

    def write(self, text: str) -> int:
        self._buffer += text
        while "\n" in self._buffer:
            line, self._buffer = self._buffer.split("\n", 1)
            self._write(line, file=sys.stderr)
        return len(text)

    def flush(self) -> None:
        sys.stderr.flush()


def _postfix(figures: dict[str, Any]) -> str:
    parts = [f"{figures['qps']} q/s"]
    if "limit" in figures:
        parts.append(f"limit {figures['limit']} q/s")
    parts.append(f"{figures['errors']} with errors")
    if "to_retry" in figures:
        parts.append(f"{figures['to_retry']} to retry")
    return ", ".join(parts)


class Progress:
    """`mode` is "bar", "log" or "off". A phase (the first pass, the retry pass) has a total
    and a `queries` callable (the phase's sent queries so far) and a `rate` callable."""

    def __init__(self, mode: str, *, interval: float = 10.0) -> None:
        self.mode = mode
        self.interval = interval
        self._bar: Any = None
        self._task: asyncio.Task[None] | None = None
        self._phase = ""
        self._total = 0
        self._done = 0
        self._errors = 0
        self._pending = 0
        self._queries: Callable[[], int] = lambda: 0
        self._rate: Callable[[], float | None] = lambda: None
        self._samples: list[tuple[float, int]] = []
        self._started = 0.0

    @staticmethod
    def choose(quiet: bool) -> str:
        if quiet:
            return "off"
        return "bar" if sys.stderr.isatty() else "log"

    def begin(self, phase: str, total: int, queries: Callable[[], int], rate: Callable[[], float | None]) -> None:
        self.end()
        self._phase, self._total, self._done, self._errors, self._pending = phase, total, 0, 0, 0
        self._queries, self._rate = queries, rate
        self._started = time.monotonic()
        self._samples = [(self._started, queries())]
        if self.mode == "off" or not total:
            return
        if self.mode == "bar":
            from tqdm import tqdm

            self._bar = tqdm(
                total=total, desc=phase, unit="target", file=sys.stderr, dynamic_ncols=True, smoothing=0.05,
                bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} targets [{elapsed}, ETA {remaining}{postfix}]",
            )
            structlog.configure(logger_factory=structlog.PrintLoggerFactory(_AboveBars(tqdm.write)))
        self._task = asyncio.get_running_loop().create_task(self._tick())

    def advance(self, result: TargetResult, *, pending: bool = False) -> None:
        """One target done; `pending`: it failed transiently and waits for the retry pass."""
        self._done += 1
        self._errors += bool(result.errors)
        self._pending += pending
        if self._bar is not None:
            self._bar.update(1)

    def _figures(self) -> dict[str, Any]:
        now = time.monotonic()
        self._samples.append((now, self._queries()))
        while len(self._samples) > 2 and now - self._samples[1][0] >= QPS_WINDOW:
            self._samples.pop(0)
        (t0, q0), (t1, q1) = self._samples[0], self._samples[-1]
        qps = (q1 - q0) / (t1 - t0) if t1 > t0 else 0.0
        rate = self._rate()
        figures: dict[str, Any] = {"qps": round(qps), "errors": self._errors}
        if rate is not None:
            figures["limit"] = round(rate)
        if self._pending:
            figures["to_retry"] = self._pending
        return figures

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(BAR_REFRESH if self._bar is not None else self.interval)
            figures = self._figures()
            if self._bar is not None:
                self._bar.set_postfix_str(_postfix(figures), refresh=True)
            else:
                elapsed = time.monotonic() - self._started
                eta = (self._total - self._done) * elapsed / self._done if self._done else None
                log.info("scan.progress", phase=self._phase, done=self._done, total=self._total,
                         percent=round(100 * self._done / self._total, 1), eta_s=None if eta is None else round(eta), **figures)

    def end(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        if self._bar is not None:
            self._bar.close()
            self._bar = None
            structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
