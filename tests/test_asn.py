"""IP-to-AS: the ip2asn parser on small hand-written samples, the lookup, attribution in a scan
(catalog provider by its AS, else the AS's holder, indicated), and `data update` of the table
against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import gzip
import ipaddress
import os
from pathlib import Path

import pytest
import structlog.testing
from aiohttp import web
from aiohttp.test_utils import TestServer

from dijkwacht import asn, cli_data
from dijkwacht.asn import AsTable, load_table, parse_rows, read_table, table_paths, update_table
from dijkwacht.config import AgentSettings
from dijkwacht.errors import ConfigError
from dijkwacht.ipranges import IPRanges, load_ranges
from dijkwacht.runtime import build_runtime, load_data
from dijkwacht.targets import Target

# The ip2asn format: range_start, range_end, AS_number, country_code, AS_description (tabs).
V4 = """\
1.0.0.0\t1.0.0.255\t13335\tUS\tCLOUDFLARENET
1.0.1.0\t1.0.3.255\t0\tNone\tNot routed
80.120.0.0\t80.123.255.255\t8447\tAT\tA1TELEKOM-AT A1 Telekom Austria AG
195.230.160.0\t195.230.175.255\t8339\tAT\tKABELPLUS-AS kabelplus GmbH
195.230.176.0\t195.230.191.255\t8339\tAT\tKABELPLUS-AS kabelplus GmbH
203.0.113.0\t203.0.113.255\t64500\tZZ\tEXAMPLE-AS
"""
V6 = """\
2001:db8::\t2001:db8:ffff:ffff:ffff:ffff:ffff:ffff\t64501\tNL\tDOC-AS Documentation B.V.
2a01:4f8::\t2a01:4f8:ffff:ffff:ffff:ffff:ffff:ffff\t24940\tDE\tHETZNER-AS
"""


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    data = text.encode()
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    return path


@pytest.fixture
def table(tmp_path) -> AsTable:
    write(tmp_path, "ip2asn-combined.tsv.gz", V4 + V6)
    loaded = load_table(tmp_path)
    assert loaded is not None
    return loaded


def test_lookup_at_range_boundaries_and_per_family(table):
    assert table.lookup("80.120.0.0").asn == 8447
    assert table.lookup("80.123.255.255").asn == 8447
    assert table.lookup("80.124.0.0") is None
    info = table.lookup("195.230.171.116")
    assert (info.asn, info.country, info.name) == (8339, "AT", "KABELPLUS-AS kabelplus GmbH")
    assert table.lookup("2a01:4f8::25").asn == 24940
    assert table.lookup("2001:db8::1").country == "NL"
    assert table.lookup("2a02::1") is None
    assert table.lookup("1.0.2.1") is None  # "Not routed" rows are left out
    assert table.lookup("203.0.113.9").country == ""  # ZZ is no country: jurisdiction unknown
    assert table.lookup("not an address") is None
    assert len(table) == 6  # the two adjacent kabelplus ranges are one


def test_unsorted_and_overlapping_rows(tmp_path):
    rows = V4.splitlines()[::-1] + ["80.122.0.0\t80.125.255.255\t64502\tAT\tLATER-AS"]
    table = read_table([write(tmp_path, "ip2asn-v4.tsv", "\n".join(rows) + "\n")])
    assert table.lookup("80.123.0.1").asn == 8447  # the range that starts first keeps the overlap
    assert table.lookup("80.124.0.1").asn == 64502
    assert table.lookup("195.230.180.1").asn == 8339 and table.lookup("1.0.0.1").asn == 13335


def test_per_family_files_plain_or_gzip_and_the_combined_one_wins(tmp_path):
    write(tmp_path, "ip2asn-v4.tsv", V4)
    write(tmp_path, "ip2asn-v6.tsv.gz", V6)
    assert [p.name for p in table_paths(tmp_path)] == ["ip2asn-v4.tsv", "ip2asn-v6.tsv.gz"]
    both = load_table(tmp_path)
    assert both.lookup("80.120.1.1").asn == 8447 and both.lookup("2a01:4f8::1").asn == 24940
    write(tmp_path, "ip2asn-combined.tsv", V4)
    assert [p.name for p in table_paths(tmp_path)] == ["ip2asn-combined.tsv"]
    assert load_table(tmp_path / "missing") is None
    (tmp_path / "empty").mkdir()
    assert load_table(tmp_path / "empty") is None


def test_the_parsed_table_is_kept_in_an_index_until_the_table_changes(tmp_path):
    path = write(tmp_path, "ip2asn-combined.tsv.gz", V4 + V6)
    first = load_table(tmp_path)
    index = tmp_path / asn.INDEX
    assert index.is_file()
    again = load_table(tmp_path)
    for address in ("80.120.0.1", "195.230.180.1", "2a01:4f8::25", "1.0.2.1", "203.0.113.9"):
        assert again.lookup(address) == first.lookup(address), address
    assert [(f.rows_v4, f.rows_v6) for f in again.files] == [(5, 2)] and len(again) == len(first)
    path.write_bytes(gzip.compress(V6.encode()))  # a new table: the index no longer matches
    os.utime(path, ns=(1, 1))
    assert load_table(tmp_path).lookup("80.120.0.1") is None
    index.write_bytes(index.read_bytes()[:60])  # a damaged index is parsed around
    assert load_table(tmp_path).lookup("2a01:4f8::1").asn == 24940


def test_an_index_that_cannot_be_written_costs_only_the_parse(tmp_path):
    write(tmp_path, "ip2asn-combined.tsv.gz", V4)
    (tmp_path / asn.INDEX).mkdir()  # in the way, as a read-only directory would be
    with structlog.testing.capture_logs() as logs:
        table = load_table(tmp_path)
    assert table.lookup("80.120.0.1").asn == 8447
    assert [e["event"] for e in logs] == ["asn.index_not_written"]


def test_range_files_list_the_table_so_its_age_is_exported(tmp_path):
    write(tmp_path, "ip2asn-combined.tsv.gz", V4 + V6)
    (tmp_path / "hetzner.txt").write_text("5.161.0.0/16\n")
    ranges = load_ranges(tmp_path)
    assert [(f.provider, f.prefixes_v4, f.prefixes_v6) for f in ranges.files] == [("hetzner", 1, 0), ("ip2asn", 5, 2)]
    assert ranges.origin("80.120.1.1").asn == 8447 and ranges.lookup("80.120.1.1") == ()
    assert IPRanges().origin("80.120.1.1") is None  # no table: no attribution, no error


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("1.0.0.0\t1.0.0.255\t13335\tUS", "expected 5 tab-separated fields"),
        ("1.0.0.x\t1.0.0.255\t13335\tUS\tX", "'1.0.0.x' is not an IP address"),
        ("1.0.0.0\t1.0.0.255\tAS13335\tUS\tX", "AS number 'AS13335' is not a number"),
        ("1.0.0.0\t2001:db8::\t13335\tUS\tX", "is not a range of one family"),
        ("1.0.0.9\t1.0.0.1\t13335\tUS\tX", "is not a range of one family"),
    ],
)
def test_bad_rows_name_file_and_line(tmp_path, row, message):
    path = write(tmp_path, "ip2asn-v4.tsv", V4 + row + "\n")
    with pytest.raises(ConfigError) as info:
        read_table([path])
    assert str(info.value).startswith(f"{path}:7: ") and message in str(info.value)


def test_a_broken_gzip_file_is_a_one_line_error(tmp_path):
    path = tmp_path / "ip2asn-combined.tsv.gz"
    path.write_bytes(gzip.compress(V4.encode())[:40])
    with pytest.raises(ConfigError, match="cannot read the IP-to-AS table"):
        load_table(tmp_path)


def test_parse_rows_yields_integers_and_normalised_countries():
    [row] = parse_rows(["2001:db8::\t2001:db8::ff\t64501\tnl\tDOC-AS\r\n"], "sample")
    assert row == (6, int(ipaddress.ip_address("2001:db8::")), int(ipaddress.ip_address("2001:db8::ff")), 64501, "NL", "DOC-AS")


# --- attribution in a scan ----------------------------------------------------------------------

ZONE = """
gemeente.at MX 10 mail.gemeente.at.
mail.gemeente.at AAAA 2001:db8::25
gemeente.at A 195.230.171.117
www.gemeente.at A 203.0.113.9
gemeente.at NS ns1.provider-a1.at.
ns1.provider-a1.at A 80.120.1.2
stadt.at MX 10 mail.stadt.at.
mail.stadt.at A 80.120.1.1
stadt.at A 5.161.0.10
stadt.at NS ns.nowhere.example.
ns.nowhere.example A 198.51.100.1
"""


async def scan(dns_server, ranges: IPRanges) -> dict:
    server = await dns_server(ZONE)
    agent = AgentSettings(nameservers=(server.address,), dns_timeout=0.4, dns_tries=1)
    data = load_data(agent)
    data.ranges = ranges
    runtime = build_runtime(agent, data, only=["email", "hosting", "dns"])
    try:
        results = [r async for r in runtime.scanner.scan_all([Target("gemeente.at"), Target("stadt.at")])]
    finally:
        await runtime.close()
    return {r.target.domain: {(d.category, d.provider): d for d in r.dependencies} for r in results}


async def test_unclaimed_addresses_are_attributed_through_their_as(dns_server, table):
    hetzner = [("hetzner", ipaddress.ip_network("5.161.0.0/16"))]
    deps = await scan(dns_server, IPRanges(hetzner, asn=table))
    gemeente = deps["gemeente.at"]
    mail = gemeente[("email", "as64501")]  # no catalog provider lists AS64501: its holder
    assert (mail.name, mail.parent, mail.jurisdiction, mail.foreign) == ("AS64501 DOC-AS Documentation B.V.", "DOC-AS Documentation B.V.", "NL", False)
    assert (mail.confidence, mail.role) == ("indicated", "mailbox")
    assert mail.evidence == ("MX 10 mail.gemeente.at 2001:db8::25 (AS64501 DOC-AS Documentation B.V., NL)",)
    site = gemeente[("hosting", "kabelplus")]  # the catalog lists AS8339: the provider, with its owner
    assert (site.jurisdiction, site.parent, site.confidence) == ("AT", "Land Niederösterreich (through EVN AG)", "indicated")
    www = gemeente[("hosting", "as64500")]  # registered with no country code: unknown, never foreign
    assert (www.jurisdiction, www.foreign) == ("", False)
    dns = gemeente[("dns", "a1-telekom")]
    assert (dns.jurisdiction, dns.foreign, dns.confidence) == ("MX", True, "indicated")
    stadt = deps["stadt.at"]
    assert stadt[("email", "a1-telekom")].role == "mailbox"
    assert stadt[("hosting", "hetzner")].confidence == "confirmed"  # a range file claims it: no AS
    assert not [k for k in stadt if k[0] == "dns"]  # an address no AS routes: nothing


async def test_the_scan_works_without_a_table(dns_server):
    deps = await scan(dns_server, IPRanges())
    assert deps == {"gemeente.at": {}, "stadt.at": {}}


# --- data update --------------------------------------------------------------------------------


@pytest.fixture
async def http():
    routes: dict[str, tuple[int, bytes]] = {}

    async def handle(request: web.Request) -> web.Response:
        status, body = routes.get(request.path, (404, b""))
        return web.Response(status=status, body=body)

    app = web.Application()
    app.router.add_get("/{path:.*}", handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield routes, lambda path: str(server.make_url(path))
    await server.close()


async def test_update_writes_a_loadable_table(http, tmp_path):
    routes, url = http
    routes["/t.gz"] = (200, gzip.compress((V4 + V6).encode()))
    result = await update_table(tmp_path, url=url("/t.gz"))
    assert (result.ok, result.prefixes_v4, result.prefixes_v6, result.path) == (True, 5, 2, tmp_path / "ip2asn-combined.tsv.gz")
    assert load_table(tmp_path).lookup("80.120.0.1").asn == 8447
    routes["/plain"] = (200, V4.encode())  # an uncompressed table is stored compressed
    assert (await update_table(tmp_path, url=url("/plain"))).ok
    assert gzip.decompress((tmp_path / "ip2asn-combined.tsv.gz").read_bytes()).decode() == V4


@pytest.mark.parametrize(
    ("route", "reason"),
    [
        ((500, b""), "HTTP 500"),
        ((200, gzip.compress(b"1.0.0.0\tbroken\n")), "line 1: expected 5 tab-separated fields"),
        ((200, gzip.compress(b"1.0.1.0\t1.0.3.255\t0\tNone\tNot routed\n")), "the table has no routed ranges"),
        ((200, b"\x1f\x8b\x08\x00garbage"), "not a gzip file"),
    ],
    ids=["http-error", "malformed", "empty", "broken-gzip"],
)
async def test_a_failed_update_keeps_the_old_table(http, tmp_path, route, reason):
    routes, url = http
    old = write(tmp_path, "ip2asn-combined.tsv.gz", V4 + V6).read_bytes()
    routes["/t"] = route
    with structlog.testing.capture_logs() as logs:
        result = await update_table(tmp_path, url=url("/t"))
    assert not result.ok and reason in result.error
    assert [e["event"] for e in logs] == ["feed.failed"]
    assert (tmp_path / "ip2asn-combined.tsv.gz").read_bytes() == old


async def test_a_shrunken_table_is_refused_unless_forced(http, tmp_path):
    routes, url = http
    write(tmp_path, "ip2asn-combined.tsv.gz", V4 + V6)
    routes["/small"] = (200, gzip.compress(V6.encode()))  # 2 rows instead of 8
    refused = await update_table(tmp_path, url=url("/small"))
    assert not refused.ok and "fewer than half" in refused.error
    assert load_table(tmp_path).lookup("80.120.0.1") is not None
    assert (await update_table(tmp_path, url=url("/small"), force=True)).ok
    assert load_table(tmp_path).lookup("80.120.0.1") is None


async def test_cli_updates_the_table_as_feed_ip2asn(http, tmp_path, monkeypatch, capsys):
    routes, url = http
    routes["/ip2asn-combined.tsv.gz"] = (200, gzip.compress((V4 + V6).encode()))
    monkeypatch.setattr(asn, "URL", url("/ip2asn-combined.tsv.gz"))
    parser = cli_data.argparse.ArgumentParser(prog="dijkwacht")
    cli_data.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["data", "update", "--provider", "ip2asn"])
    with structlog.testing.capture_logs():
        code = await asyncio.to_thread(cli_data.run, args, tmp_path)
    assert code == 0
    assert capsys.readouterr().out == f"ip2asn  ok  5 IPv4  2 IPv6  {tmp_path / 'ip2asn-combined.tsv.gz'}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [asn.INDEX, "ip2asn-combined.tsv.gz"]  # no range feed was asked


def test_an_air_gapped_site_imports_the_table_from_a_directory(tmp_path, capsys):
    source = tmp_path / "downloads"
    source.mkdir()
    write(source, "ip2asn-combined.tsv.gz", V4 + V6)
    data = tmp_path / "data"
    parser = cli_data.argparse.ArgumentParser(prog="dijkwacht")
    cli_data.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["data", "update", "--provider", "ip2asn", "--from", str(source)])
    with structlog.testing.capture_logs() as logs:
        assert cli_data.run(args, data) == cli_data.OK
    assert [e["event"] for e in logs] == ["feed.imported"]
    assert capsys.readouterr().out == f"ip2asn  ok  5 IPv4  2 IPv6  {data / 'ip2asn-combined.tsv.gz'}\n"
    assert load_table(data).lookup("80.120.0.1").asn == 8447
    (source / "ip2asn-combined.tsv.gz").unlink()
    with structlog.testing.capture_logs():
        assert cli_data.run(args, data) == cli_data.FAILED
    assert "ip2asn  FAILED" in capsys.readouterr().out and load_table(data) is not None  # the old table stays
