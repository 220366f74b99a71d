"""How fast a scan may ask: a smooth token bucket, and the AIMD controller that steers it.

A public resolver serves one client up to a limit (Google Public DNS documents 1,500 queries
per second per client address) and answers the rest with REFUSED or SERVFAIL, or not at all.
A campaign of 16,500 domains therefore asks at a fixed pace (`max_qps`), slows down when the
share of failed answers rises, and comes back gradually when answers return -- the additive
increase, multiplicative decrease that TCP uses to share a link.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog

log = structlog.get_logger()

# The default when any nameserver is not on this machine: a third of the per-client limit a
# big public resolver documents (1,500 q/s), so that other users of the same resolver or of the
# same NAT address keep their share, and a small organisation's resolver is not flooded. It
# still scans 16,500 domains (about 16 queries each) in under ten minutes.
POLITE_QPS = 500.0

# A bucket holds at most this many seconds' worth of tokens: an idle moment never turns into
# a burst larger than 5 % of one second's queries.
BURST_SECONDS = 0.05
# The smallest pause between two wake-ups of waiting queries: each wake-up releases the
# queries its time has earned (at 750 q/s per worker, about 8), not one timer per query.
# 2,000 domains at 1,500 q/s: 7.1 s CPU with 10 ms, 9.3 s with 2 ms, the same wall time.
MIN_WAKE = 0.010


def resolv_conf_nameservers(path: Path = Path("/etc/resolv.conf")) -> list[str]:
    """The addresses of the system resolver, as c-ares reads them (empty if none)."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    found = []
    for line in lines:
        words = line.split("#", 1)[0].split(";", 1)[0].split()
        if len(words) >= 2 and words[0] == "nameserver":
            found.append(words[1])
    return found


def _host(nameserver: str) -> str:
    """The address of "ip", "ip:port", "[ipv6]:port" or a bare IPv6 address, zone index dropped."""
    text = nameserver.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    return text.partition("%")[0]


def all_loopback(nameservers: Sequence[str], resolv_conf: Path = Path("/etc/resolv.conf")) -> bool:
    """True when every server asked is on this machine. No nameservers means the system
    resolver; a resolv.conf without any means c-ares' default, 127.0.0.1."""
    servers = list(nameservers) or resolv_conf_nameservers(resolv_conf) or ["127.0.0.1"]
    try:
        return all(ipaddress.ip_address(_host(s)).is_loopback for s in servers)
    except ValueError:
        return False


def default_max_qps(nameservers: Sequence[str], resolv_conf: Path = Path("/etc/resolv.conf")) -> float | None:
    """None (no limit) when every nameserver is loopback, else POLITE_QPS."""
    return None if all_loopback(nameservers, resolv_conf) else POLITE_QPS


class TokenBucket:
    """At most `rate` tokens per second, handed out first come, first served.

    Tokens accrue continuously up to BURST_SECONDS' worth; a taker that finds none waits in a
    FIFO queue that one timer drains as tokens accrue. Any one-second window therefore sees at
    most rate * (1 + BURST_SECONDS) tokens taken.
    """

    __slots__ = ("_rate", "_capacity", "_tokens", "_stamp", "_waiters", "_timer", "_clock")

    def __init__(self, rate: float, *, clock=time.monotonic) -> None:
        self._clock = clock
        self._rate = 0.0
        self._capacity = 1.0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._stamp = clock()
        self._tokens = 1.0  # start smoothly, not with a full bucket
        self.set_rate(rate)

    @property
    def rate(self) -> float:
        return self._rate

    def set_rate(self, rate: float) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        if self._rate:
            self._refill()  # tokens earned so far at the old rate
        self._rate = float(rate)
        self._capacity = max(1.0, self._rate * BURST_SECONDS)
        self._tokens = min(self._tokens, self._capacity)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self._schedule()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self._capacity, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now

    def try_take(self) -> bool:
        """Take a token without waiting, if one is there and nobody waits before us."""
        if self._waiters:
            return False
        self._refill()
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    async def take(self) -> None:
        if self.try_take():
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._schedule()
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._tokens += 1.0  # handed to us as we were cancelled: give it back
            else:
                self._waiters.remove(waiter)
            raise

    def _schedule(self) -> None:
        if self._timer is None and self._waiters:
            delay = max(MIN_WAKE, (1.0 - self._tokens) / self._rate)
            self._timer = asyncio.get_running_loop().call_later(delay, self._wake)

    def _wake(self) -> None:
        self._timer = None
        self._refill()
        while self._waiters and self._tokens >= 1.0:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._tokens -= 1.0
                waiter.set_result(None)
        self._schedule()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


@dataclass(frozen=True, slots=True)
class RateChange:
    """One step of the controller: `kind` is "backoff", "recover" or "restored" (back at the limit)."""

    kind: str
    previous: float
    rate: float
    failed_share: float
    answers: int
    at: float  # time.time()


class Backoff:
    """AIMD on a rate, fed the answers of each interval (about a second).

    When more than `threshold` of an interval's answers failed (REFUSED, SERVFAIL, timeout),
    the rate halves, down to `ceiling / 32` at most; a second halving waits `cooldown` seconds
    (answers to queries sent before the first one are still arriving: a timeout reports one
    `cooldown` late). While at most `recover_below` fail, the rate grows by 5 % of the ceiling
    per interval, so from half to full in ten intervals.
    """

    MIN_ANSWERS = 10  # fewer answers than this say nothing about a resolver's mood

    def __init__(self, ceiling: float, *, cooldown: float = 2.0, threshold: float = 0.10, recover_below: float = 0.02) -> None:
        self.ceiling = ceiling
        self.rate = ceiling
        self.floor = max(ceiling / 32, min(1.0, ceiling))
        self.cooldown = cooldown
        self.threshold = threshold
        self.recover_below = recover_below
        self._last_cut = float("-inf")

    def observe(self, answers: int, failed: int, now: float) -> RateChange | None:
        """The answers (and how many of them failed) since the last call; a change, or None."""
        if answers < self.MIN_ANSWERS:
            return None
        share = failed / answers
        previous = self.rate
        if share > self.threshold:
            if now - self._last_cut < self.cooldown or self.rate <= self.floor:
                return None
            self._last_cut = now
            self.rate = max(self.floor, self.rate / 2)
            return RateChange("backoff", previous, self.rate, share, answers, time.time())
        if share <= self.recover_below and self.rate < self.ceiling and now - self._last_cut >= self.cooldown:
            self.rate = min(self.ceiling, self.rate + self.ceiling * 0.05)
            kind = "restored" if self.rate >= self.ceiling else "recover"
            return RateChange(kind, previous, self.rate, share, answers, time.time())
        return None


def log_rate_change(change: RateChange, **context: object) -> None:
    """The log lines of the controller: every backoff, and the return to the full rate."""
    if change.kind == "backoff":
        log.warning("dns.backoff", rate=round(change.rate, 1), previous=round(change.previous, 1), failed_share=round(change.failed_share, 3), answers=change.answers, **context)
    elif change.kind == "restored":
        log.info("dns.rate_restored", rate=round(change.rate, 1), **context)
