"""The CDN detector (plugins/cdn.py): from DNS against the fake server, and with the HTTP probe
(agent/httpprobe.py) against real aiohttp servers on 127.0.0.1.

The probe is given a closed port for https, so it falls back to plain http on the test
server's ephemeral port; the fake DNS server resolves every probed name to 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable

import pytest
from aiohttp import web

from dijkwacht.dns import DNSEngine
from dijkwacht.httpprobe import MAX_REDIRECTS, HttpProbe
from dijkwacht_plugins.cdn import CdnDetector

from .detector_helpers import C, I, asked, expect, f, ranges, run_detector


async def scan(dns_server, zone, ip, target_hosts=(), **settings):
    server = await dns_server(zone)
    return await run_detector(CdnDetector(settings), server, "ex.nl", ip=ip, hosts=target_hosts), server


# ---- DNS: CNAME chains ----------------------------------------------------------------------


async def test_every_cdn_hop_of_a_cname_chain_is_evidence(dns_server, shared_ranges):
    run, _ = await scan(dns_server, """
www.ex.nl CNAME www.ex.nl.edgekey.net.
www.ex.nl.edgekey.net CNAME e1234.a.akamaiedge.net.
e1234.a.akamaiedge.net A 23.72.0.1
""", shared_ranges)
    assert run.summary == expect(
        f("cdn", "akamai", C, "CNAME www.ex.nl -> www.ex.nl.edgekey.net"),
        f("cdn", "akamai", C, "CNAME www.ex.nl -> e1234.a.akamaiedge.net"),
        f("cdn", "akamai", C, "A/AAAA www.ex.nl 23.72.0.1 (in akamai IP ranges)"),
    )
    assert run.failed == []


async def test_only_cdn_hops_of_a_mixed_chain_count(dns_server, shared_ranges):
    # Traffic Manager (hosting) in front of Azure CDN; the edge address is in microsoft.txt,
    # a hosting provider's ranges, so only the CNAME names the CDN.
    run, _ = await scan(dns_server, """
www.ex.nl CNAME ex.trafficmanager.net.
ex.trafficmanager.net CNAME ex.azureedge.net.
ex.azureedge.net A 13.107.246.1
""", shared_ranges)
    assert run.summary == expect(f("cdn", "microsoft", C, "CNAME www.ex.nl -> ex.azureedge.net"))


async def test_hosting_platform_cnames_are_not_cdns(dns_server, shared_ranges):
    run, _ = await scan(dns_server, "www.ex.nl CNAME ex.azurewebsites.net.\nex.azurewebsites.net A 20.50.2.1\n", shared_ranges)
    assert run.findings == []


# ---- DNS: edge address ranges --------------------------------------------------------------


async def test_addresses_in_cdn_ranges_are_confirmed(dns_server, shared_ranges):
    run, _ = await scan(dns_server, "ex.nl A 104.24.0.1\nex.nl AAAA 2606:4700::1\nwww.ex.nl A 5.161.0.20\n", shared_ranges)
    assert run.summary == expect(
        f("cdn", "cloudflare", C, "A/AAAA ex.nl 104.24.0.1 (in cloudflare IP ranges)"),
        f("cdn", "cloudflare", C, "A/AAAA ex.nl 2606:4700::1 (in cloudflare IP ranges)"),
        # www at Hetzner is hosting, not a CDN
    )


async def test_cloudfront_is_named_by_its_cname_not_by_amazons_ranges(dns_server, shared_ranges):
    run, _ = await scan(dns_server, "www.ex.nl CNAME d111111abcdef8.cloudfront.net.\nd111111abcdef8.cloudfront.net A 54.230.1.1\n", shared_ranges)
    assert run.summary == expect(f("cdn", "amazon", C, "CNAME www.ex.nl -> d111111abcdef8.cloudfront.net"))


async def test_a_prefix_shared_with_a_hoster_names_only_the_cdn(dns_server, shared_ranges):
    assert shared_ranges.lookup("185.199.108.153") == ("fastly", "github")
    run, _ = await scan(dns_server, "ex.nl A 185.199.108.153\n", shared_ranges)
    assert run.summary == expect(f("cdn", "fastly", C, "A/AAAA ex.nl 185.199.108.153 (in fastly IP ranges)"))


async def test_a_prefix_two_cdns_announce_indicates_both(dns_server):
    ip = ranges(("cloudflare", "2001:db8:cd::/48"), ("akamai", "2001:db8:cd::/48"))
    run, _ = await scan(dns_server, "www.ex.nl AAAA 2001:db8:cd::1\n", ip)
    assert run.summary == expect(
        f("cdn", "akamai", I, "A/AAAA www.ex.nl 2001:db8:cd::1 (in akamai IP ranges)"),
        f("cdn", "cloudflare", I, "A/AAAA www.ex.nl 2001:db8:cd::1 (in cloudflare IP ranges)"),
    )


# ---- DNS: which names are checked ----------------------------------------------------------

EXTRA_ZONE = """
www.ex.nl CNAME ex.b-cdn.net.
static.ex.nl CNAME ex-static.b-cdn.net.
assets.ex.nl CNAME x7y8z9.x.incapdns.net.
img.ex.nl CNAME dualstack.n.sni.global.fastly.net.
ex.b-cdn.net A 195.230.171.70
ex-static.b-cdn.net A 195.230.171.71
x7y8z9.x.incapdns.net A 195.230.171.72
dualstack.n.sni.global.fastly.net A 195.230.171.73
"""


async def test_extra_hosts_from_settings_and_target(dns_server, shared_ranges):
    run, server = await scan(dns_server, EXTRA_ZONE, shared_ranges, target_hosts=["assets", "IMG.ex.nl.", "www"], hosts=["static", "assets"])
    assert run.summary == expect(
        f("cdn", "bunny", C, "CNAME www.ex.nl -> ex.b-cdn.net"),
        f("cdn", "bunny", C, "CNAME static.ex.nl -> ex-static.b-cdn.net"),
        f("cdn", "imperva", C, "CNAME assets.ex.nl -> x7y8z9.x.incapdns.net"),
        f("cdn", "fastly", C, "CNAME img.ex.nl -> dualstack.n.sni.global.fastly.net"),
    )
    # a name given twice (settings and target, or the built-in www) is looked up once
    assert asked(server, "assets.ex.nl", "A") == asked(server, "www.ex.nl", "A") == 1


async def test_without_extra_hosts_only_apex_and_www_are_checked(dns_server, shared_ranges):
    run, server = await scan(dns_server, EXTRA_ZONE, shared_ranges)
    assert run.summary == expect(f("cdn", "bunny", C, "CNAME www.ex.nl -> ex.b-cdn.net"))
    assert {name for name, _ in server.asked} == {"ex.nl", "www.ex.nl", "ex.b-cdn.net"}


async def test_a_cname_loop_is_a_failure_and_other_names_still_count(dns_server, shared_ranges):
    run, _ = await scan(dns_server, "ex.nl A 104.24.0.1\nwww.ex.nl CNAME w1.ex.nl.\nw1.ex.nl CNAME www.ex.nl.\n", shared_ranges)
    assert run.summary == expect(f("cdn", "cloudflare", C, "A/AAAA ex.nl 104.24.0.1 (in cloudflare IP ranges)"))
    assert run.failed == ["A www.ex.nl: ERROR (CNAME loop at www.ex.nl)", "AAAA www.ex.nl: ERROR (CNAME loop at www.ex.nl)"]


# ---- HTTP probe against real servers ------------------------------------------------------

Handler = Callable[[web.Request, "WebServer"], Awaitable[web.StreamResponse]]


class WebServer:
    """A real aiohttp server on 127.0.0.1 (ephemeral port) recording (host, path) per request."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[tuple[str, str]] = []
        self.port = 0
        self.disconnected = asyncio.Event()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.host.rsplit(":", 1)[0], request.path_qs))
        return await self.handler(request, self)

    async def start(self) -> WebServer:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        await self._runner.cleanup()


def respond(headers: dict[str, str], status: int = 200) -> Handler:
    async def handler(request: web.Request, server: WebServer) -> web.StreamResponse:
        return web.Response(status=status, headers=headers, text="ok")

    return handler


@pytest.fixture
async def web_server():
    """Factory: `await web_server(handler)` -> started WebServer."""
    servers: list[WebServer] = []

    async def start(handler: Handler) -> WebServer:
        server = await WebServer(handler).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop()


@pytest.fixture
def closed_port():
    """A 127.0.0.1 port that refuses connections (bound, never listening) for the https attempt."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    yield sock.getsockname()[1]
    sock.close()


class Prober:
    """The fake DNS server, an engine on it, and an HttpProbe pointed at one web server's port."""

    def __init__(self, dns, engine: DNSEngine, probe: HttpProbe) -> None:
        self.dns, self.engine, self.probe = dns, engine, probe

    async def scan(self, hosts=(), http=True, **settings):
        return await run_detector(CdnDetector(settings), self.dns, "ex.nl", ip=ranges(), hosts=hosts, http=self.probe if http else None, engine=self.engine)


@pytest.fixture
async def prober(dns_server, closed_port):
    """Factory: `await prober(zone, http_port, timeout=...)`."""
    made: list[Prober] = []

    async def make(zone: str, http_port: int, timeout: float = 5.0) -> Prober:
        dns = await dns_server(zone)
        engine = DNSEngine([dns.address], timeout=0.4, tries=1)
        probe = HttpProbe(engine, timeout=timeout, https_port=closed_port, http_port=http_port, allow_private=True)
        made.append(Prober(dns, engine, probe))
        return made[-1]

    yield make
    for p in made:
        await p.probe.close()
        await p.engine.close()


LOCAL = "www.ex.nl A 127.0.0.1\n"


@pytest.mark.parametrize(
    "headers, found",
    [
        ({"CF-RAY": "8a1b2c3d4e5f-AMS"}, [("cloudflare", C, "cf-ray: 8a1b2c3d4e5f-AMS")]),
        ({"Server": "cloudflare"}, [("cloudflare", C, "server: cloudflare")]),
        ({"X-Amz-Cf-Id": "Q2xvdWRGcm9udA=="}, [("amazon", C, "x-amz-cf-id: Q2xvdWRGcm9udA==")]),
        ({"X-Served-By": "cache-ams21080-AMS"}, [("fastly", C, "x-served-by: cache-ams21080-AMS")]),
        ({"X-Served-By": "cache-fra-eddf8230020-FRA, cache-ams21080-AMS"}, [("fastly", C, "x-served-by: cache-fra-eddf8230020-FRA, cache-ams21080-AMS")]),
        ({"X-Served-By": "cache-web01"}, []),  # any Varnish may say it served the page from its cache
        ({"Server": "BunnyCDN-DE1-1048", "CDN-PullZone": "123456"}, [("bunny", C, "server: BunnyCDN-DE1-1048"), ("bunny", I, "cdn-pullzone: 123456")]),
        ({"CDN-RequestId": "0f1e2d3c4b5a69788796a5b4c3d2e1f0"}, []),  # a generic name other CDNs use too
        ({"Server": "AkamaiGHost"}, [("akamai", I, "server: AkamaiGHost")]),
        ({"cf-ray": "x" * 200}, [("cloudflare", C, ("cf-ray: " + "x" * 200)[:100])]),  # evidence is cut
        ({"Server": "nginx"}, []),
        ({"Server": "nginx (behind cloudflare)"}, []),  # the value must start with "cloudflare"
        ({"X-GitHub-Request-Id": "AB12"}, []),  # a hosting header is not the CDN detector's business
    ],
    ids=["cf-ray", "server-cloudflare", "x-amz-cf-id", "fastly", "fastly-shield", "varnish", "bunny", "generic-request-id", "akamai", "long", "nginx", "near-miss", "hosting-header"],
)
async def test_cdn_response_headers_are_findings_with_the_header_as_evidence(web_server, prober, headers, found):
    site = await web_server(respond(headers))
    p = await prober(LOCAL, site.port)
    run = await p.scan()
    url = f"http://www.ex.nl:{site.port}/"
    assert run.summary == expect(*(f("cdn", provider, conf, f"HTTP {url} {header}") for provider, conf, header in found))
    assert site.requests == [("www.ex.nl", "/")]


async def test_without_http_probing_no_connection_is_made(web_server, prober):
    site = await web_server(respond({"cf-ray": "8a1b2c3d4e5f-AMS"}))
    p = await prober(LOCAL, site.port)
    run = await p.scan(http=False)
    assert run.findings == []
    assert site.requests == []
    # the same target with probing on is found: the server was reachable all along
    run = await p.scan()
    assert run.providers == {("cdn", "cloudflare")}
    assert site.requests == [("www.ex.nl", "/")]


async def test_only_named_hosts_with_addresses_are_probed_and_at_most_two(web_server, prober):
    site = await web_server(respond({"cf-ray": "1"}))
    # the apex has no address; www, static and shop have
    p = await prober(LOCAL + "static.ex.nl A 127.0.0.1\nshop.ex.nl A 127.0.0.1\n", site.port)
    run = await p.scan(hosts=["static", "shop"])
    assert site.requests == [("www.ex.nl", "/"), ("static.ex.nl", "/")]
    assert run.summary == expect(
        f("cdn", "cloudflare", C, f"HTTP http://www.ex.nl:{site.port}/ cf-ray: 1"),
        f("cdn", "cloudflare", C, f"HTTP http://static.ex.nl:{site.port}/ cf-ray: 1"),
    )


@pytest.mark.parametrize(
    "location, final",
    [
        ("http://cdn.ex.nl:{port}/landing", ("cdn.ex.nl", "/landing")),
        ("http://WWW2.Ex.NL:{port}/home", ("www2.ex.nl", "/home")),
        ("/nl/", ("www.ex.nl", "/nl/")),
    ],
    ids=["subdomain", "mixed-case", "relative"],
)
async def test_a_redirect_to_the_targets_own_names_is_followed(web_server, prober, location, final):
    async def handler(request: web.Request, server: WebServer) -> web.StreamResponse:
        if request.path == "/":
            return web.Response(status=301, headers={"Location": location.format(port=server.port)})
        return web.Response(headers={"X-Amz-Cf-Id": "abc"})

    site = await web_server(handler)
    p = await prober(LOCAL + "cdn.ex.nl A 127.0.0.1\nwww2.ex.nl A 127.0.0.1\n", site.port)
    run = await p.scan()
    assert site.requests == [("www.ex.nl", "/"), final]
    host, path = final
    assert run.summary == expect(f("cdn", "amazon", C, f"HTTP http://{host}:{site.port}{path} x-amz-cf-id: abc"))


async def test_a_redirect_from_www_to_the_apex_is_followed(web_server, prober):
    async def handler(request: web.Request, server: WebServer) -> web.StreamResponse:
        if request.host.startswith("www."):
            return web.Response(status=301, headers={"Location": f"http://ex.nl:{server.port}/"})
        return web.Response(headers={"cf-ray": "apex"})

    site = await web_server(handler)
    p = await prober(LOCAL + "ex.nl A 127.0.0.1\n", site.port)
    run = await p.scan()
    assert site.requests == [("ex.nl", "/"), ("www.ex.nl", "/"), ("ex.nl", "/")]
    evidence = f"HTTP http://ex.nl:{site.port}/ cf-ray: apex"
    assert run.summary == expect(f("cdn", "cloudflare", C, evidence), f("cdn", "cloudflare", C, evidence))


@pytest.mark.parametrize("other", ["evil.example.com", "notex.nl", "www.ex.nl.evil.example.com"])
async def test_a_redirect_to_another_domain_is_not_followed(web_server, prober, other):
    elsewhere = await web_server(respond({"cf-ray": "elsewhere"}))

    async def handler(request: web.Request, server: WebServer) -> web.StreamResponse:
        return web.Response(status=302, headers={"Location": f"http://{other}:{elsewhere.port}/steal", "X-Amz-Cf-Id": "hop"})

    site = await web_server(handler)
    p = await prober(LOCAL + f"{other} A 127.0.0.1\n", site.port)
    run = await p.scan()
    # this hop's own headers are reported; the other server was never contacted nor looked up
    assert run.summary == expect(f("cdn", "amazon", C, f"HTTP http://www.ex.nl:{site.port}/ x-amz-cf-id: hop"))
    assert site.requests == [("www.ex.nl", "/")]
    assert elsewhere.requests == []
    assert asked(p.dns, other, "A") == 0


async def test_redirects_are_followed_a_bounded_number_of_times(web_server, prober):
    async def handler(request: web.Request, server: WebServer) -> web.StreamResponse:
        return web.Response(status=302, headers={"Location": f"/r{len(server.requests)}"})

    site = await web_server(handler)
    p = await prober(LOCAL, site.port)
    result = await p.probe.headers("www.ex.nl", "ex.nl")
    assert result.error == "too many redirects"
    assert len(site.requests) == MAX_REDIRECTS + 1
    assert (await p.scan()).findings == []


async def endless(request: web.Request, server: WebServer) -> web.StreamResponse:
    """Headers, then a body that never ends (until the client goes away)."""
    response = web.StreamResponse(headers={"cf-ray": "endless", "Content-Type": "application/octet-stream"})
    await response.prepare(request)
    try:
        while True:
            await response.write(b"x" * 65536)
    finally:
        server.disconnected.set()


async def huge(request: web.Request, server: WebServer) -> web.StreamResponse:
    """Declares a 1 TB body and dribbles it."""
    response = web.StreamResponse(headers={"cf-ray": "huge", "Content-Length": str(10**12)})
    await response.prepare(request)
    try:
        while True:
            await response.write(b"x" * 1024)
            await asyncio.sleep(0.01)
    finally:
        server.disconnected.set()


@pytest.mark.parametrize("handler", [endless, huge])
async def test_the_body_is_never_read(web_server, prober, handler):
    site = await web_server(handler)
    p = await prober(LOCAL, site.port, timeout=5.0)
    started = time.monotonic()
    run = await p.scan()
    elapsed = time.monotonic() - started
    assert elapsed < 2.0  # well inside the 5 s timeout: it did not wait for the body
    assert run.providers == {("cdn", "cloudflare")}
    assert run.findings[0].evidence[0].startswith(f"HTTP http://www.ex.nl:{site.port}/ cf-ray: ")
    # and the probe hung up instead of draining the body
    await asyncio.wait_for(site.disconnected.wait(), 2.0)


async def test_a_server_that_never_answers_hits_the_timeout(prober):
    connections = []
    done = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        await reader.read(65536)  # takes the request, never answers, keeps the connection open
        await done.wait()

    silent_server = await asyncio.start_server(silent, "127.0.0.1", 0)
    try:
        p = await prober(LOCAL, silent_server.sockets[0].getsockname()[1], timeout=0.5)
        started = time.monotonic()
        result = await p.probe.headers("www.ex.nl", "ex.nl")
        elapsed = time.monotonic() - started
        assert "Timeout" in result.error, result.error
        assert (result.status, result.headers) == (0, {})
        assert 0.45 <= elapsed < 2.0
        assert len(connections) == 1  # it connected; the answer is what never came

        started = time.monotonic()
        run = await p.scan()
        assert run.findings == []
        assert time.monotonic() - started < 2.0
    finally:
        done.set()
        for writer in connections:
            writer.close()
        silent_server.close()
        await silent_server.wait_closed()


def test_extra_host_names_relative_absolute_and_under_the_domain():
    from dijkwacht_plugins._common import host_names

    assert host_names("ex.nl", ["portal", "cdn.other.com.", "login.ex.nl", "WWW"]) == [
        "ex.nl", "www.ex.nl", "portal.ex.nl", "cdn.other.com", "login.ex.nl",
    ]
