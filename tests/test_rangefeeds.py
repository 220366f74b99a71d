"""Range feeds: parsers on small hand-written samples of each official format, and end-to-end
updates against a real HTTP server on 127.0.0.1 (nothing else is ever contacted)."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import ipaddress
import json
import os
import re
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest
import structlog
import structlog.testing
from aiohttp import web
from aiohttp.test_utils import TestServer

from dijkwacht import cli_data, rangefeeds
from dijkwacht.rangefeeds import FeedError, update_ranges

net = ipaddress.ip_network

# --- samples of the official formats ------------------------------------------------------------

AMAZON = json.dumps({
    "syncToken": "1755880632",
    "createDate": "2026-08-22-16-37-12",
    "prefixes": [
        {"ip_prefix": "3.5.140.0/22", "region": "ap-northeast-2", "service": "AMAZON", "network_border_group": "ap-northeast-2"},
        {"ip_prefix": "3.5.140.0/22", "region": "ap-northeast-2", "service": "S3", "network_border_group": "ap-northeast-2"},
        {"ip_prefix": "3.5.142.0/24", "region": "ap-northeast-2", "service": "EC2", "network_border_group": "ap-northeast-2"},
        {"ip_prefix": "13.34.37.64/27", "region": "ap-southeast-4", "service": "AMAZON", "network_border_group": "ap-southeast-4"},
        {"ip_prefix": "13.34.37.96/27", "region": "ap-southeast-4", "service": "AMAZON", "network_border_group": "ap-southeast-4"},
        {"ip_prefix": "52.94.76.9/22", "region": "us-west-2", "service": "AMAZON", "network_border_group": "us-west-2"},
    ],
    "ipv6_prefixes": [
        {"ipv6_prefix": "2600:1f14::/35", "region": "us-west-2", "service": "EC2", "network_border_group": "us-west-2"},
        {"ipv6_prefix": "2600:1f14:fff:f800::/53", "region": "us-west-2", "service": "ROUTE53_HEALTHCHECKS", "network_border_group": "us-west-2"},
        {"ipv6_prefix": "2a05:d07a:a000::1/40", "region": "eu-south-1", "service": "S3", "network_border_group": "eu-south-1"},
    ],
}).encode()

MICROSOFT = json.dumps({
    "changeNumber": 412,
    "cloud": "Public",
    "values": [
        {"name": "ActionGroup", "id": "ActionGroup", "properties": {
            "changeNumber": 51, "region": "", "regionId": 0, "platform": "Azure", "systemService": "ActionGroup",
            "addressPrefixes": ["4.145.74.52/30", "20.21.37.0/24", "2603:1000:4::5c0/122"], "networkFeatures": ["API", "NSG"]}},
        {"name": "AzureCloud.westeurope", "id": "AzureCloud.westeurope", "properties": {
            "changeNumber": 98, "region": "westeurope", "regionId": 18, "platform": "Azure", "systemService": "",
            "addressPrefixes": ["20.21.36.0/23", "20.50.0.0/18", "2603:1020:200::/46", "2603:1020:201::/48"], "networkFeatures": ["API", "NSG"]}},
        {"name": "AzureFrontDoor.Frontend", "id": "AzureFrontDoor.Frontend", "properties": {
            "changeNumber": 7, "region": "", "regionId": 0, "platform": "Azure", "systemService": "AzureFrontDoor",
            "addressPrefixes": ["13.107.246.0/24", "13.107.246.0/24", "20.50.64.7/18"], "networkFeatures": ["API", "NSG"]}},
    ],
}).encode()

GOOG = json.dumps({
    "syncToken": "1755880632000",
    "creationTime": "2026-08-22T16:37:12.000000",
    "prefixes": [
        {"ipv4Prefix": "8.8.4.0/24"}, {"ipv4Prefix": "8.8.8.0/24"}, {"ipv4Prefix": "8.34.208.0/20"},
        {"ipv6Prefix": "2001:4860::/32"}, {"ipv6Prefix": "2404:6800::/32"},
    ],
}).encode()

GOOGLE_CLOUD = json.dumps({
    "syncToken": "1755880632000",
    "creationTime": "2026-08-22T16:37:12.000000",
    "prefixes": [
        {"ipv4Prefix": "8.34.208.0/23", "service": "Google Cloud", "scope": "us-west1"},
        {"ipv4Prefix": "34.1.208.0/20", "service": "Google Cloud", "scope": "africa-south1"},
        {"ipv4Prefix": "34.1.208.0/20", "service": "Google Cloud", "scope": "africa-south1"},
        {"ipv6Prefix": "2600:1900:4000::/44", "service": "Google Cloud", "scope": "us-central1"},
        {"ipv6Prefix": "2001:4860:4860::8888/48", "service": "Google Cloud", "scope": "global"},
    ],
}).encode()

# Cloudflare's lists are plain text; tolerate a missing final newline, CRLF and blank lines.
CLOUDFLARE_V4 = b"173.245.48.0/20\n103.21.244.0/22\n103.22.200.0/22\n103.22.200.0/23\n104.16.0.0/13\n104.24.0.0/14"
CLOUDFLARE_V6 = b"2400:cb00::/32\r\n2606:4700::/32\r\n\r\n2606:4700:10::6814:1/44\r\n"

FASTLY = json.dumps({
    "addresses": ["23.235.32.0/20", "43.249.72.0/22", "23.235.33.0/24", "151.101.0.0/16", "151.101.0.0/16"],
    "ipv6_addresses": ["2a04:4e40::/32", "2a04:4e42::/32", "2a04:4e42::1/128"],
}).encode()

ORACLE = json.dumps({
    "last_updated_timestamp": "2026-08-20T10:00:00.000000",
    "regions": [
        {"region": "eu-amsterdam-1", "cidrs": [{"cidr": "192.29.0.0/20", "tags": ["OCI"]}, {"cidr": "192.29.0.0/16", "tags": ["OSN", "OBJECT_STORAGE"]}]},
        {"region": "eu-frankfurt-1", "cidrs": [{"cidr": "130.61.0.0/16", "tags": ["OCI"]}, {"cidr": "138.1.77.1/16", "tags": ["OSN"]}]},
        {"region": "us-ashburn-1", "cidrs": []},
    ],
}).encode()


def microsoft_page(base: str) -> bytes:
    """Like the download details page: an older plain link, and the newest in script JSON with escaped slashes."""
    escaped = f"{base}/microsoft/download/new/ServiceTags_Public_20260817.json".replace("/", "\\/")
    return f"""<!DOCTYPE html><html lang="en-us"><head><title>Download Azure IP Ranges and Service Tags</title></head>
<body><a href="{base}/microsoft/download/old/ServiceTags_Public_20260810.json" class="dlcdetail__download-btn">Download</a>
<script>window.__DLCDetails__={{"dlcDetailsView":{{"downloadFile":[{{"name":"ServiceTags_Public_20260817.json","url":"{escaped}"}}]}}}}</script>
</body></html>""".encode()


# --- a local feed server ------------------------------------------------------------------------

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class FeedServer:
    """Serves the samples on 127.0.0.1; a test replaces a route to simulate a failing feed."""

    def __init__(self) -> None:
        app = web.Application()
        app.router.add_get("/{path:.*}", self._handle)
        self._server = TestServer(app, host="127.0.0.1")
        self.routes: dict[str, tuple[int, bytes] | Handler] = {}
        self.user_agents: list[str] = []

    async def start(self) -> None:
        await self._server.start_server()
        base = self.url("/").rstrip("/")
        self.routes = {
            "/amazon/ip-ranges.json": (200, AMAZON),
            "/microsoft/details.aspx": (200, microsoft_page(base)),
            "/microsoft/download/new/ServiceTags_Public_20260817.json": (200, MICROSOFT),
            "/google/goog.json": (200, GOOG),
            "/google/cloud.json": (200, GOOGLE_CLOUD),
            "/cloudflare/ips-v4/": (200, CLOUDFLARE_V4),
            "/cloudflare/ips-v6/": (200, CLOUDFLARE_V6),
            "/fastly/public-ip-list": (200, FASTLY),
            "/oracle/public_ip_ranges.json": (200, ORACLE),
        }

    async def close(self) -> None:
        await self._server.close()

    def url(self, path: str) -> str:
        return str(self._server.make_url(path))

    @property
    def urls(self) -> dict[str, tuple[str, ...]]:
        return {
            "amazon": (self.url("/amazon/ip-ranges.json"),),
            "microsoft": (self.url("/microsoft/details.aspx"),),
            "google": (self.url("/google/goog.json"), self.url("/google/cloud.json")),
            "cloudflare": (self.url("/cloudflare/ips-v4/"), self.url("/cloudflare/ips-v6/")),
            "fastly": (self.url("/fastly/public-ip-list"),),
            "oracle": (self.url("/oracle/public_ip_ranges.json"),),
        }

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.user_agents.append(request.headers.get("User-Agent", ""))
        route = self.routes.get(request.path)
        if route is None:
            return web.Response(status=404)
        if callable(route):
            return await route(request)
        status, body = route
        return web.Response(status=status, body=body)


@pytest.fixture(autouse=True)
def offline_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the default URLs at a closed local port, so a test that forgets an override cannot go online."""
    for provider, feed in list(rangefeeds.FEEDS.items()):
        dead = tuple(f"http://127.0.0.1:9/{provider}/{i}" for i in range(len(feed.urls)))
        monkeypatch.setitem(rangefeeds.FEEDS, provider, replace(feed, urls=dead))


@pytest.fixture
async def feeds():
    server = FeedServer()
    await server.start()
    yield server
    await server.close()


def expected(base: str, tmpl: str) -> str:
    return tmpl.replace("{base}", base)


EXPECTED = {
    "amazon": """\
# provider: amazon
# source: {base}/amazon/ip-ranges.json
# fetched: <T>
# prefixes: 3 IPv4, 2 IPv6
3.5.140.0/22
13.34.37.64/26
52.94.76.0/22
2600:1f14::/35
2a05:d07a:a000::/40
""",
    "microsoft": """\
# provider: microsoft
# source: {base}/microsoft/download/new/ServiceTags_Public_20260817.json
# fetched: <T>
# prefixes: 4 IPv4, 2 IPv6
4.145.74.52/30
13.107.246.0/24
20.21.36.0/23
20.50.0.0/17
2603:1000:4::5c0/122
2603:1020:200::/46
""",
    "google": """\
# provider: google
# source: {base}/google/goog.json + {base}/google/cloud.json
# fetched: <T>
# prefixes: 4 IPv4, 3 IPv6
8.8.4.0/24
8.8.8.0/24
8.34.208.0/20
34.1.208.0/20
2001:4860::/32
2404:6800::/32
2600:1900:4000::/44
""",
    "cloudflare": """\
# provider: cloudflare
# source: {base}/cloudflare/ips-v4/ + {base}/cloudflare/ips-v6/
# fetched: <T>
# prefixes: 5 IPv4, 2 IPv6
103.21.244.0/22
103.22.200.0/22
104.16.0.0/13
104.24.0.0/14
173.245.48.0/20
2400:cb00::/32
2606:4700::/32
""",
    "fastly": """\
# provider: fastly
# source: {base}/fastly/public-ip-list
# fetched: <T>
# prefixes: 3 IPv4, 2 IPv6
23.235.32.0/20
43.249.72.0/22
151.101.0.0/16
2a04:4e40::/32
2a04:4e42::/32
""",
    "oracle": """\
# provider: oracle
# source: {base}/oracle/public_ip_ranges.json
# fetched: <T>
# prefixes: 3 IPv4, 0 IPv6
130.61.0.0/16
138.1.0.0/16
192.29.0.0/16
""",
}
COUNTS = {"amazon": (3, 2), "microsoft": (4, 2), "google": (4, 3), "cloudflare": (5, 2), "fastly": (3, 2), "oracle": (3, 0)}


def read_range_file(path: Path, since: dt.datetime) -> str:
    """The file's text with its fetch time replaced by <T>, after checking that time is now, in UTC."""
    raw = path.read_bytes()
    assert b"\r" not in raw
    text = raw.decode("utf-8")
    match = re.search(r"^# fetched: (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00)$", text, re.MULTILINE)
    assert match, text
    assert since.replace(microsecond=0) <= dt.datetime.fromisoformat(match.group(1)) <= dt.datetime.now(dt.UTC)
    return text.replace(match.group(0), "# fetched: <T>")


OLD_AMAZON = "# provider: amazon\n# fetched: 2026-01-01T00:00:00+00:00\n" + "".join(f"10.{i}.0.0/16\n" for i in range(11))


# --- parsers ------------------------------------------------------------------------------------


def test_parse_amazon_normalises_host_bits_and_keeps_both_families() -> None:
    assert rangefeeds.parse_amazon(AMAZON, "u") == [
        net("3.5.140.0/22"), net("3.5.140.0/22"), net("3.5.142.0/24"), net("13.34.37.64/27"), net("13.34.37.96/27"), net("52.94.76.0/22"),
        net("2600:1f14::/35"), net("2600:1f14:fff:f800::/53"), net("2a05:d07a:a000::/40"),
    ]


def test_parse_microsoft_takes_every_tag() -> None:
    assert rangefeeds.parse_microsoft(MICROSOFT, "u") == [
        net("4.145.74.52/30"), net("20.21.37.0/24"), net("2603:1000:4::5c0/122"),
        net("20.21.36.0/23"), net("20.50.0.0/18"), net("2603:1020:200::/46"), net("2603:1020:201::/48"),
        net("13.107.246.0/24"), net("13.107.246.0/24"), net("20.50.64.0/18"),
    ]


def test_parse_google_reads_v4_and_v6_entries() -> None:
    assert rangefeeds.parse_google(GOOG, "u") == [
        net("8.8.4.0/24"), net("8.8.8.0/24"), net("8.34.208.0/20"), net("2001:4860::/32"), net("2404:6800::/32"),
    ]
    assert rangefeeds.parse_google(GOOGLE_CLOUD, "u")[-1] == net("2001:4860:4860::/48")


def test_parse_cloudflare_plain_text_with_crlf_and_blank_lines() -> None:
    assert rangefeeds.parse_cloudflare(CLOUDFLARE_V6, "u") == [net("2400:cb00::/32"), net("2606:4700::/32"), net("2606:4700:10::/44")]
    assert rangefeeds.parse_cloudflare(CLOUDFLARE_V4.decode(), "u")[0] == net("173.245.48.0/20")


def test_parse_fastly() -> None:
    assert rangefeeds.parse_fastly(FASTLY, "u") == [
        net("23.235.32.0/20"), net("43.249.72.0/22"), net("23.235.33.0/24"), net("151.101.0.0/16"), net("151.101.0.0/16"),
        net("2a04:4e40::/32"), net("2a04:4e42::/32"), net("2a04:4e42::1/128"),
    ]


def test_parse_oracle_skips_regions_without_cidrs() -> None:
    assert rangefeeds.parse_oracle(ORACLE, "u") == [net("192.29.0.0/20"), net("192.29.0.0/16"), net("130.61.0.0/16"), net("138.1.0.0/16")]


def test_find_service_tags_url_picks_the_newest_file() -> None:
    page = """<a href="https://download.microsoft.com/download/7/1/D/71D86715-5596-4529-9B13-DA13A5DE5B63/ServiceTags_Public_20260803.json">
    "url":"https:\\/\\/download.microsoft.com\\/download\\/7\\/1\\/D\\/71D86715\\/ServiceTags_Public_20260817.json"
    <a href='https://download.microsoft.com/download/0/1/8/ServiceTags_Public_20260810.json'>"""
    assert rangefeeds.find_service_tags_url(page.encode(), "u") == "https://download.microsoft.com/download/7/1/D/71D86715/ServiceTags_Public_20260817.json"


def test_find_service_tags_url_without_link() -> None:
    with pytest.raises(FeedError, match=r"no ServiceTags_Public_YYYYMMDD\.json link") as info:
        rangefeeds.find_service_tags_url(b"<html><a href='https://example.invalid/other.json'>x</a></html>", "http://page")
    assert (info.value.provider, info.value.url) == ("microsoft", "http://page")


PARSE_ERRORS = [
    ("amazon", b"{not json", "malformed JSON"),
    ("amazon", b'{"prefixes": []}', "missing or wrong key 'ipv6_prefixes'"),
    ("amazon", b'{"prefixes": [{"ip_prefix": "3.5.140.0/33"}], "ipv6_prefixes": []}', "invalid CIDR prefix '3.5.140.0/33'"),
    ("amazon", b'{"prefixes": [{"ip_prefix": 50462720}], "ipv6_prefixes": []}', "not a string"),
    ("amazon", b'{"prefixes": [], "ipv6_prefixes": []}', "no prefixes"),
    ("microsoft", b"<html>maintenance</html>", "malformed JSON"),
    ("microsoft", b'{"values": [{"name": "x", "properties": {}}]}', "missing or wrong key 'addressPrefixes'"),
    ("microsoft", b'{"values": [{"properties": {"addressPrefixes": ["20.21.36.0/23x"]}}]}', "invalid CIDR prefix"),
    ("microsoft", b'{"values": []}', "no prefixes"),
    ("google", b'{"prefixes": [{"ipv4Prefix": "8.8.4.0/24"}', "malformed JSON"),
    ("google", b'{"prefixes": [{"service": "Google Cloud"}]}', "missing or wrong key 'ipv6Prefix'"),
    ("google", b'{"prefixes": [{"ipv4Prefix": "8.8.8.256/24"}]}', "invalid CIDR prefix"),
    ("google", b'{"prefixes": []}', "no prefixes"),
    ("google", b'[{"ipv4Prefix": "8.8.4.0/24"}]', "missing or wrong key"),
    ("cloudflare", b"<!DOCTYPE html>\n<title>Attention Required!</title>", "invalid CIDR prefix '<!DOCTYPE html>'"),
    ("cloudflare", b"\xff\xfe1\x00", "not UTF-8"),
    ("cloudflare", b"\n\n", "no prefixes"),
    ("fastly", b"", "malformed JSON"),
    ("fastly", b'{"addresses": ["23.235.32.0/20"]}', "missing or wrong key 'ipv6_addresses'"),
    ("fastly", b'{"addresses": [], "ipv6_addresses": ["2a04:4e42::/129"]}', "invalid CIDR prefix"),
    ("fastly", b'{"addresses": [], "ipv6_addresses": []}', "no prefixes"),
    ("oracle", b"null", "missing or wrong key"),
    ("oracle", b'{"regions": [{"region": "eu-amsterdam-1"}]}', "missing or wrong key 'cidrs'"),
    ("oracle", b'{"regions": [{"cidrs": [{"cidr": "192.29.0.0"}, {"cidr": "192.29.0.0/8/8"}]}]}', "invalid CIDR prefix"),
    ("oracle", b'{"regions": []}', "no prefixes"),
]


@pytest.mark.parametrize(("provider", "body", "reason"), PARSE_ERRORS)
def test_parser_rejects_bad_input(provider: str, body: bytes, reason: str) -> None:
    parse = getattr(rangefeeds, f"parse_{provider}")
    with pytest.raises(FeedError) as info:
        parse(body, "https://feed.example/list")
    assert (info.value.provider, info.value.url) == (provider, "https://feed.example/list")
    assert reason in info.value.reason
    assert str(info.value).startswith(f"{provider}: https://feed.example/list: ")


def test_render_collapses_per_family_ipv4_first() -> None:
    nets = [net("2001:db8::/33"), net("192.0.2.128/25"), net("2001:db8:8000::/33"), net("192.0.2.0/25"), net("10.0.0.0/8"), net("10.1.0.0/16")]
    fetched = dt.datetime(2026, 8, 22, 18, 37, 12, 345, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    text, v4, v6 = rangefeeds.render("example", ["https://a/1", "https://a/2"], fetched, nets)
    assert (v4, v6) == (2, 1)
    assert text == (
        "# provider: example\n# source: https://a/1 + https://a/2\n# fetched: 2026-08-22T16:37:12+00:00\n"
        "# prefixes: 2 IPv4, 1 IPv6\n10.0.0.0/8\n192.0.2.0/24\n2001:db8::/32\n"
    )


# --- end to end against a local HTTP server -----------------------------------------------------


async def test_update_all_feeds_writes_exact_files(feeds: FeedServer, tmp_path: Path) -> None:
    data_dir = tmp_path / "new" / "ranges"  # created on demand
    since = dt.datetime.now(dt.UTC)
    results = await update_ranges(data_dir, urls=feeds.urls)
    assert [r.provider for r in results] == list(rangefeeds.FEEDS)
    for result in results:
        assert result.ok, result.error
        assert (result.prefixes_v4, result.prefixes_v6) == COUNTS[result.provider]
        assert result.path == data_dir / f"{result.provider}.txt"
        assert read_range_file(result.path, since) == expected(feeds.url("/").rstrip("/"), EXPECTED[result.provider])
    # No temporary file is left behind, and every request announced itself.
    assert sorted(p.name for p in data_dir.iterdir()) == sorted(f"{p}.txt" for p in rangefeeds.FEEDS)
    assert feeds.user_agents and all(ua.startswith("dijkwacht/") for ua in feeds.user_agents)


async def test_http_500_keeps_old_file_and_other_feeds_still_update(feeds: FeedServer, tmp_path: Path) -> None:
    (tmp_path / "amazon.txt").write_text(OLD_AMAZON)
    feeds.routes["/amazon/ip-ranges.json"] = (500, b"oops")
    results = await update_ranges(tmp_path, providers=["amazon", "fastly"], urls=feeds.urls)
    amazon, fastly = results
    assert not amazon.ok and amazon.path is None
    assert amazon.error == f"{feeds.url('/amazon/ip-ranges.json')}: HTTP 500 Internal Server Error"
    assert (tmp_path / "amazon.txt").read_text() == OLD_AMAZON
    assert fastly.ok and (tmp_path / "fastly.txt").exists()


async def test_malformed_feed_keeps_old_file(feeds: FeedServer, tmp_path: Path) -> None:
    (tmp_path / "amazon.txt").write_text(OLD_AMAZON)
    feeds.routes["/amazon/ip-ranges.json"] = (200, AMAZON[: len(AMAZON) // 2])  # cut off mid-transfer
    [result] = await update_ranges(tmp_path, providers=["amazon"], urls=feeds.urls)
    assert not result.ok and "malformed JSON" in result.error
    assert (tmp_path / "amazon.txt").read_text() == OLD_AMAZON


async def test_truncated_list_keeps_old_file_unless_forced(feeds: FeedServer, tmp_path: Path) -> None:
    since = dt.datetime.now(dt.UTC)
    [first] = await update_ranges(tmp_path, providers=["amazon"], urls=feeds.urls)
    assert first.ok
    good = (tmp_path / "amazon.txt").read_bytes()
    # 1 prefix where the file has 5: a truncated list, refused.
    feeds.routes["/amazon/ip-ranges.json"] = (200, json.dumps({"prefixes": [{"ip_prefix": "3.5.140.0/22"}], "ipv6_prefixes": []}).encode())
    [refused] = await update_ranges(tmp_path, providers=["amazon"], urls=feeds.urls)
    assert not refused.ok
    assert "new list has 1 prefixes, fewer than half of the 5 in the existing file" in refused.error
    assert (tmp_path / "amazon.txt").read_bytes() == good

    [forced] = await update_ranges(tmp_path, providers=["amazon"], urls=feeds.urls, force=True)
    assert forced.ok and (forced.prefixes_v4, forced.prefixes_v6) == (1, 0)
    assert read_range_file(tmp_path / "amazon.txt", since) == (
        f"# provider: amazon\n# source: {feeds.url('/amazon/ip-ranges.json')}\n# fetched: <T>\n# prefixes: 1 IPv4, 0 IPv6\n3.5.140.0/22\n"
    )


@pytest.mark.parametrize(("old_prefixes", "replaced"), [(10, True), (11, False)])
async def test_half_of_the_old_count_is_the_limit(feeds: FeedServer, tmp_path: Path, old_prefixes: int, replaced: bool) -> None:
    old = "# provider: amazon\n" + "".join(f"10.{i}.0.0/16\n" for i in range(old_prefixes))
    (tmp_path / "amazon.txt").write_text(old)
    [result] = await update_ranges(tmp_path, providers=["amazon"], urls=feeds.urls)  # 5 prefixes
    assert result.ok is replaced
    assert ((tmp_path / "amazon.txt").read_text() == old) is not replaced


async def test_empty_feed_is_refused_even_when_forced(feeds: FeedServer, tmp_path: Path) -> None:
    (tmp_path / "fastly.txt").write_text("# provider: fastly\n151.101.0.0/16\n")
    feeds.routes["/fastly/public-ip-list"] = (200, b'{"addresses": [], "ipv6_addresses": []}')
    [result] = await update_ranges(tmp_path, providers=["fastly"], urls=feeds.urls, force=True)
    assert not result.ok and "no prefixes" in result.error
    assert (tmp_path / "fastly.txt").read_text() == "# provider: fastly\n151.101.0.0/16\n"


async def test_one_failing_url_of_a_merged_feed_writes_nothing(feeds: FeedServer, tmp_path: Path) -> None:
    del feeds.routes["/google/cloud.json"]
    [result] = await update_ranges(tmp_path, providers=["google"], urls=feeds.urls)
    assert result.error == f"{feeds.url('/google/cloud.json')}: HTTP 404 Not Found"
    assert not (tmp_path / "google.txt").exists()


async def test_microsoft_page_without_link_fails(feeds: FeedServer, tmp_path: Path) -> None:
    feeds.routes["/microsoft/details.aspx"] = (200, b"<html><body>We're sorry, this download is no longer available.</body></html>")
    [result] = await update_ranges(tmp_path, providers=["microsoft"], urls=feeds.urls)
    assert not result.ok and "no ServiceTags_Public_YYYYMMDD.json link" in result.error
    assert list(tmp_path.iterdir()) == []


async def test_other_providers_files_are_left_alone(feeds: FeedServer, tmp_path: Path) -> None:
    others = {"hetzner.txt": "# provider: hetzner\n5.9.0.0/16\n", "google.txt": "# provider: google\n8.8.8.0/24\n", "notes.md": "x\n"}
    for name, text in others.items():
        (tmp_path / name).write_text(text)
        os.utime(tmp_path / name, (1_000_000_000, 1_000_000_000))
    [result] = await update_ranges(tmp_path, providers=["amazon"], urls=feeds.urls)
    assert result.ok
    for name, text in others.items():
        assert (tmp_path / name).read_text() == text
        assert (tmp_path / name).stat().st_mtime == 1_000_000_000
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*others, "amazon.txt"])


async def test_file_mode_is_kept_and_new_files_are_world_readable(feeds: FeedServer, tmp_path: Path) -> None:
    (tmp_path / "amazon.txt").write_text("# provider: amazon\n3.5.140.0/22\n")
    os.chmod(tmp_path / "amazon.txt", 0o640)
    await update_ranges(tmp_path, providers=["amazon", "oracle"], urls=feeds.urls)
    assert (tmp_path / "amazon.txt").stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "oracle.txt").stat().st_mode & 0o777 == 0o644


async def test_slow_feed_times_out(feeds: FeedServer, tmp_path: Path) -> None:
    release = asyncio.Event()

    async def stall(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response(body=FASTLY)

    feeds.routes["/fastly/public-ip-list"] = stall
    try:
        [result] = await update_ranges(tmp_path, providers=["fastly"], urls=feeds.urls, timeout=0.2)
    finally:
        release.set()
    assert result.error == f"{feeds.url('/fastly/public-ip-list')}: timed out after 0.2 s"


@pytest.mark.parametrize("chunked", [False, True])
async def test_oversized_response_is_rejected(feeds: FeedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunked: bool) -> None:
    monkeypatch.setattr(rangefeeds, "MAX_BYTES", 64)

    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()  # no Content-Length: the cap must hold while reading
        await response.prepare(request)
        for i in range(0, len(FASTLY), 16):
            await response.write(FASTLY[i : i + 16])
        await response.write_eof()
        return response

    feeds.routes["/fastly/public-ip-list"] = stream if chunked else (200, FASTLY)
    [result] = await update_ranges(tmp_path, providers=["fastly"], urls=feeds.urls)
    assert not result.ok and result.error.endswith("response larger than 64 bytes")


async def test_connection_refused_is_a_failed_result(tmp_path: Path) -> None:
    [result] = await update_ranges(tmp_path, providers=["oracle"], urls={"oracle": ["http://127.0.0.1:9/x.json"]})
    assert not result.ok and result.error.startswith("http://127.0.0.1:9/x.json: request failed: ")


async def test_caller_session_is_used_and_left_open(feeds: FeedServer, tmp_path: Path) -> None:
    async with aiohttp.ClientSession(headers={"User-Agent": "caller-session"}) as session:
        [result] = await update_ranges(tmp_path, providers=["oracle"], urls=feeds.urls, session=session)
        assert result.ok and not session.closed
    assert feeds.user_agents == ["caller-session"]


async def test_unknown_provider_or_empty_url_list_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown provider feed.*: hetzner"):
        await update_ranges(tmp_path, providers=["hetzner"])
    with pytest.raises(ValueError, match=r"unknown provider feed.*: akamai"):
        await update_ranges(tmp_path, providers=["amazon"], urls={"akamai": ["http://127.0.0.1:9/"]})
    with pytest.raises(ValueError, match="at least one URL"):
        await update_ranges(tmp_path, providers=["amazon"], urls={"amazon": []})
    assert list(tmp_path.iterdir()) == []


# --- CLI ----------------------------------------------------------------------------------------


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dijkwacht")
    cli_data.add_parser(parser.add_subparsers(dest="command"))
    return parser


def test_cli_parses_update_options() -> None:
    args = make_parser().parse_args(["data", "update", "--data-dir", "/srv/ranges", "--provider", "amazon", "--provider", "google", "--force", "--timeout", "7.5"])
    assert (args.command, args.data_command) == ("data", "update")
    assert (args.data_dir, args.providers, args.force, args.timeout) == (Path("/srv/ranges"), ["amazon", "google"], True, 7.5)
    defaults = make_parser().parse_args(["data", "update"])
    assert (defaults.data_dir, defaults.providers, defaults.force, defaults.timeout) == (None, None, False, 30.0)


@pytest.mark.parametrize("argv", [["--provider", "hetzner"], ["--timeout", "0"], ["--timeout", "-1"], ["--timeout", "soon"]])
def test_cli_rejects_bad_options(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        make_parser().parse_args(["data", "update", *argv])
    assert info.value.code == 2
    assert "error: argument" in capsys.readouterr().err


def test_cli_every_option_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        make_parser().parse_args(["data", "update", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    for option in ("--data-dir DIR directory of range files", "--provider ID update only this provider", "--force replace a file", "--timeout SECONDS time limit"):
        assert option in help_text


async def test_cli_run_prints_one_line_per_provider(feeds: FeedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    for provider, urls in feeds.urls.items():
        monkeypatch.setitem(rangefeeds.FEEDS, provider, replace(rangefeeds.FEEDS[provider], urls=urls))
    feeds.routes["/microsoft/details.aspx"] = (500, b"")
    args = make_parser().parse_args(["data", "update", "--provider", "amazon", "--provider", "microsoft", "--provider", "oracle"])
    # run() calls asyncio.run, so it needs a thread of its own while this loop serves the feeds.
    # Unconfigured structlog prints to stdout; capture its events so stdout holds only the report.
    with structlog.testing.capture_logs() as logs:
        code = await asyncio.to_thread(cli_data.run, args, tmp_path)
    assert code == cli_data.PARTIAL
    assert sorted((e["event"], e["provider"]) for e in logs) == [("feed.failed", "microsoft"), ("feed.updated", "amazon"), ("feed.updated", "oracle")]
    assert capsys.readouterr().out.splitlines() == [
        f"amazon  ok  3 IPv4  2 IPv6  {tmp_path / 'amazon.txt'}",
        f"microsoft  FAILED  {feeds.url('/microsoft/details.aspx')}: HTTP 500 Internal Server Error",
        f"oracle  ok  3 IPv4  0 IPv6  {tmp_path / 'oracle.txt'}",
    ]

    del feeds.routes["/microsoft/details.aspx"]
    args = make_parser().parse_args(["data", "update", "--provider", "cloudflare"])
    with structlog.testing.capture_logs():
        assert await asyncio.to_thread(cli_data.run, args, tmp_path) == 0
    assert capsys.readouterr().out == f"cloudflare  ok  5 IPv4  2 IPv6  {tmp_path / 'cloudflare.txt'}\n"


# --- proxies and the offline import ----------------------------------------------------------------


class Proxy:
    """A forward proxy on 127.0.0.1 that logs every request: an absolute-form GET is answered
    from `content` (standing in for the internet), a CONNECT tunnel is refused."""

    def __init__(self, content: dict[str, bytes]) -> None:
        self.content = content
        self.seen: list[tuple[str, str]] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        method, target, _ = (await reader.readline()).decode().split(" ", 2)
        while (await reader.readline()).strip():
            pass
        self.seen.append((method, target))
        body = self.content.get(target) if method == "GET" else None
        status = "200 OK" if body is not None else "403 Forbidden"
        writer.write(f"HTTP/1.1 {status}\r\nContent-Length: {len(body or b'')}\r\nConnection: close\r\n\r\n".encode() + (body or b""))
        await writer.drain()
        writer.close()

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


@pytest.fixture
async def proxy(monkeypatch: pytest.MonkeyPatch):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    server = Proxy({"http://feeds.invalid/fastly/public-ip-list": FASTLY, "http://feeds.invalid/oracle/public_ip_ranges.json": ORACLE})
    url = await server.start()
    yield server, url
    await server.stop()


async def test_https_proxy_from_the_environment_is_used(proxy, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    server, url = proxy
    monkeypatch.setenv("HTTPS_PROXY", url)
    urls = {p: tuple(f"https://{p}.invalid/{i}" for i in range(len(f.urls))) for p, f in rangefeeds.FEEDS.items()}
    results = await update_ranges(tmp_path, urls=urls, timeout=5)
    assert not any(r.ok for r in results) and not list(tmp_path.iterdir())
    assert sorted({target for method, target in server.seen if method == "CONNECT"}) == sorted(f"{p}.invalid:443" for p in rangefeeds.FEEDS)


async def test_http_proxy_carries_the_download_and_no_proxy_bypasses_it(proxy, feeds: FeedServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    server, url = proxy
    monkeypatch.setenv("HTTP_PROXY", url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    urls = {"fastly": ["http://feeds.invalid/fastly/public-ip-list"], "oracle": ["http://feeds.invalid/oracle/public_ip_ranges.json"], "amazon": feeds.urls["amazon"]}
    results = await update_ranges(tmp_path, providers=["fastly", "oracle", "amazon"], urls=urls, timeout=5)
    assert [(r.provider, r.ok) for r in results] == [("fastly", True), ("oracle", True), ("amazon", True)]
    assert sorted(server.seen) == [("GET", "http://feeds.invalid/fastly/public-ip-list"), ("GET", "http://feeds.invalid/oracle/public_ip_ranges.json")]
    assert "23.235.32.0/20" in (tmp_path / "fastly.txt").read_text()


def official_files(directory: Path, mtime: float = 1_780_000_000) -> Path:
    """The official lists as an air-gapped site would carry them in, under their download names."""
    directory.mkdir()
    for name, body in [("ip-ranges.json", AMAZON), ("ServiceTags_Public_20260810.json", b"{}"), ("ServiceTags_Public_20260817.json", MICROSOFT),
                       ("goog.json", GOOG), ("cloud.json", GOOGLE_CLOUD), ("ips-v4", CLOUDFLARE_V4), ("ips-v6", CLOUDFLARE_V6),
                       ("public-ip-list", FASTLY), ("public_ip_ranges.json", ORACLE)]:
        (directory / name).write_bytes(body)
        os.utime(directory / name, (mtime, mtime))
    return directory


def test_import_from_a_directory_writes_the_same_ranges(tmp_path: Path) -> None:
    source = official_files(tmp_path / "official")
    results = rangefeeds.import_ranges(tmp_path / "data", source)
    assert [(r.provider, r.ok, r.prefixes_v4, r.prefixes_v6) for r in results] == [(p, True, *COUNTS[p]) for p in rangefeeds.FEEDS]
    text = (tmp_path / "data" / "microsoft.txt").read_text()
    # Dated by the files' time (when they were fetched), the newest Service Tags file is taken.
    assert "# fetched: 2026-05-28T20:26:40+00:00" in text and "ServiceTags_Public_20260817.json" in text
    for provider in rangefeeds.FEEDS:
        body = (tmp_path / "data" / f"{provider}.txt").read_text()
        assert body.split("\n", 4)[4] == EXPECTED[provider].split("\n", 4)[4], provider


def test_import_with_a_missing_file_writes_the_others(tmp_path: Path) -> None:
    source = official_files(tmp_path / "official")
    (source / "cloud.json").unlink()
    results = {r.provider: r for r in rangefeeds.import_ranges(tmp_path / "data", source)}
    assert not results["google"].ok and "no cloud.json" in results["google"].error
    assert all(r.ok for p, r in results.items() if p != "google")
    assert not (tmp_path / "data" / "google.txt").exists()


def test_cli_from_directory_exit_status(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = official_files(tmp_path / "official")
    args = make_parser().parse_args(["data", "update", "--from", str(source)])
    with structlog.testing.capture_logs():
        assert cli_data.run(args, tmp_path / "data") == cli_data.OK
        (source / "public-ip-list").unlink()
        assert cli_data.run(args, tmp_path / "data") == cli_data.PARTIAL
        assert cli_data.run(make_parser().parse_args(["data", "update", "--from", str(source), "--provider", "fastly"]), tmp_path / "data") == cli_data.FAILED
    assert "fastly  FAILED" in capsys.readouterr().out
