"""The DNS hosting detector (plugins/dnshosting.py), run directly against the fake DNS server.

Nameservers by name (catalog), unknown nameservers by the ranges of their addresses (always
only indicated), and failed lookups.
"""

from __future__ import annotations

import pytest

from dijkwacht_plugins.dnshosting import DnsHostingDetector

from .detector_helpers import C, I, asked, expect, f, ranges, run_detector


async def scan(dns_server, zone, ip=None, failures=None, domain="ex.nl"):
    server = await dns_server(zone, failures=failures or {})
    return await run_detector(DnsHostingDetector(), server, domain, ip=ip), server


async def test_route53_nameservers_by_name_are_not_resolved(dns_server, shared_ranges):
    run, server = await scan(dns_server, """
ex.nl NS ns-456.awsdns-12.net.
ex.nl NS ns-123.awsdns-45.com.
ns-123.awsdns-45.com A 205.251.192.123
""", shared_ranges)
    assert [(x.provider, x.confidence, x.evidence) for x in run.findings] == [  # in name order
        ("amazon", C, ["NS ns-123.awsdns-45.com"]),
        ("amazon", C, ["NS ns-456.awsdns-12.net"]),
    ]
    assert {x.service for x in run.findings} == {"Amazon Route 53"}
    assert asked(server, "ns-123.awsdns-45.com", "A") == 0
    assert run.failed == []


@pytest.mark.parametrize(
    "ns, found",
    [
        ("ADA.NS.Cloudflare.COM", f("dns", "cloudflare", C, "NS ada.ns.cloudflare.com")),  # names are lowercased
        ("ns1-01.azure-dns.com", f("dns", "microsoft", C, "NS ns1-01.azure-dns.com")),
        ("ns-cloud-a1.googledomains.com", f("dns", "google", C, "NS ns-cloud-a1.googledomains.com")),
        ("ns0.transip.net", f("dns", "transip", C, "NS ns0.transip.net")),
        ("ns1.your-server.de", f("dns", "hetzner", I, "NS ns1.your-server.de")),  # the fact itself is indicated
    ],
)
async def test_nameservers_matched_by_name(dns_server, ns, found):
    run, _ = await scan(dns_server, f"ex.nl NS {ns}.\n")
    assert run.summary == expect(found)


@pytest.mark.parametrize("ns", ["ns-cloud-f1.googledomains.com", "ns1.transip.net.evil.example", "transip.net.example"])
async def test_near_miss_names_are_not_matched(dns_server, ns):
    run, _ = await scan(dns_server, f"ex.nl NS {ns}.\n")
    assert run.findings == []


async def test_own_nameservers_are_classified_by_address_and_only_indicated(dns_server, shared_ranges):
    run, _ = await scan(dns_server, """
ex.nl NS ns1.ex.nl.
ex.nl NS ns2.ex.nl.
ex.nl NS ns3.ex.nl.
ns1.ex.nl A 88.99.1.1
ns1.ex.nl AAAA 2a01:4f8::53
ns2.ex.nl A 185.19.33.53
ns3.ex.nl A 195.230.171.53
""", shared_ranges)
    assert run.summary == expect(
        f("dns", "hetzner", I, "NS ns1.ex.nl 88.99.1.1 (in hetzner IP ranges)"),
        f("dns", "hetzner", I, "NS ns1.ex.nl 2a01:4f8::53 (in hetzner IP ranges)"),
        f("dns", "leaseweb", I, "NS ns2.ex.nl 185.19.33.53 (in leaseweb IP ranges)"),
        f("dns", "ovh", I, "NS ns2.ex.nl 185.19.33.53 (in ovh IP ranges)"),
        # ns3's address is in no range: nothing
    )


async def test_nameserver_addresses_in_cdn_ranges_are_not_dns_hosting(dns_server):
    ip = ranges(("cloudflare", "198.51.100.0/24"), ("transip", "203.0.113.0/24"))
    run, _ = await scan(dns_server, "ex.nl NS ns1.ex.nl.\nns1.ex.nl A 198.51.100.53\nex.nl NS ns2.ex.nl.\nns2.ex.nl A 203.0.113.53\n", ip)
    assert run.summary == expect(f("dns", "transip", I, "NS ns2.ex.nl 203.0.113.53 (in transip IP ranges)"))


async def test_known_and_own_nameservers_together(dns_server, shared_ranges):
    run, server = await scan(dns_server, """
ex.nl NS ada.ns.cloudflare.com.
ex.nl NS ns1.ex.nl.
ns1.ex.nl A 5.161.0.53
ada.ns.cloudflare.com A 173.245.58.1
""", shared_ranges)
    assert run.summary == expect(
        f("dns", "cloudflare", C, "NS ada.ns.cloudflare.com"),
        f("dns", "hetzner", I, "NS ns1.ex.nl 5.161.0.53 (in hetzner IP ranges)"),
    )
    assert asked(server, "ada.ns.cloudflare.com", "A") == 0


async def test_failed_ns_lookup_is_a_failure_not_an_absence(dns_server):
    run, _ = await scan(dns_server, "ex.nl NS ns0.transip.net.\n", failures={("ex.nl", "NS"): "servfail"})
    assert run.findings == []
    assert run.failed == ["NS ex.nl: SERVFAIL"]


async def test_failed_nameserver_address_lookup_is_recorded(dns_server, shared_ranges):
    run, _ = await scan(dns_server, "ex.nl NS ns1.own-dns.example.\nns1.own-dns.example AAAA 2a01:4f8::53\n", shared_ranges,
                        failures={("ns1.own-dns.example", "A"): "timeout"})
    assert run.summary == expect(f("dns", "hetzner", I, "NS ns1.own-dns.example 2a01:4f8::53 (in hetzner IP ranges)"))
    assert run.failed == ["A ns1.own-dns.example: TIMEOUT"]


async def test_a_target_that_does_not_exist_is_a_failure(dns_server):
    run, _ = await scan(dns_server, "other.nl NS ns0.transip.net.\n", domain="gone.nl")
    assert run.findings == []
    assert run.failed == ["NS gone.nl: NXDOMAIN"]


async def test_a_domain_without_ns_records_is_no_failure(dns_server):
    run, _ = await scan(dns_server, 'ex.nl TXT "v=spf1 -all"\n')
    assert (run.findings, run.failed) == ([], [])
