"""Third-party detectors on their own threads: one that blocks or spins costs only its own
results, is blamed by name, is quarantined after repeated timeouts and has its spin ended; the
scan's loop keeps turning. Lookups from a lane run on the scan's loop. The watchdog names a
detector that stalls the scan's loop itself."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from dijkwacht import isolation
from dijkwacht.catalog import EU, load_catalog
from dijkwacht.config import AgentSettings
from dijkwacht.detector import Detector, Finding
from dijkwacht.dns import DNSEngine
from dijkwacht.ipranges import IPRanges
from dijkwacht.isolation import QUARANTINE_AFTER, Isolation
from dijkwacht.runtime import build_runtime, load_data
from dijkwacht.scanner import Scanner, Services
from dijkwacht.targets import Target

ZONE = """
example.nl MX 0 example-nl.mail.protection.outlook.com.
example.nl NS ns-1.awsdns-01.org.
"""


class Blocking(Detector):
    name = "blocking"
    categories = ("chat",)

    async def detect(self, target, ctx):
        time.sleep(1.5)  # blocks whatever loop it runs on
        return []


class Spinning(Detector):
    name = "spinning"
    categories = ("chat",)

    async def detect(self, target, ctx):
        while True:
            pass


class Slow(Detector):
    name = "slow"
    categories = ("chat",)

    async def detect(self, target, ctx):
        await asyncio.sleep(30)
        return []


class Looking(Detector):
    """A well-behaved third-party detector that uses every bridged service."""

    name = "looking"
    categories = ("email",)

    async def detect(self, target, ctx):
        mx = await ctx.dns.resolve(target.domain, "MX")
        addresses, chain = await ctx.dns.addresses(f"www.{target.domain}")
        await ctx.dns.resolve(f"broken.{target.domain}", "TXT")
        probe = await ctx.http.headers(f"www.{target.domain}", target.domain)
        return [Finding("email", "microsoft", [f"MX {mx.records[0][1]}", *addresses, *chain, probe])]


class LoopTicker:
    """The largest gap between turns of the current loop while it runs."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.01)
            now = time.monotonic()
            self.worst = max(self.worst, now - last - 0.01)
            last = now

    def stop(self) -> float:
        self._task.cancel()
        return self.worst


async def scan_all(server, classes, targets, plugin_host, timeout):
    agent = AgentSettings(nameservers=(server.address,), dns_timeout=0.4, dns_tries=1, detector_timeout=timeout)
    data = load_data(agent, plugin_host)
    data.detector_classes = [*data.detector_classes, *classes]
    runtime = build_runtime(agent, data)
    try:
        return [r async for r in runtime.scanner.scan_all([Target(t) for t in targets])], runtime
    finally:
        await runtime.close()


async def test_a_blocking_detector_costs_only_its_own_results(dns_server, plugin_host):
    server = await dns_server(ZONE)
    [baseline], _ = await scan_all(server, [], ["example.nl"], plugin_host, 0.5)
    ticker = LoopTicker()
    [result], _ = await scan_all(server, [Blocking], ["example.nl"], plugin_host, 0.5)
    worst = ticker.stop()
    assert [(e.detector, e.message) for e in result.errors] == [("blocking", "timed out after 0.5s")]
    assert result.dependencies == baseline.dependencies
    assert worst < 1.0, f"the scan's loop stalled {worst:.2f} s while a detector blocked its own"


async def test_a_spinning_detector_is_quarantined_and_its_spin_ended(dns_server, plugin_host):
    server = await dns_server(ZONE)
    targets = [f"t{i}.example.nl" for i in range(QUARANTINE_AFTER + 2)]
    ticker = LoopTicker()
    results, runtime = await scan_all(server, [Spinning], targets, plugin_host, 0.5)
    worst = ticker.stop()
    messages = [[(e.detector, e.message) for e in r.errors if e.detector == "spinning"] for r in results]
    assert all(len(m) == 1 for m in messages)
    timed_out = sum(m[0][1] == "timed out after 0.5s" for m in messages)
    assert timed_out >= QUARANTINE_AFTER
    lane = runtime.scanner.lanes["spinning"]
    assert lane.quarantined == f"timed out {QUARANTINE_AFTER} times in a row; restart the agent to retry"
    # runtime.close() stopped the lane: the spin was interrupted and the thread has ended.
    assert not lane._thread.is_alive()
    assert worst < 1.0, f"the scan's loop stalled {worst:.2f} s while a detector spun on its own thread"


async def test_a_quarantined_detector_is_not_run_but_still_reports_an_error(dns_server):
    server = await dns_server(ZONE)
    engine = DNSEngine([server.address], timeout=0.4, tries=1)
    own = Isolation()
    try:
        scanner = Scanner(Services(engine, load_catalog(), IPRanges(), EU), [Slow()], detector_timeout=0.2, isolation=own)
        for i in range(QUARANTINE_AFTER):
            result = await scanner.scan(Target(f"t{i}.example.nl"))
            assert [e.message for e in result.errors] == ["timed out after 0.2s"]
        started = time.monotonic()
        result = await scanner.scan(Target("later.example.nl"))
        assert time.monotonic() - started < 0.2
        assert [e.message for e in result.errors] == [f"quarantined: timed out {QUARANTINE_AFTER} times in a row; restart the agent to retry"]
        assert result.incomplete == {"chat"}  # unknown, never "no provider"
        assert own.quarantined == {"slow": f"timed out {QUARANTINE_AFTER} times in a row; restart the agent to retry"}
    finally:
        await own.close()
        await engine.close()


async def test_a_detector_that_kills_its_own_loop_is_quarantined(dns_server):
    class LoopStopper(Detector):
        name = "stopper"
        categories = ("chat",)

        async def detect(self, target, ctx):
            asyncio.get_running_loop().call_soon(_raise_exit)
            return []

    server = await dns_server(ZONE)
    engine = DNSEngine([server.address], timeout=0.4, tries=1)
    own = Isolation()
    try:
        scanner = Scanner(Services(engine, load_catalog(), IPRanges(), EU), [LoopStopper()], detector_timeout=0.5, isolation=own)
        # The loop ends before it hands the result back.
        assert [e.message for e in (await scanner.scan(Target("example.nl"))).errors] == ["timed out after 0.5s"]
        own.lanes["stopper"]._thread.join(5)
        result = await scanner.scan(Target("example.nl"))
        assert [e.message for e in result.errors] == ["quarantined: its event loop ended (SystemExit: 4)"]
    finally:
        await own.close()
        await engine.close()


def _raise_exit():
    raise SystemExit(4)


class ProbeOnMain:
    """Stands in for the HTTP probe; notes the thread it is called on."""

    def __init__(self) -> None:
        self.threads: set[int] = set()

    async def headers(self, host: str, domain: str) -> str:
        self.threads.add(threading.get_ident())
        return f"probed {host}"


async def test_lookups_and_probes_of_a_lane_detector_run_on_the_scans_loop(dns_server):
    server = await dns_server(ZONE + "www.example.nl CNAME edge.example.net.\nedge.example.net A 192.0.2.7\n", failures={"broken.example.nl": "servfail"})
    engine = DNSEngine([server.address], timeout=0.4, tries=1)
    probe = ProbeOnMain()
    own = Isolation()
    try:
        scanner = Scanner(Services(engine, load_catalog(), IPRanges(), EU, probe), [Looking()], isolation=own)
        result = await scanner.scan(Target("example.nl"))
    finally:
        await own.close()
        await engine.close()
    [dep] = result.dependencies
    assert dep.evidence == ("MX example-nl.mail.protection.outlook.com", "192.0.2.7", "edge.example.net", "probed www.example.nl")
    assert [e.message for e in result.errors] == ["TXT broken.example.nl: SERVFAIL"]  # recorded by the core's resolver
    assert probe.threads == {threading.get_ident()}
    assert engine.queries["data"] >= 3


async def test_the_watchdog_names_a_detector_that_stalls_the_scans_loop(dns_server):
    server = await dns_server(ZONE)
    engine = DNSEngine([server.address], timeout=0.4, tries=1)
    own = Isolation()
    try:
        scanner = Scanner(Services(engine, load_catalog(), IPRanges(), EU), [Blocking()], detector_timeout=5, isolation=own, trusted={"blocking"})
        await scanner.scan(Target("example.nl"))
        await asyncio.sleep(2 * isolation._TICK)  # the tick after the stall counts it
    finally:
        await own.close()
        await engine.close()
    assert own.watchdog.stalls == {"blocking": 1}


class Quiet(Detector):
    name = "quiet"
    categories = ("chat",)

    async def detect(self, target, ctx):
        return []


async def test_built_in_detectors_run_on_the_loop_and_others_on_lanes(dns_server, plugin_host):
    server = await dns_server(ZONE)
    [result], runtime = await scan_all(server, [Quiet], ["example.nl"], plugin_host, 5)
    assert result.errors == [] and set(result.timings) == {"cdn", "dns", "email", "hosting", "video", "quiet"}
    assert set(runtime.scanner.lanes) == {"quiet"}


class Asking(Detector):
    name = "asking"
    categories = ("chat",)

    async def detect(self, target, ctx):
        await ctx.dns.resolve(f"silent.{target.domain}", "TXT")
        return []


@pytest.mark.parametrize(("cls", "slow_dns"), [(Asking, True), (Slow, False)])
async def test_a_timeout_while_waiting_for_lookups_is_transient_and_no_strike(dns_server, cls, slow_dns):
    # Worth a retry when the lookups were slow, and no fault of the detector; when its own code
    # was slow, it is neither.
    server = await dns_server(ZONE, failures={f"silent.t{i}.example.nl": "timeout" for i in range(QUARANTINE_AFTER)})
    engine = DNSEngine([server.address], timeout=2, tries=1)
    own = Isolation()
    try:
        scanner = Scanner(Services(engine, load_catalog(), IPRanges(), EU), [cls()], detector_timeout=0.3, isolation=own)
        results = [await scanner.scan(Target(f"t{i}.example.nl")) for i in range(QUARANTINE_AFTER)]
    finally:
        await own.close()
        await engine.close()
    assert {e.message for r in results for e in r.errors} == {"timed out after 0.3s"}
    assert all(r.transient is slow_dns for r in results)
    assert bool(own.quarantined) is not slow_dns


class Warns(Detector):
    """Reports a problem of the target's records that does not make the result unknown."""

    name = "warning"
    categories = ("chat",)

    async def detect(self, target, ctx):
        ctx.warn("SPF permerror: x")
        ctx.warn("SPF permerror: x")  # once is enough
        ctx.warn("too many lookups")
        return []


class ManyWarnings(Detector):
    name = "many"
    categories = ("chat",)

    async def detect(self, target, ctx):
        ctx.warn(12)
        for i in range(isolation.MAX_WARNINGS + 5):
            ctx.warn(f"w{i}")
        return []


@pytest.mark.parametrize("lanes", [True, False], ids=["lane", "main-loop"])
async def test_warnings_reach_the_result_on_a_lane_and_on_the_main_loop(dns_server, lanes):
    server = await dns_server(ZONE)
    engine = DNSEngine([server.address], timeout=0.4, tries=1)
    own = Isolation()
    try:
        scanner = Scanner(Services(engine, load_catalog(), IPRanges(), EU), [Warns()], isolation=own, trusted=() if lanes else ("warning",))
        assert bool(scanner.lanes) is lanes
        result = await scanner.scan(Target("example.nl"))
    finally:
        await own.close()
        await engine.close()
    assert [(w.detector, w.message) for w in result.warnings] == [("warning", "SPF permerror: x"), ("warning", "too many lookups")]
    assert result.errors == [] and result.incomplete == frozenset()
    assert result.to_json()["warnings"] == [{"detector": "warning", "message": "SPF permerror: x"}, {"detector": "warning", "message": "too many lookups"}]


async def test_a_lane_detectors_warnings_are_strings_and_bounded(dns_server):
    server = await dns_server(ZONE)
    engine = DNSEngine([server.address], timeout=0.4, tries=1)
    own = Isolation()
    try:
        result = await Scanner(Services(engine, load_catalog(), IPRanges(), EU), [ManyWarnings()], isolation=own).scan(Target("example.nl"))
    finally:
        await own.close()
        await engine.close()
    messages = [w.message for w in result.warnings]
    assert messages[0] == "ctx.warn() takes a string, not int"
    assert messages[1:-1] == [f"w{i}" for i in range(isolation.MAX_WARNINGS - 1)]
    assert messages[-1] == "6 more warnings left out"


class SwapsWarnings(Detector):
    name = "swapper"
    categories = ("chat",)

    async def detect(self, target, ctx):
        class Hostile(list):
            def __getitem__(self, item):
                raise RuntimeError("boom")

        ctx.warnings = 5 if target.domain == "example.nl" else Hostile(["x"])
        return []


async def test_a_lane_detector_that_replaces_ctx_warnings_only_gets_a_warning(dns_server):
    """Once a TypeError on the main loop that failed the whole target (every detector's findings)."""
    server = await dns_server(ZONE)
    engine = DNSEngine([server.address], timeout=0.4, tries=1)
    own = Isolation()
    try:
        scanner = Scanner(Services(engine, load_catalog(), IPRanges(), EU), [SwapsWarnings()], isolation=own)
        results = [await scanner.scan(Target(domain)) for domain in ("example.nl", "other.nl")]
    finally:
        await own.close()
        await engine.close()
    for result, kind in zip(results, ("int", "Hostile")):
        assert result.errors == []
        assert [(w.detector, w.message) for w in result.warnings] == [("swapper", f"ctx.warnings was replaced with {kind}: its warnings are lost (use ctx.warn())")]


async def test_warnings_of_a_detector_that_times_out_on_its_lane_are_kept(dns_server):
    class WarnsThenHangs(Detector):
        name = "hangs"
        categories = ("chat",)

        async def detect(self, target, ctx):
            ctx.warn("before the hang")
            await asyncio.sleep(30)
            return []

    server = await dns_server(ZONE)
    engine = DNSEngine([server.address], timeout=0.4, tries=1)
    own = Isolation()
    try:
        result = await Scanner(Services(engine, load_catalog(), IPRanges(), EU), [WarnsThenHangs()], detector_timeout=0.3, isolation=own).scan(Target("example.nl"))
    finally:
        await own.close()
        await engine.close()
    assert [w.message for w in result.warnings] == ["before the hang"]
    assert [e.message for e in result.errors] == ["timed out after 0.3s"]


async def test_the_test_kits_run_detector_shows_warnings(dns_server):
    from dijkwacht.testing import run_detector

    server = await dns_server(ZONE)
    run = await run_detector(Warns, "example.nl", server)
    assert run.warnings == ["SPF permerror: x", "too many lookups"]
    assert [w.message for w in run.result.warnings] == run.warnings and run.errors == []
