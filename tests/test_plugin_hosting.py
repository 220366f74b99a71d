"""The hosting detector (plugins/hosting.py), run directly against the fake DNS server.

Addresses classified by the providers' ranges, hosting platforms seen in a CNAME chain, the
PTR fallback (and switching it off), and a CDN-fronted name never claimed as hosting.
"""

from __future__ import annotations

import ipaddress

import pytest

from dijkwacht_plugins.cdn import CdnDetector
from dijkwacht_plugins.hosting import HostingDetector

from .detector_helpers import C, I, asked, expect, f, run_detector


def reverse(address: str) -> str:
    return ipaddress.ip_address(address).reverse_pointer


def ptr_queries(server) -> list[str]:
    return [name for name, qtype in server.asked if qtype == "PTR"]


async def scan(dns_server, zone, ip, failures=None, target_hosts=(), **settings):
    server = await dns_server(zone, failures=failures or {})
    return await run_detector(HostingDetector(settings), server, "ex.nl", ip=ip, hosts=target_hosts), server


# ---- addresses in the providers' ranges ------------------------------------------------------


async def test_apex_and_www_addresses_are_classified_by_ranges(dns_server, shared_ranges):
    run, server = await scan(dns_server, """
ex.nl A 5.161.0.20
ex.nl AAAA 2a01:4f8::80
www.ex.nl A 51.38.0.1
www.ex.nl AAAA 2001:41d0::80
""", shared_ranges)
    assert run.summary == expect(
        f("hosting", "hetzner", C, "A/AAAA ex.nl 5.161.0.20 (in hetzner IP ranges)"),
        f("hosting", "hetzner", C, "A/AAAA ex.nl 2a01:4f8::80 (in hetzner IP ranges)"),
        f("hosting", "ovh", C, "A/AAAA www.ex.nl 51.38.0.1 (in ovh IP ranges)"),
        f("hosting", "ovh", C, "A/AAAA www.ex.nl 2001:41d0::80 (in ovh IP ranges)"),
    )
    assert ptr_queries(server) == []  # known addresses need no PTR
    assert run.failed == []


async def test_www_cname_to_the_apex_is_classified_as_www(dns_server, shared_ranges):
    run, _ = await scan(dns_server, "ex.nl A 5.161.0.20\nwww.ex.nl CNAME ex.nl.\n", shared_ranges)
    assert run.summary == expect(
        f("hosting", "hetzner", C, "A/AAAA ex.nl 5.161.0.20 (in hetzner IP ranges)"),
        f("hosting", "hetzner", C, "A/AAAA www.ex.nl 5.161.0.20 (in hetzner IP ranges)"),
    )


async def test_a_prefix_two_hosters_announce_indicates_both(dns_server, shared_ranges):
    run, _ = await scan(dns_server, "ex.nl A 185.19.33.10\n", shared_ranges)
    assert run.summary == expect(
        f("hosting", "leaseweb", I, "A/AAAA ex.nl 185.19.33.10 (in leaseweb IP ranges)"),
        f("hosting", "ovh", I, "A/AAAA ex.nl 185.19.33.10 (in ovh IP ranges)"),
    )


async def test_a_prefix_shared_with_a_cdn_names_only_the_hoster(dns_server, shared_ranges):
    # GitHub Pages' /22 is in both github.txt and fastly.txt; Fastly is a CDN, not the hoster
    assert shared_ranges.lookup("185.199.108.153") == ("fastly", "github")
    run, _ = await scan(dns_server, "ex.nl A 185.199.108.153\n", shared_ranges)
    assert run.summary == expect(f("hosting", "github", C, "A/AAAA ex.nl 185.199.108.153 (in github IP ranges)"))


# ---- hosting platforms in CNAME chains -------------------------------------------------------


@pytest.mark.parametrize(
    "zone, found",
    [
        (
            "www.ex.nl CNAME contoso-app.azurewebsites.net.\ncontoso-app.azurewebsites.net A 20.50.2.1\n",
            [
                f("hosting", "microsoft", C, "CNAME www.ex.nl -> contoso-app.azurewebsites.net"),
                f("hosting", "microsoft", C, "A/AAAA www.ex.nl 20.50.2.1 (in microsoft IP ranges)"),
            ],
        ),
        (
            "www.ex.nl CNAME ex.netlify.app.\nex.netlify.app A 195.230.171.60\n",
            [f("hosting", "netlify", C, "CNAME www.ex.nl -> ex.netlify.app")],
        ),
        (
            "www.ex.nl CNAME ex-shop.myshopify.com.\nex-shop.myshopify.com CNAME shops.myshopify.com.\nshops.myshopify.com A 195.230.171.61\n",
            [
                f("hosting", "shopify", C, "CNAME www.ex.nl -> ex-shop.myshopify.com"),
                f("hosting", "shopify", C, "CNAME www.ex.nl -> shops.myshopify.com"),
            ],
        ),
        (
            'www.ex.nl CNAME ex.herokudns.com.\nex.herokudns.com TXT "x"\n',  # no address: the CNAME alone
            [f("hosting", "salesforce", C, "CNAME www.ex.nl -> ex.herokudns.com")],
        ),
    ],
    ids=["azure-app-service", "netlify", "shopify-two-hops", "heroku-no-address"],
)
async def test_hosting_platforms_in_the_cname_chain(dns_server, shared_ranges, zone, found):
    run, _ = await scan(dns_server, zone, shared_ranges)
    assert run.summary == expect(*found)


# ---- CDN-fronted names ----------------------------------------------------------------------

FRONTED = """
ex.nl A 104.24.0.1
www.ex.nl CNAME d111111abcdef8.cloudfront.net.
d111111abcdef8.cloudfront.net A 54.230.1.1
shop.ex.nl CNAME shop.ex.nl.cdn.cloudflare.net.
shop.ex.nl.cdn.cloudflare.net A 195.230.171.62
"""


async def test_a_cdn_fronted_site_is_not_claimed_as_hosting(dns_server, shared_ranges):
    # CloudFront's edges are inside amazon.txt (a hosting provider's ranges): without the CNAME
    # check www would be "hosted at Amazon". The apex is on a Cloudflare edge address, and shop
    # is fronted by Cloudflare with an edge address no range knows: no PTR guess either.
    assert shared_ranges.lookup("54.230.1.1") == ("amazon",)
    run, server = await scan(dns_server, FRONTED, shared_ranges, target_hosts=["shop"])
    assert run.findings == []
    assert ptr_queries(server) == []

    # ...while the CDN detector reports the CDNs on the same records
    cdn = await run_detector(CdnDetector(), server, "ex.nl", ip=shared_ranges, hosts=["shop"])
    assert cdn.providers == {("cdn", "amazon"), ("cdn", "cloudflare")}
    assert {x.category for x in cdn.findings} == {"cdn"}


# ---- PTR fallback ------------------------------------------------------------------------------

PTR_ZONE = f"""
ex.nl A 185.12.1.1
{reverse("185.12.1.1")} PTR static.1.1.12.185.clients.your-server.de.
www.ex.nl AAAA 2001:db8::5
{reverse("2001:db8::5")} PTR li5-1.ip.linodeusercontent.com.
"""


async def test_ptr_names_classify_addresses_no_range_knows(dns_server, shared_ranges):
    run, server = await scan(dns_server, PTR_ZONE, shared_ranges)
    assert run.summary == expect(
        f("hosting", "hetzner", I, "PTR 185.12.1.1 (ex.nl) -> static.1.1.12.185.clients.your-server.de"),
        # a catalog fact may say confirmed: a PTR name is only ever an indication
        f("hosting", "linode", I, "PTR 2001:db8::5 (www.ex.nl) -> li5-1.ip.linodeusercontent.com"),
    )
    assert sorted(ptr_queries(server)) == sorted([reverse("185.12.1.1"), reverse("2001:db8::5")])


async def test_ptr_fallback_off_asks_no_ptr(dns_server, shared_ranges):
    run, server = await scan(dns_server, PTR_ZONE, shared_ranges, ptr_fallback=False)
    assert run.findings == []
    assert ptr_queries(server) == []


@pytest.mark.parametrize(
    "ptr",
    ["host-1.customer.isp.example", "a23-72-0-1.deploy.static.akamaitechnologies.com"],  # unknown; a CDN's, not hosting
)
async def test_ptr_names_that_name_no_hoster_are_nothing(dns_server, shared_ranges, ptr):
    run, server = await scan(dns_server, f"ex.nl A 185.12.1.2\n{reverse('185.12.1.2')} PTR {ptr}.\n", shared_ranges)
    assert run.findings == []
    assert ptr_queries(server) == [reverse("185.12.1.2")]


async def test_a_failed_ptr_lookup_is_recorded(dns_server, shared_ranges):
    run, _ = await scan(dns_server, PTR_ZONE, shared_ranges, failures={reverse("185.12.1.1"): "servfail"})
    assert run.providers == {("hosting", "linode")}
    assert run.failed == [f"PTR {reverse('185.12.1.1')}: SERVFAIL"]


# ---- which names are checked ---------------------------------------------------------------


async def test_extra_hosts_from_settings_and_target(dns_server, shared_ranges):
    zone = """
app.ex.nl A 5.161.0.21
portal.ex.nl A 51.38.0.2
login.ex.nl A 31.14.96.10
other.ex.nl A 5.161.0.22
"""
    run, server = await scan(dns_server, zone, shared_ranges, target_hosts=["portal", "LOGIN.ex.nl.", "app"], hosts=["app"])
    assert run.summary == expect(
        f("hosting", "hetzner", C, "A/AAAA app.ex.nl 5.161.0.21 (in hetzner IP ranges)"),
        f("hosting", "ovh", C, "A/AAAA portal.ex.nl 51.38.0.2 (in ovh IP ranges)"),
        f("hosting", "transip", C, "A/AAAA login.ex.nl 31.14.96.10 (in transip IP ranges)"),
    )
    assert asked(server, "app.ex.nl", "A") == 1  # named in the settings and by the target: once
    assert asked(server, "other.ex.nl", "A") == 0  # only the apex, www and the named hosts


async def test_cdn_internal_hops_after_the_edge_are_not_hosting(dns_server):
    """Azure Front Door chains pass through trafficmanager.net: that is the CDN, not a host."""
    from .detector_helpers import run_detector

    zone = (
        "www.ex.nl CNAME ex.azurefd.net.\n"
        "ex.azurefd.net CNAME ex.trafficmanager.net.\n"
        "ex.trafficmanager.net CNAME shed.dual-low.part-0012.t-0009.t-msedge.net.\n"
        "shed.dual-low.part-0012.t-0009.t-msedge.net A 13.107.246.40\n"
    )
    server = await dns_server(zone)
    from dijkwacht_plugins.hosting import HostingDetector

    run = await run_detector(HostingDetector(), server, "ex.nl")
    assert run.findings == []
