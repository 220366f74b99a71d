"""The query rate: token bucket, AIMD controller, the polite default, and the engine under a limit."""

from __future__ import annotations

import asyncio
import time

import pytest

from dijkwacht.config import AgentSettings
from dijkwacht.dns import DATA, REFUSED, TIMEOUT, DNSEngine
from dijkwacht.ratelimit import POLITE_QPS, Backoff, TokenBucket, all_loopback, default_max_qps, resolv_conf_nameservers
from dijkwacht.testing import FakeDNSServer


async def test_bucket_paces_takers_first_come_first_served():
    bucket = TokenBucket(200)
    order: list[int] = []
    stamps: list[float] = []

    async def take(i: int) -> None:
        await bucket.take()
        order.append(i)
        stamps.append(time.monotonic())

    t0 = time.monotonic()
    await asyncio.gather(*(take(i) for i in range(100)))
    elapsed = time.monotonic() - t0
    assert order == list(range(100))
    # 100 tokens at 200/s: about half a second; never faster than the rate allows
    assert elapsed >= 99 / 200 * 0.95
    # smooth: no 100 ms holds more than 20 + the 5 % burst (+1 for the window's edges)
    assert max(sum(1 for s in stamps if a <= s < a + 0.1) for a in stamps) <= 20 + 10 + 1
    bucket.close()


async def test_bucket_rate_change_and_cancelled_taker():
    bucket = TokenBucket(1)
    assert bucket.try_take()
    assert not bucket.try_take()
    waiter = asyncio.ensure_future(bucket.take())
    await asyncio.sleep(0.01)
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)
    assert not bucket._waiters
    bucket.set_rate(1000)
    t0 = time.monotonic()
    for _ in range(20):
        await bucket.take()
    assert time.monotonic() - t0 < 1.0  # the new rate applies at once
    with pytest.raises(ValueError):
        bucket.set_rate(0)
    bucket.close()


def test_backoff_halves_on_failures_and_recovers_additively():
    b = Backoff(1000, cooldown=2)
    assert b.observe(5, 5, 0) is None  # too few answers to judge
    change = b.observe(100, 30, 10)
    assert (change.kind, change.previous, change.rate) == ("backoff", 1000, 500)
    assert b.observe(100, 30, 11) is None  # within the cooldown: answers to earlier queries
    assert b.observe(100, 30, 12.5).rate == 250
    assert b.observe(100, 0, 13) is None  # no recovery right after a cut either
    rates = [b.observe(100, 1, 15 + i).rate for i in range(15)]
    assert rates[:3] == [300, 350, 400]
    assert rates[-1] == 1000 and max(rates) == 1000
    kinds = [c.kind for c in (b.observe(100, 0, 40),) if c]
    assert kinds == []  # at the ceiling: nothing to do
    b2 = Backoff(64, cooldown=0)
    for t in range(20):
        b2.observe(100, 100, t)
    assert b2.rate == 2  # floor: a thirty-second of the limit


def test_backoff_recovery_reports_restored_at_the_ceiling():
    b = Backoff(100, cooldown=0)
    b.observe(50, 50, 0)
    kinds = [b.observe(50, 0, t).kind for t in range(1, 11)]
    assert kinds[-1] == "restored" and set(kinds[:-1]) == {"recover"}


def test_polite_default_unless_every_server_is_loopback(tmp_path):
    assert default_max_qps(["127.0.0.1:53", "[::1]:5353"]) is None
    assert default_max_qps(["127.0.0.1:53", "9.9.9.9:53"]) == POLITE_QPS
    assert default_max_qps(["[2001:db8::1]:53"]) == POLITE_QPS
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("# comment\nsearch example.nl\nnameserver 127.0.0.53\noptions edns0\n")
    assert resolv_conf_nameservers(resolv) == ["127.0.0.53"]
    assert all_loopback([], resolv)
    resolv.write_text("nameserver 127.0.0.1\nnameserver 192.0.2.53 ; office\nnameserver fe80::1%eth0\n")
    assert resolv_conf_nameservers(resolv) == ["127.0.0.1", "192.0.2.53", "fe80::1%eth0"]
    assert not all_loopback([], resolv)
    resolv.write_text("")
    assert all_loopback([], resolv)  # c-ares then asks 127.0.0.1
    assert all_loopback([], tmp_path / "missing")
    assert AgentSettings(nameservers=("192.0.2.1:53",)).query_rate == POLITE_QPS
    assert AgentSettings(nameservers=("192.0.2.1:53",), max_qps=0).query_rate is None
    assert AgentSettings(nameservers=("127.0.0.1:53",), max_qps=50).query_rate == 50


class RefusingServer(FakeDNSServer):
    """Answers REFUSED to every query beyond `limit` in the last second."""

    def __init__(self, *args, limit: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.limit = limit
        self.stamps: list[float] = []
        self.refused = 0

    def answer(self, qname, qtype):
        now = time.monotonic()
        self.stamps.append(now)
        if sum(1 for s in self.stamps[-self.limit - 1:] if s > now - 1) > self.limit:
            self.refused += 1
            return 5, [], []
        return super().answer(qname, qtype)


async def test_engine_under_a_limit_backs_off_and_makes_its_own_tries():
    zone = "".join(f"n{i}.example.nl A 192.0.2.{i % 250}\n" for i in range(400))
    server = await RefusingServer(zone, limit=100).start()
    engine = DNSEngine([server.address], timeout=0.5, tries=3, max_qps=400)
    changes = []
    engine.rate_listeners.append(changes.append)
    try:
        answers = await asyncio.gather(*(engine.resolve(f"n{i}.example.nl", "A") for i in range(400)))
    finally:
        await engine.close()
        await server.stop()
    assert changes and changes[0].kind == "backoff" and changes[0].rate == 200
    assert engine.rate < 400
    # each refused try was counted and asked again through the bucket
    assert engine.queries[REFUSED] >= server.refused - sum(1 for a in answers if a.status == REFUSED) > 0
    assert sum(engine.queries.values()) == len(server.stamps)
    # more than the server's first second allows: later tries, slower, were answered
    assert sum(1 for a in answers if a.status == DATA) > 150


async def test_timed_out_tries_are_repeated_by_the_engine_under_a_limit(dns_server):
    server = await dns_server("", failures={"slow.example.nl": "timeout"})
    engine = DNSEngine([server.address], timeout=0.2, tries=2, max_qps=50)
    try:
        answer = await engine.resolve("slow.example.nl", "A")
    finally:
        await engine.close()
    assert answer.status == TIMEOUT
    assert server.asked[("slow.example.nl", "A")] == 2 and engine.queries[TIMEOUT] == 2
