"""The boundary between the core and a detector: only findings that keep the contract get in;
whatever a detector raises (BaseException included) is that detector's error for that target,
and the built-in detectors' results are untouched; a real shutdown still stops the scan."""

from __future__ import annotations

import asyncio
import threading

import pytest

from dijkwacht.asn import load_table
from dijkwacht.catalog import EU, load_catalog
from dijkwacht.config import AgentSettings
from dijkwacht.detector import Detector, Finding
from dijkwacht.dns import DNSEngine
from dijkwacht.ipranges import IPRanges
from dijkwacht.runtime import build_runtime, load_data
from dijkwacht.scanner import MAX_FINDINGS, Scanner, Services
from dijkwacht.targets import Target
from dijkwacht.testing import FakeDNSServer

ZONE = """
example.nl MX 0 example-nl.mail.protection.outlook.com.
example.nl TXT "v=spf1 include:spf.protection.outlook.com -all"
example.nl NS ns-1.awsdns-01.org.
"""


def returning(value, categories=("chat",)):
    class Returning(Detector):
        name = "returning"

        async def detect(self, target, ctx):
            return value

    Returning.categories = categories
    return Returning


def raising(exc):
    class Raising(Detector):
        name = "raising"
        categories = ("chat",)

        async def detect(self, target, ctx):
            raise exc

    return Raising


async def scan(server, *classes, plugin_host, timeout=5.0):
    """Scan example.nl with the built-in detectors (on the loop) plus `classes` (on lanes)."""
    agent = AgentSettings(nameservers=(server.address,), dns_timeout=0.4, dns_tries=1, detector_timeout=timeout)
    data = load_data(agent, plugin_host)
    data.detector_classes = [*data.detector_classes, *classes]
    runtime = build_runtime(agent, data)
    try:
        return await runtime.scanner.scan(Target("example.nl"))
    finally:
        await runtime.close()


@pytest.fixture
async def builtin_only(dns_server, plugin_host):
    server = await dns_server(ZONE)
    result = await scan(server, plugin_host=plugin_host)
    assert result.errors == [] and {d.provider for d in result.dependencies} == {"microsoft", "amazon"}
    return server, result


GOOD = Finding("chat", "microsoft", ["TXT abc"], "indicated")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("okta", "detect() returned str, not a list of Finding"),
        (None, "detect() returned NoneType, not a list of Finding"),
        ({"category": "chat"}, "detect() returned dict, not a list of Finding"),
        (iter([GOOD]), "detect() returned list_iterator, not a list of Finding"),
        ([{"category": "chat", "provider": "microsoft"}], "rejected 1 of 1 findings: finding 0: dict, not a Finding"),
        ([Finding("video", "microsoft", ["x"])], "rejected 1 of 1 findings: finding 0: category 'video' is not one the detector declares (chat)"),
        ([Finding("chat", "microsoft", ["x"], "certain")], "rejected 1 of 1 findings: finding 0: confidence 'certain' is not one of confirmed, indicated, inferred"),
        ([Finding("chat", "microsoft", "TXT abc")], "rejected 1 of 1 findings: finding 0: evidence must be a list of strings, not str"),
        ([Finding("chat", "microsoft", [b"TXT", 1])], "rejected 1 of 1 findings: finding 0: evidence must be a list of strings, not a list holding bytes, int"),
        ([Finding("chat", "okat", ["x"])], "rejected 1 of 1 findings: finding 0: provider 'okat' is not in the catalog"),
        ([Finding("chat", None, ["x"])], "rejected 1 of 1 findings: finding 0: provider NoneType is not in the catalog"),
        ([Finding("chat", "microsoft", ["x"], service=3)], "rejected 1 of 1 findings: finding 0: service must be a string, not int"),
        ([Finding("chat", "microsoft", ["x"], role=None)], "rejected 1 of 1 findings: finding 0: role NoneType is not a lowercase word ([a-z0-9-])"),
        ([Finding("chat", "microsoft", ["x"], role="Chat Platform")], "rejected 1 of 1 findings: finding 0: role 'Chat Platform' is not a lowercase word ([a-z0-9-])"),
        ([GOOD, Finding("chat", "okat", ["x"])], "rejected 1 of 2 findings: finding 1: provider 'okat' is not in the catalog"),
        ([Finding("chat", f"typo{i}", ["x"]) for i in range(5)], "rejected 5 of 5 findings: finding 0: provider 'typo0' is not in the catalog; finding 1: provider 'typo1' is not in the catalog; finding 2: provider 'typo2' is not in the catalog (and 2 more)"),
        ([GOOD] * (MAX_FINDINGS + 1), f"detect() returned {MAX_FINDINGS + 1} findings (at most {MAX_FINDINGS} are accepted)"),
    ],
)
async def test_what_breaks_the_contract_is_an_error_of_that_detector(builtin_only, plugin_host, value, message):
    server, baseline = builtin_only
    result = await scan(server, returning(value), plugin_host=plugin_host)
    assert [(e.detector, e.message) for e in result.errors] == [("returning", message)]
    assert result.incomplete == {"chat"}
    valid = isinstance(value, list) and len(value) <= MAX_FINDINGS and any(v is GOOD for v in value)
    assert [d.provider for d in result.dependencies if d.category == "chat"] == (["microsoft"] if valid else [])
    assert [d for d in result.dependencies if d.category != "chat"] == baseline.dependencies


async def test_valid_findings_of_a_detector_that_broke_the_contract_are_kept(builtin_only, plugin_host):
    server, _ = builtin_only
    result = await scan(server, returning([GOOD, Finding("chat", "okat", ["x"])]), plugin_host=plugin_host)
    [chat] = [d for d in result.dependencies if d.category == "chat"]
    assert (chat.provider, chat.jurisdiction, chat.foreign, chat.evidence) == ("microsoft", "US", True, ("TXT abc",))


async def test_accepted_findings_are_copies_the_plugin_cannot_change(dns_server, plugin_host):
    server = await dns_server(ZONE)
    mine = Finding("chat", "microsoft", ["TXT abc"], "indicated")

    class Sneaky(Detector):
        name = "sneaky"
        categories = ("chat",)

        async def detect(self, target, ctx):
            return [mine]

    result = await scan(server, Sneaky, plugin_host=plugin_host)
    mine.evidence.append("added later")
    mine.provider = "okat"
    [chat] = [d for d in result.dependencies if d.category == "chat"]
    assert (chat.provider, chat.evidence) == ("microsoft", ("TXT abc",))


@pytest.mark.parametrize(
    ("exc", "message"),
    [
        (RuntimeError("plugin bug"), "RuntimeError: plugin bug"),
        (asyncio.CancelledError(), "raised CancelledError"),
        (SystemExit(3), "SystemExit: 3"),
        (KeyboardInterrupt(), "KeyboardInterrupt"),
        (GeneratorExit(), "GeneratorExit"),
    ],
)
async def test_whatever_a_third_party_detector_raises_is_its_error(builtin_only, plugin_host, exc, message):
    server, baseline = builtin_only
    result = await scan(server, raising(exc), plugin_host=plugin_host)
    assert [(e.detector, e.message) for e in result.errors] == [("raising", message)]
    assert result.dependencies == baseline.dependencies


async def on_loop(server, cls, timeout=5.0):
    """Run `cls` on the scan's own loop, as a built-in detector runs."""
    engine = DNSEngine([server.address], timeout=0.4, tries=1)
    try:
        scanner = Scanner(Services(engine, load_catalog(), IPRanges(), EU), [cls()], detector_timeout=timeout)
        return await scanner.scan(Target("example.nl"))
    finally:
        await engine.close()


@pytest.mark.parametrize(
    ("exc", "message"),
    [(asyncio.CancelledError(), "raised CancelledError"), (SystemExit(3), "SystemExit: 3"), (LookupError("x"), "LookupError: x")],
)
async def test_a_detector_on_the_loop_raising_is_contained_too(dns_server, exc, message):
    server = await dns_server(ZONE)
    result = await on_loop(server, raising(exc))
    assert [(e.detector, e.message) for e in result.errors] == [("raising", message)]


def test_keyboard_interrupt_on_the_main_thread_is_the_operators_and_stops_the_scan():
    # Its own loop: a KeyboardInterrupt leaves the event loop itself, as the operator's Ctrl-C must.
    async def main():
        async with FakeDNSServer(ZONE) as server:
            await on_loop(server, raising(KeyboardInterrupt()))

    with pytest.raises(KeyboardInterrupt):
        asyncio.run(main())


class Waiting(Detector):
    name = "waiting"
    categories = ("chat",)
    started: threading.Event  # set on the lane's thread in one case

    async def detect(self, target, ctx):
        Waiting.started.set()
        await asyncio.sleep(30)
        return []


@pytest.mark.parametrize("where", ["lane", "loop"])
async def test_cancelling_the_scan_from_outside_still_cancels_it(dns_server, plugin_host, where):
    server = await dns_server(ZONE)
    Waiting.started = threading.Event()
    task = asyncio.ensure_future(scan(server, Waiting, plugin_host=plugin_host, timeout=30) if where == "lane" else on_loop(server, Waiting, timeout=30))
    for _ in range(200):
        if Waiting.started.is_set():
            break
        await asyncio.sleep(0.02)
    assert Waiting.started.is_set()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 10)


async def test_an_as_organisation_the_ip_to_as_table_knows_is_a_provider(dns_server, tmp_path):
    # Besides catalog providers, `as<N>` of an AS in the loaded IP-to-AS table (what the
    # built-in detectors report for an address no range file claims); any other as<N> is a typo.
    (tmp_path / "ip2asn-combined.tsv").write_text("2001:db8::\t2001:db8:ffff:ffff:ffff:ffff:ffff:ffff\t64501\tNL\tDOC-AS Documentation B.V.\n")
    server = await dns_server(ZONE)
    engine = DNSEngine([server.address], timeout=0.4, tries=1)
    try:
        services = Services(engine, load_catalog(), IPRanges(asn=load_table(tmp_path)), EU)
        cls = returning([Finding("chat", "as64501", ["AAAA 2001:db8::1"]), Finding("chat", "as64502", ["AAAA 2001:db9::1"])])
        result = await Scanner(services, [cls()]).scan(Target("example.nl"))
    finally:
        await engine.close()
    [dep] = result.dependencies
    assert (dep.provider, dep.name, dep.jurisdiction, dep.foreign) == ("as64501", "AS64501 DOC-AS Documentation B.V.", "NL", False)
    assert [e.message for e in result.errors] == ["rejected 1 of 2 findings: finding 1: provider 'as64502' is not in the catalog"]
