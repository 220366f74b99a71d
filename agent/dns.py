"""The DNS engine: every lookup of a scan goes through here.

It owns what detectors must not have to think about: one bounded concurrency budget for the
whole scan, an optional rate limit that backs off when answers fail (agent/ratelimit.py),
per-query timeout and retries (c-ares; it also retries over TCP on truncation),
CNAME chains followed with loop and depth limits, a cache so that a name asked by many targets
(an MX host, an SPF include, a CDN edge) is resolved once, and a classification of every answer
that never confuses "this does not exist" with "I could not find out".
"""

from __future__ import annotations

import asyncio
import functools
import time
import weakref
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiodns
import pycares

from .budget import Budget
from .ratelimit import Backoff, RateChange, TokenBucket

DATA = "data"
NXDOMAIN = "nxdomain"
NODATA = "nodata"
SERVFAIL = "servfail"
REFUSED = "refused"
TIMEOUT = "timeout"
ERROR = "error"
STATUSES = (DATA, NXDOMAIN, NODATA, SERVFAIL, REFUSED, TIMEOUT, ERROR)
FAILED = frozenset({SERVFAIL, REFUSED, TIMEOUT, ERROR})
# Failures a later try may not repeat: the server was busy, limited us or lost the packet.
TRANSIENT = frozenset({SERVFAIL, REFUSED, TIMEOUT})
QTYPES = ("A", "AAAA", "CNAME", "MX", "NS", "PTR", "SOA", "SRV", "TXT", "CAA")
MAX_CHAIN = 8

_ERRNO = {
    aiodns.error.ARES_ENOTFOUND: NXDOMAIN,
    aiodns.error.ARES_ENODATA: NODATA,
    aiodns.error.ARES_ESERVFAIL: SERVFAIL,
    aiodns.error.ARES_EREFUSED: REFUSED,
    aiodns.error.ARES_ETIMEOUT: TIMEOUT,
}
_TRANSIENT_ERRNO = frozenset(e for e, status in _ERRNO.items() if status in TRANSIENT)
_QTYPES = {t: getattr(pycares, f"QUERY_TYPE_{t}") for t in QTYPES}
_TYPE_NAMES = {v: k for k, v in _QTYPES.items()}


@dataclass(frozen=True, slots=True)
class Answer:
    """The outcome of one lookup, after following CNAMEs.

    `records` holds values of `qtype` for the final name: an address string for A/AAAA,
    (priority, host) for MX, (priority, weight, port, target) for SRV, the joined text for TXT,
    a host name for NS/CNAME/PTR. `chain` lists the CNAME targets passed on the way.
    """

    name: str
    qtype: str
    status: str
    records: tuple[Any, ...] = ()
    chain: tuple[str, ...] = ()
    error: str = ""

    @property
    def failed(self) -> bool:
        """True when the truth is unknown (SERVFAIL, REFUSED, timeout, error): never absence."""
        return self.status in FAILED

    def describe(self) -> str:
        detail = f" ({self.error})" if self.error else ""
        return f"{self.qtype} {self.name}: {self.status.upper()}{detail}"


class _LoopResolver(aiodns.DNSResolver):
    """aiodns driven from the event loop's own selector, without c-ares' event thread.

    aiodns runs c-ares in a thread by default and hands every answer back through
    call_soon_threadsafe; with tens of thousands of queries the two threads then queue on
    c-ares' channel lock and the GIL (measured: about 10,000 queries/s). Driving the sockets
    from the loop -- aiodns' own sock_state_cb mode -- does the same work in one thread at
    about 19,000 queries/s.
    """

    def _make_channel(self, **kwargs: Any) -> tuple[bool, pycares.Channel]:
        this = weakref.ref(self)

        def sock_state(fd: int, readable: bool, writable: bool) -> None:
            resolver = this()
            if resolver is not None:
                resolver._sock_state_cb(fd, readable, writable)

        return False, pycares.Channel(sock_state_cb=sock_state, timeout=self._timeout, **kwargs)


# One raw response: status and the answer section as (owner, type, value) triples.
_Raw = tuple[str, tuple[tuple[str, str, Any], ...], str, float]


def _value(rtype: str, data: Any) -> Any:
    if rtype in ("A", "AAAA"):
        return data.addr
    if rtype == "MX":
        return (data.priority, data.exchange.lower().rstrip("."))
    if rtype == "TXT":
        raw = data.data
        return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    if rtype == "CNAME":
        return data.cname.lower().rstrip(".")
    if rtype == "NS":
        return data.nsdname.lower().rstrip(".")
    if rtype == "PTR":
        return data.dname.lower().rstrip(".")
    if rtype == "SRV":
        return (data.priority, data.weight, data.port, data.target.lower().rstrip("."))
    return data


class DNSEngine:
    """Asynchronous resolver with a shared budget, a cache and answer classification.

    `nameservers` are "ip:port" strings; empty means the system resolver (/etc/resolv.conf).
    `max_qps` limits the queries sent per second (None: no limit); with a limit the engine
    halves its rate when many answers fail and recovers gradually (ratelimit.Backoff), and
    makes the tries itself, so that every packet it sends has passed the limit.
    """

    def __init__(
        self,
        nameservers: Sequence[str] = (),
        *,
        timeout: float = 2.0,
        tries: int = 2,
        max_inflight: int = 200,
        cache_size: int = 100_000,
        failure_ttl: float = 30.0,
        negative_ttl: float = 60.0,
        max_ttl: float = 300.0,
        rotate_every: int = 15_000,
        stats: Counter[str] | None = None,
        max_qps: float | None = None,
    ) -> None:
        flags = pycares.ARES_FLAG_NOSEARCH | pycares.ARES_FLAG_EDNS
        # c-ares asks again at once after REFUSED or SERVFAIL and after each timeout; with a
        # limit those tries must wait for the bucket too, so the engine makes them itself.
        self._tries = tries
        channel_tries = 1 if max_qps else tries
        # Large socket buffers: a burst of answers that overflows the default buffer is
        # dropped by the kernel and costs a whole timeout before c-ares asks again.
        self._new_resolver = lambda: _LoopResolver(
            nameservers=list(nameservers) or None, timeout=timeout, tries=channel_tries, flags=flags,
            socket_receive_buffer_size=4 << 20, socket_send_buffer_size=1 << 20,
        )
        self._resolver = self._new_resolver()
        # c-ares keeps every answer in its own cache for the record's TTL (about 2 KB each;
        # pycares offers no switch), which at 300,000 queries is most of the process' memory.
        # A fresh channel every `rotate_every` queries bounds it; a retired channel is closed
        # once its last query has been answered. Renewing costs time (16,500 domains, two
        # workers: every 10,000 queries 14.9 s / 131 MB, 15,000 14.2 s / 148 MB, 25,000
        # 13.5 s / 181 MB, all processes' PSS): 15,000 keeps well inside a 200 MB budget.
        self._rotate_every = rotate_every
        self._sent = 0
        self._pending: dict[_LoopResolver, int] = {self._resolver: 0}
        self._closing: set[asyncio.Task[None]] = set()
        self._budget = Budget(max_inflight)
        self._cache: dict[tuple[str, str], tuple[float, _Raw]] = {}
        self._inflight: dict[tuple[str, str], asyncio.Future[_Raw]] = {}
        self._cache_size = cache_size
        # Shared answers live for their TTL, capped; failures only briefly, so one bad moment
        # does not stick. (Private per-target caches live for one scan.)
        self._failure_ttl = failure_ttl
        self._negative_ttl = negative_ttl
        self._max_ttl = max_ttl
        # Sent queries by result status; a daemon passes one Counter to every engine it builds.
        self.queries: Counter[str] = Counter() if stats is None else stats
        self.cache_hits = 0
        self._bucket = TokenBucket(max_qps) if max_qps else None
        self._backoff = Backoff(max_qps, cooldown=timeout) if max_qps else None
        self._answers = self._failed = 0  # answers since the controller last looked (with a limit)
        self._ticker: asyncio.TimerHandle | None = None
        self._resends: set[asyncio.Task[None]] = set()
        # Called with every change of the rate (backoff and recovery).
        self.rate_listeners: list[Callable[[RateChange], None]] = []
        self._closed = False

    @property
    def rate(self) -> float | None:
        """The current query rate limit, None without one."""
        return self._bucket.rate if self._bucket is not None else None

    async def close(self) -> None:
        self._closed = True  # a scan still running gets errors from now on, not a crash
        if self._ticker is not None:
            self._ticker.cancel()
        if self._bucket is not None:
            self._bucket.close()
        for task in list(self._resends):
            task.cancel()
        if self._resends:
            await asyncio.gather(*self._resends, return_exceptions=True)
        for resolver in list(self._pending):
            await resolver.close()
        self._pending.clear()
        if self._closing:
            await asyncio.gather(*self._closing)

    def _send(self, name: str, qtype: str, future: asyncio.Future[_Raw], attempt: int = 0) -> None:
        """Hand one query to c-ares; `future` gets the raw answer. `attempt` counts the tries
        the engine makes itself (with a rate limit), 0 without."""
        if self._closed:
            if not future.done():
                future.set_result((ERROR, (), "DNS engine closed", 0.0))
            return
        resolver = self._resolver
        self._pending[resolver] += 1
        try:
            # The channel directly, not aiodns' query_dns(): this runs for every query, and
            # aiodns' wrapping (a second future, partials, a context manager) and its result
            # conversion are work we would then undo.
            if attempt:
                done = lambda result, errno: self._answered_limited(future, result, errno, resolver, name, qtype, attempt)  # noqa: E731
            else:
                done = lambda result, errno: self._answered(future, result, errno, resolver)  # noqa: E731
            resolver._channel.query(name, _QTYPES[qtype], callback=done)
        except (pycares.AresError, ValueError, TypeError, UnicodeError, KeyError) as exc:  # a name (or type) c-ares refuses
            if not future.done():  # (c-ares may have answered through the callback already)
                self._pending[resolver] -= 1
                self.queries[ERROR] += 1
                future.set_result((ERROR, (), str(exc), self._failure_ttl))
            return
        self._sent += 1
        if self._sent >= self._rotate_every:
            self._rotate()

    def _rotate(self) -> None:
        old, self._resolver = self._resolver, self._new_resolver()
        self._pending[self._resolver] = 0
        self._sent = 0
        if not self._pending[old]:
            self._retire(old)

    def _retire(self, resolver: _LoopResolver) -> None:
        del self._pending[resolver]
        # Not from inside the channel's own callback: on the next loop iteration.
        task = asyncio.get_running_loop().create_task(resolver.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def _answered(self, future: asyncio.Future[_Raw], result: Any, errno: int | None, resolver: _LoopResolver) -> None:
        left = self._pending.get(resolver)
        if left is not None:
            self._pending[resolver] = left - 1
            if left == 1 and resolver is not self._resolver:
                self._retire(resolver)
        if future.done():
            return
        if errno is not None:
            status = _ERRNO.get(errno, ERROR)
            self.queries[status] += 1
            ttl = self._failure_ttl if status in FAILED else self._negative_ttl
            future.set_result((status, (), "" if status != ERROR else pycares.errno.strerror(errno), ttl))
            return
        self.queries[DATA] += 1
        rrs = []
        ttl = self._max_ttl
        for rr in result.answer:
            rtype = _TYPE_NAMES.get(rr.type)
            if rtype:
                rrs.append((rr.name.lower().rstrip("."), rtype, _value(rtype, rr.data)))
                ttl = min(ttl, rr.ttl)
        future.set_result((DATA, tuple(rrs), "", float(ttl)))

    def _answered_limited(self, future: asyncio.Future[_Raw], result: Any, errno: int | None, resolver: _LoopResolver, name: str, qtype: str, attempt: int) -> None:
        """An answer under a rate limit: tallied for the controller; a transient failure is
        asked again (through the bucket) while tries are left."""
        self._answers += 1
        if errno in _TRANSIENT_ERRNO:
            self._failed += 1
            if attempt < self._tries and not future.done():
                left = self._pending.get(resolver)
                if left is not None:
                    self._pending[resolver] = left - 1
                    if left == 1 and resolver is not self._resolver:
                        self._retire(resolver)
                self.queries[_ERRNO[errno]] += 1
                task = asyncio.get_running_loop().create_task(self._resend(name, qtype, future, attempt + 1))
                self._resends.add(task)
                task.add_done_callback(self._resends.discard)
                return
        self._answered(future, result, errno, resolver)

    def _take_now(self) -> bool:
        """A token without waiting, if there is one; starts the controller's clock."""
        assert self._bucket is not None
        if self._ticker is None:
            self._ticker = asyncio.get_running_loop().call_later(1.0, self._tick)
        return self._bucket.try_take()

    async def _resend(self, name: str, qtype: str, future: asyncio.Future[_Raw], attempt: int) -> None:
        assert self._bucket is not None
        try:
            await self._bucket.take()
        except asyncio.CancelledError:
            if not future.done():
                future.cancel()  # the engine is closing: askers see a cancelled query
            raise
        if not future.done():
            self._send(name, qtype, future, attempt)

    def _tick(self) -> None:
        """Once a second while limited: let the controller see the answers since last time."""
        assert self._backoff is not None and self._bucket is not None
        self._ticker = asyncio.get_running_loop().call_later(1.0, self._tick)
        answers, failed = self._answers, self._failed
        self._answers = self._failed = 0
        change = self._backoff.observe(answers, failed, time.monotonic())
        if change is not None:
            self._bucket.set_rate(change.rate)
            for listener in list(self.rate_listeners):
                listener(change)

    async def raw(self, name: str, qtype: str, cache: dict[tuple[str, str], _Raw] | None = None) -> _Raw:
        """One query, answered from `cache` (a caller's private dict) or the shared cache.

        Concurrent askers of the same name share one query. NXDOMAIN is kept for the name
        itself (key type ""): a name that does not exist has no records of any type, so the
        AAAA after an NXDOMAIN A, say, is never sent.
        """
        key = (name, qtype)
        if cache is not None:
            hit = cache.get(key) or cache.get((name, ""))
            if hit is not None:
                self.cache_hits += 1
                return hit
        else:
            entry = self._cache.get(key) or self._cache.get((name, ""))
            if entry is not None and entry[0] > time.monotonic():
                self.cache_hits += 1
                return entry[1]
        while (pending := self._inflight.get(key)) is not None:
            self.cache_hits += 1
            try:
                return await asyncio.shield(pending)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if not pending.cancelled() or (task is not None and task.cancelling()):
                    raise
                # the asker that sent it was cancelled before the query left: ask again
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_Raw] = loop.create_future()
        self._inflight[key] = future  # before waiting for the budget, so that one query is sent
        if not self._budget.try_acquire():
            try:
                await self._budget.acquire()
            except BaseException:
                del self._inflight[key]
                future.cancel()
                raise
        if self._bucket is not None and not self._take_now():
            try:
                await self._bucket.take()
            except BaseException:
                self._budget.release()
                del self._inflight[key]
                future.cancel()
                raise
        future.add_done_callback(functools.partial(self._settled, key, cache, self._budget))
        self._send(name, qtype, future, 1 if self._bucket is not None else 0)
        # Shielded: a caller that is cancelled (a detector timeout) must not cancel the query
        # that other targets may be waiting for; it completes and is cached regardless.
        return await asyncio.shield(future)

    def _settled(self, key: tuple[str, str], cache: dict[tuple[str, str], _Raw] | None, budget: Budget, future: asyncio.Future[_Raw]) -> None:
        budget.release()
        del self._inflight[key]
        if future.cancelled():
            return
        raw = future.result()
        if raw[0] == NXDOMAIN:
            key = (key[0], "")
        if cache is not None:
            cache[key] = raw
        else:
            self._remember(key, raw)

    def _remember(self, key: tuple[str, str], raw: _Raw) -> None:
        if len(self._cache) >= self._cache_size:
            # Drop the oldest tenth: insertion order approximates age, and this stays O(1) amortised.
            for old in list(self._cache)[: self._cache_size // 10 or 1]:
                del self._cache[old]
        if raw[3] > 0:
            self._cache[key] = (time.monotonic() + raw[3], raw)

    async def resolve(self, name: str, qtype: str, cache: dict[tuple[str, str], _Raw] | None = None, *, local_suffix: str = "") -> Answer:
        """Look up `name`/`qtype`, following CNAMEs across queries with loop and depth limits.

        Names ending in `local_suffix` use `cache` (a per-target dict); others use the shared cache.
        A `qtype` not in QTYPES is the caller's mistake (a detector's error), not a DNS failure.
        """
        if qtype not in _QTYPES:
            raise ValueError(f"unknown record type {qtype!r}: one of {', '.join(QTYPES)}")
        name = name.lower().rstrip(".")
        chain: list[str] = []
        seen = {name}
        current = name
        for _ in range(MAX_CHAIN):
            private = cache if cache is not None and local_suffix and (current == local_suffix or current.endswith("." + local_suffix)) else None
            status, rrs, error, _ = await self.raw(current, qtype, private)
            if status != DATA:
                return Answer(name, qtype, status, (), tuple(chain), error)
            if qtype == "CNAME":
                targets = tuple(v for owner, t, v in rrs if t == "CNAME" and owner == current)
                return Answer(name, qtype, DATA if targets else NODATA, targets[:1], tuple(chain))
            cnames = {owner: v for owner, t, v in rrs if t == "CNAME"}
            while current in cnames:
                current = cnames[current]
                if current in seen:
                    return Answer(name, qtype, ERROR, (), tuple(chain), f"CNAME loop at {current}")
                seen.add(current)
                chain.append(current)
                if len(chain) > MAX_CHAIN:
                    return Answer(name, qtype, ERROR, (), tuple(chain), "CNAME chain too long")
            records = tuple(v for owner, t, v in rrs if t == qtype and owner == current)
            if records:
                return Answer(name, qtype, DATA, records, tuple(chain))
            if not chain or chain[-1] != current or not cnames:
                return Answer(name, qtype, NODATA, (), tuple(chain))
            # The chain left the answer (another zone): ask for its end.
        return Answer(name, qtype, ERROR, (), tuple(chain), "CNAME chain too long")
