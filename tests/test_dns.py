"""The DNS engine against the in-process fake server: every answer class, chains, TCP, cache."""

from __future__ import annotations

import asyncio

import pytest

from dijkwacht.dns import DATA, ERROR, NODATA, NXDOMAIN, REFUSED, SERVFAIL, TIMEOUT, DNSEngine

ZONE = """
example.nl MX 10 example-nl.mail.protection.outlook.com.
example.nl MX 20 backup.example.nl.
example.nl NS ns1.transip.net.
example-nl.mail.protection.outlook.com A 52.101.68.1
www.example.nl CNAME www.example.nl.cdn.cloudflare.net.
www.example.nl.cdn.cloudflare.net CNAME edge.cloudflare.net.
edge.cloudflare.net A 104.16.1.1
edge.cloudflare.net AAAA 2606:4700::1
loop1.example.nl CNAME loop2.example.nl
loop2.example.nl CNAME loop1.example.nl
sub.deep.example.nl A 192.0.2.1
split.example.nl TXT "v=spf1 include:a.example" " include:b.example -all"
_sip._tls.example.nl SRV 100 1 443 sipdir.online.lync.com.
dangling.example.nl CNAME nowhere.example.nl.
"""
BIG = "".join(f'big.example.nl TXT "token{i}-{"a" * 70}"\n' for i in range(40))


@pytest.fixture
async def engine(dns_server):
    server = await dns_server(
        ZONE + BIG,
        failures={"sf.example.nl": "servfail", "slow.example.nl": "timeout", "rf.example.nl": "refused"},
        truncate=["tc.example.nl"],
    )
    engine = DNSEngine([server.address], timeout=0.3, tries=1)
    engine.server = server
    yield engine
    await engine.close()


async def test_data_answers_are_parsed(engine):
    mx = await engine.resolve("example.nl", "MX")
    assert mx.status == DATA
    assert sorted(mx.records) == [(10, "example-nl.mail.protection.outlook.com"), (20, "backup.example.nl")]
    ns = await engine.resolve("example.nl", "NS")
    assert ns.records == ("ns1.transip.net",)
    srv = await engine.resolve("_sip._tls.example.nl", "SRV")
    assert srv.records == ((100, 1, 443, "sipdir.online.lync.com"),)


async def test_cname_chain_is_followed_and_reported(engine):
    answer = await engine.resolve("WWW.Example.NL.", "A")
    assert answer.status == DATA
    assert answer.records == ("104.16.1.1",)
    assert answer.chain == ("www.example.nl.cdn.cloudflare.net", "edge.cloudflare.net")
    v6 = await engine.resolve("www.example.nl", "AAAA")
    assert v6.records == ("2606:4700::1",)


async def test_cname_query_returns_first_hop_only(engine):
    answer = await engine.resolve("www.example.nl", "CNAME")
    assert answer.records == ("www.example.nl.cdn.cloudflare.net",)
    none = await engine.resolve("example.nl", "CNAME")
    assert none.status == NODATA


async def test_cname_loop_is_an_error_not_absence(engine):
    answer = await engine.resolve("loop1.example.nl", "A")
    assert answer.status == ERROR
    assert answer.failed
    assert "loop" in answer.error


@pytest.mark.parametrize(
    ("name", "status"),
    [
        ("nope.example.nl", NXDOMAIN),
        ("example.nl", NODATA),  # exists, has no A
        ("deep.example.nl", NODATA),  # empty non-terminal: exists
        ("dangling.example.nl", NXDOMAIN),
        ("sf.example.nl", SERVFAIL),
        ("rf.example.nl", REFUSED),
        ("slow.example.nl", TIMEOUT),
    ],
)
async def test_answer_classes_are_never_confused(engine, name, status):
    answer = await engine.resolve(name, "A")
    assert answer.status == status
    assert answer.failed == (status in (SERVFAIL, REFUSED, TIMEOUT))
    assert engine.queries[status] >= 1


async def test_multi_string_txt_is_joined(engine):
    answer = await engine.resolve("split.example.nl", "TXT")
    assert answer.records == ("v=spf1 include:a.example include:b.example -all",)


async def test_truncated_answers_are_retried_over_tcp(engine):
    answer = await engine.resolve("big.example.nl", "TXT")
    assert answer.status == DATA
    assert len(answer.records) == 40
    # once over UDP (truncated), once over TCP
    assert engine.server.asked[("big.example.nl", "TXT")] == 2


async def test_shared_names_are_resolved_once(engine):
    answers = await asyncio.gather(*(engine.resolve("example-nl.mail.protection.outlook.com", "A") for _ in range(50)))
    assert {a.records for a in answers} == {("52.101.68.1",)}
    assert engine.server.asked[("example-nl.mail.protection.outlook.com", "A")] == 1
    again = await engine.resolve("example-nl.mail.protection.outlook.com", "A")
    assert again.records == ("52.101.68.1",)
    assert engine.server.asked[("example-nl.mail.protection.outlook.com", "A")] == 1


async def test_private_cache_keeps_target_names_out_of_the_shared_cache(engine):
    private: dict = {}
    await engine.resolve("example.nl", "MX", private, local_suffix="example.nl")
    assert ("example.nl", "MX") in private
    await engine.resolve("example.nl", "MX", private, local_suffix="example.nl")
    assert engine.server.asked[("example.nl", "MX")] == 1
    assert ("example.nl", "MX") not in engine._cache


async def test_concurrency_budget_bounds_queries_in_flight(dns_server):
    server = await dns_server("", failures={f"n{i}.example.nl": "timeout" for i in range(20)})
    engine = DNSEngine([server.address], timeout=0.2, tries=1, max_inflight=4)
    try:
        waiting = [asyncio.ensure_future(engine.resolve(f"n{i}.example.nl", "A")) for i in range(20)]
        await asyncio.sleep(0.1)
        assert len(server.asked) <= 4
        results = await asyncio.gather(*waiting)
        assert {r.status for r in results} == {TIMEOUT}
        assert len(server.asked) == 20
    finally:
        await engine.close()


async def test_an_unknown_record_type_is_the_callers_error_and_takes_no_query_slot(dns_server):
    """A plugin's "txt" (lower case) once took a slot of the engine for good: enough of them
    and every later lookup of the scan waited forever."""
    server = await dns_server(ZONE)
    engine = DNSEngine([server.address], timeout=0.3, tries=1, max_inflight=2)
    try:
        for _ in range(5):
            with pytest.raises(ValueError, match="unknown record type 'txt'"):
                await engine.resolve("example.nl", "txt")
        answer = await asyncio.wait_for(engine.resolve("example.nl", "MX"), 5)
        assert answer.status == DATA and engine.queries["error"] == 0
    finally:
        await engine.close()


async def test_channel_rotation_bounds_the_library_cache_without_losing_answers(dns_server):
    zone = "".join(f"n{i}.example.nl A 192.0.2.{i % 250}\n" for i in range(60))
    server = await dns_server(zone)
    engine = DNSEngine([server.address], timeout=0.5, tries=1, rotate_every=7)
    try:
        answers = await asyncio.gather(*(engine.resolve(f"n{i}.example.nl", "A") for i in range(60)))
        assert [a.records for a in answers] == [(f"192.0.2.{i % 250}",) for i in range(60)]
        await asyncio.sleep(0.05)
        assert len(engine._pending) == 1  # retired channels were closed once idle
    finally:
        await engine.close()


async def test_names_the_library_refuses_are_errors(engine):
    answer = await engine.resolve("a" * 70 + ".example.nl", "A")
    assert answer.status == ERROR and answer.failed


async def test_nxdomain_holds_for_every_type_of_the_name(engine):
    assert (await engine.resolve("nope.example.nl", "A")).status == NXDOMAIN
    assert (await engine.resolve("nope.example.nl", "AAAA")).status == NXDOMAIN
    assert (await engine.resolve("nope.example.nl", "TXT")).status == NXDOMAIN
    assert engine.server.asked[("nope.example.nl", "A")] == 1
    assert engine.server.asked[("nope.example.nl", "AAAA")] == 0
    assert engine.server.asked[("nope.example.nl", "TXT")] == 0
    # NODATA is per type: the other types are still asked
    assert (await engine.resolve("example.nl", "A")).status == NODATA
    assert (await engine.resolve("example.nl", "MX")).status == DATA


async def test_a_cancelled_asker_does_not_cancel_a_shared_query(dns_server):
    server = await dns_server("slow.example.nl A 192.0.2.7\n")
    engine = DNSEngine([server.address], timeout=1, tries=1, max_inflight=1)
    try:
        blocker = asyncio.ensure_future(engine.resolve("other.example.nl", "A"))  # holds the budget
        first = asyncio.ensure_future(engine.resolve("slow.example.nl", "A"))  # waits for the budget
        await asyncio.sleep(0)
        second = asyncio.ensure_future(engine.resolve("slow.example.nl", "A"))  # shares first's query
        await asyncio.sleep(0)
        first.cancel()  # cancelled before its query left: the second asker asks again
        await blocker
        answer = await second
        assert answer.records == ("192.0.2.7",)
        assert first.cancelled()

        third = asyncio.ensure_future(engine.resolve("sent.example.nl", "A"))
        fourth = asyncio.ensure_future(engine.resolve("sent.example.nl", "A"))
        await asyncio.sleep(0.001)
        third.cancel()  # cancelled after sending: the query completes for the others
        assert (await fourth).status == NXDOMAIN
        assert engine._budget._free == 1 and not engine._inflight
    finally:
        await engine.close()
