"""The email detector (plugins/email.py), run directly against the fake DNS server.

MX hosts by name and by address, null MX, gateways, SPF-derived findings, DKIM selectors,
autodiscover, verification tokens as corroboration only, the detector's settings and the
lookups it must record as failed. (The SPF walker itself is tested in test_plugin_spf.py.)
"""

from __future__ import annotations

import pytest

from dijkwacht_plugins.email import EmailDetector

from .detector_helpers import C, I, asked, catalog, expect, f, ranges, run_detector

MS_MX = "ex-nl.mail.protection.outlook.com"
ONMICROSOFT = "selector1-ex-nl._domainkey.extenant.onmicrosoft.com"


async def scan(dns_server, zone, ip=None, failures=None, domain="ex.nl", **settings):
    server = await dns_server(zone, failures=failures or {})
    run = await run_detector(EmailDetector(settings), server, domain, ip=ip)
    return run, server


# ---- MX ------------------------------------------------------------------------------------


async def test_multiple_mx_are_matched_in_priority_order(dns_server, shared_ranges):
    run, server = await scan(dns_server, f"""
ex.nl MX 30 mail.ex.nl.
ex.nl MX 10 {MS_MX}.
ex.nl MX 20 mx0b-001.pphosted.com.
ex.nl MX 20 mx0a-001.pphosted.com.
mail.ex.nl A 5.161.0.10
""", ip=shared_ranges)
    assert [(x.category, x.provider, x.confidence, x.evidence) for x in run.findings] == [
        ("email", "microsoft", C, [f"MX 10 {MS_MX}"]),
        ("email", "proofpoint", C, ["MX 20 mx0a-001.pphosted.com"]),
        ("email", "proofpoint", C, ["MX 20 mx0b-001.pphosted.com"]),
        ("email", "hetzner", C, ["MX 30 mail.ex.nl 5.161.0.10 (in hetzner IP ranges)"]),
    ]
    assert run.findings[0].service == "Exchange Online"
    # hosts the catalog recognises are not resolved; the unknown one is
    assert asked(server, MS_MX, "A") == asked(server, "mx0a-001.pphosted.com", "A") == 0
    assert asked(server, "mail.ex.nl", "A") == asked(server, "mail.ex.nl", "AAAA") == 1
    assert run.failed == []


async def test_null_mx_means_no_mail_and_nothing_is_resolved(dns_server, shared_ranges):
    run, server = await scan(dns_server, 'ex.nl MX 0 .\nex.nl TXT "v=spf1 -all"\n', ip=shared_ranges)
    assert run.findings == []
    assert not [key for key in server.asked if key[1] in ("A", "AAAA")]
    assert run.failed == []


@pytest.mark.parametrize(
    "records, found",
    [
        (["A 5.161.0.10"], [f("email", "hetzner", C, "MX 10 mail.ex.nl 5.161.0.10 (in hetzner IP ranges)")]),
        (["AAAA 2a01:4f8::25"], [f("email", "hetzner", C, "MX 10 mail.ex.nl 2a01:4f8::25 (in hetzner IP ranges)")]),
        (
            ["A 5.181.42.10", "AAAA 2001:41d0::25"],
            [
                f("email", "leaseweb", C, "MX 10 mail.ex.nl 5.181.42.10 (in leaseweb IP ranges)"),
                f("email", "ovh", C, "MX 10 mail.ex.nl 2001:41d0::25 (in ovh IP ranges)"),
            ],
        ),
        (
            ["A 185.19.33.10"],  # a /24 that Leaseweb and OVH both announce: both, as indicated
            [
                f("email", "leaseweb", I, "MX 10 mail.ex.nl 185.19.33.10 (in leaseweb IP ranges)"),
                f("email", "ovh", I, "MX 10 mail.ex.nl 185.19.33.10 (in ovh IP ranges)"),
            ],
        ),
        (["A 195.230.171.116"], []),  # no range file knows it: nothing claimed
        (["A 104.24.0.1"], []),  # Cloudflare's ranges are CDN edges, not mail hosting
    ],
    ids=["v4", "v6", "v4-and-v6", "tie", "unknown", "cdn-range"],
)
async def test_unknown_mx_host_is_classified_by_its_addresses(dns_server, shared_ranges, records, found):
    zone = "ex.nl MX 10 mail.ex.nl.\n" + "".join(f"mail.ex.nl {r}\n" for r in records)
    run, _ = await scan(dns_server, zone, ip=shared_ranges)
    assert run.summary == expect(*found)


async def test_ipv6_tie_between_two_providers_indicates_both(dns_server):
    ip = ranges(("ovh", "2001:db8::/32"), ("leaseweb", "2001:db8:25::/48"), ("hetzner", "2001:db8:25::/48"))
    run, _ = await scan(dns_server, "ex.nl MX 10 mail.ex.nl.\nmail.ex.nl AAAA 2001:db8:25::1\nex.nl MX 20 mx2.ex.nl.\nmx2.ex.nl AAAA 2001:db8:1::1\n", ip=ip)
    assert run.summary == expect(
        f("email", "hetzner", I, "MX 10 mail.ex.nl 2001:db8:25::1 (in hetzner IP ranges)"),
        f("email", "leaseweb", I, "MX 10 mail.ex.nl 2001:db8:25::1 (in leaseweb IP ranges)"),
        # outside the shared /48 the enclosing /32 alone owns the address
        f("email", "ovh", C, "MX 20 mx2.ex.nl 2001:db8:1::1 (in ovh IP ranges)"),
    )


async def test_gateway_in_front_of_a_mailbox_provider_reports_both(dns_server, shared_ranges):
    run, _ = await scan(dns_server, f"""
ex.nl MX 10 mx0a-001.pphosted.com.
ex.nl TXT "v=spf1 include:spf.protection.outlook.com -all"
selector1._domainkey.ex.nl CNAME {ONMICROSOFT}.
""", ip=shared_ranges)
    assert run.summary == expect(
        f("email", "proofpoint", C, "MX 10 mx0a-001.pphosted.com"),
        f("email", "microsoft", I, "SPF include:spf.protection.outlook.com"),
        f("email", "microsoft", I, f"DKIM selector1._domainkey CNAME {ONMICROSOFT}"),
    )


# ---- SPF -------------------------------------------------------------------------------------


async def test_spf_includes_and_networks_become_indicated_findings(dns_server, shared_ranges):
    run, server = await scan(dns_server, """
ex.nl TXT "v=spf1 include:spf.protection.outlook.com include:_spf.ex.nl ip4:142.250.0.0/15 ip6:2a01:4f8::/32 ip4:195.230.171.0/24 ip4:not-an-address -all"
_spf.ex.nl TXT "v=spf1 include:sendgrid.net ip4:5.181.42.7 -all"
spf.protection.outlook.com TXT "v=spf1 ip4:40.92.0.0/15 -all"
""", ip=shared_ranges)
    assert run.summary == expect(
        f("email", "microsoft", I, "SPF include:spf.protection.outlook.com"),
        f("email", "sendgrid", I, "SPF include:sendgrid.net"),
        f("email", "google", I, "SPF ip4:142.250.0.0/15 (in google IP ranges)"),
        f("email", "hetzner", I, "SPF ip6:2a01:4f8::/32 (in hetzner IP ranges)"),
        f("email", "leaseweb", I, "SPF ip4:5.181.42.7 (in leaseweb IP ranges)"),
    )
    assert asked(server, "spf.protection.outlook.com", "TXT") == 0  # the provider's own record


# ---- DKIM --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cname, found",
    [
        (ONMICROSOFT, [f("email", "microsoft", I, f"DKIM selector1._domainkey CNAME {ONMICROSOFT}")]),
        ("selector1-ex-nl._domainkey.ex.n-v1.dkim.mail.microsoft", [f("email", "microsoft", I, "DKIM selector1._domainkey CNAME selector1-ex-nl._domainkey.ex.n-v1.dkim.mail.microsoft")]),
        ("selector1.dkim.hoster.example", []),
    ],
    ids=["onmicrosoft", "new-format", "unknown"],
)
async def test_dkim_selector_cname_names_the_tenant_provider(dns_server, cname, found):
    run, _ = await scan(dns_server, f"selector1._domainkey.ex.nl CNAME {cname}.\nex.nl TXT \"v=spf1 -all\"\n")
    assert run.summary == expect(*found)


async def test_provider_selectors_are_found_by_txt_and_by_their_cname_chain(dns_server):
    run, _ = await scan(dns_server, """
ex.nl TXT "v=spf1 -all"
google._domainkey.ex.nl TXT "v=DKIM1; k=rsa; p=MIIB"
mte1._domainkey.ex.nl CNAME dkim.mcsv.net.
dkim.mcsv.net TXT "v=DKIM1; k=rsa; p=MIIC"
protonmail._domainkey.ex.nl CNAME protonmail.domainkey.dabc.domains.proton.ch.
protonmail.domainkey.dabc.domains.proton.ch TXT "v=DKIM1; k=rsa; p=MIID"
""")
    assert run.summary == expect(
        f("email", "google", I, "DKIM google._domainkey TXT"),
        # the selector's own fact, and the CNAME target's fact
        f("email", "mailchimp", I, "DKIM mte1._domainkey CNAME dkim.mcsv.net"),
        f("email", "mailchimp", I, "DKIM mte1._domainkey CNAME dkim.mcsv.net"),
        f("email", "proton", I, "DKIM protonmail._domainkey CNAME protonmail.domainkey.dabc.domains.proton.ch"),
        f("email", "proton", C, "DKIM protonmail._domainkey CNAME protonmail.domainkey.dabc.domains.proton.ch"),
    )


async def test_one_selector_per_provider_is_queried(dns_server):
    zone = 'ex.nl TXT "v=spf1 -all"\n' + "".join(f'{s}._domainkey.ex.nl TXT "v=DKIM1; p=X"\n' for s in catalog().dkim_selectors)
    run, server = await scan(dns_server, zone)
    by_provider: dict[str, list[str]] = {}
    for selector, facts in catalog().dkim_selectors.items():
        for provider in {x.provider for x in facts}:
            by_provider.setdefault(provider, []).append(selector)
    queried = {p: [s for s in sels if asked(server, f"{s}._domainkey.ex.nl", "TXT")] for p, sels in by_provider.items()}
    assert queried == {p: sels[:1] for p, sels in by_provider.items()}
    assert asked(server, "hse1._domainkey.ex.nl", "TXT") == 1 and asked(server, "hse2._domainkey.ex.nl", "TXT") == 0
    # each provider is found exactly once, through its first selector
    assert sorted(x.provider for x in run.findings) == sorted(by_provider)
    assert {x.evidence[0] for x in run.findings if x.provider == "hornetsecurity"} == {"DKIM hse1._domainkey TXT"}


async def test_cname_selectors_setting_replaces_the_default(dns_server):
    zone = f"""
ex.nl TXT "v=spf1 -all"
selector1._domainkey.ex.nl CNAME {ONMICROSOFT}.
s1._domainkey.ex.nl CNAME s1-ex-nl._domainkey.other.onmicrosoft.com.
k2._domainkey.ex.nl CNAME abcdef.dkim.amazonses.com.
"""
    run, server = await scan(dns_server, zone, cname_selectors=["s1", "k2"])
    assert run.summary == expect(
        f("email", "microsoft", I, "DKIM s1._domainkey CNAME s1-ex-nl._domainkey.other.onmicrosoft.com"),
        f("email", "amazon", C, "DKIM k2._domainkey CNAME abcdef.dkim.amazonses.com"),
    )
    assert asked(server, "selector1._domainkey.ex.nl", "CNAME") == 0

    run, _ = await scan(dns_server, zone)  # defaults: selector1 only
    assert run.providers == {("email", "microsoft")}
    assert [x.evidence for x in run.findings] == [[f"DKIM selector1._domainkey CNAME {ONMICROSOFT}"]]


async def test_extra_selectors_setting_adds_selectors(dns_server):
    zone = """
ex.nl TXT "v=spf1 -all"
s2048._domainkey.ex.nl CNAME s2048.domainkey.u123.wl.sendgrid.net.
s2048.domainkey.u123.wl.sendgrid.net TXT "v=DKIM1; p=X"
plain._domainkey.ex.nl TXT "v=DKIM1; p=Y"
"""
    run, server = await scan(dns_server, zone)
    assert run.findings == []
    assert asked(server, "s2048._domainkey.ex.nl", "TXT") == 0

    run, server = await scan(dns_server, zone, extra_selectors=["s2048", "plain"])
    assert run.summary == expect(f("email", "sendgrid", C, "DKIM s2048._domainkey CNAME s2048.domainkey.u123.wl.sendgrid.net"))
    assert asked(server, "plain._domainkey.ex.nl", "TXT") == 1  # asked, but a bare key names nobody


async def test_an_extra_selector_the_catalog_knows_keeps_its_provider(dns_server):
    # hse2 is not queried by default (hse1 already covers Hornetsecurity); asked for explicitly,
    # it must still name Hornetsecurity.
    run, _ = await scan(dns_server, 'ex.nl TXT "v=spf1 -all"\nhse2._domainkey.ex.nl TXT "v=DKIM1; p=X"\n', extra_selectors=["hse2"])
    assert run.summary == expect(f("email", "hornetsecurity", I, "DKIM hse2._domainkey TXT"))


# ---- autodiscover ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cname, found",
    [
        ("autodiscover.outlook.com", [f("email", "microsoft", I, "CNAME autodiscover.ex.nl -> autodiscover.outlook.com")]),
        ("autodiscover.mail.eu-west-1.awsapps.com", [f("email", "amazon", I, "CNAME autodiscover.ex.nl -> autodiscover.mail.eu-west-1.awsapps.com")]),
        ("autodiscover.hoster.example", []),
    ],
    ids=["microsoft", "workmail", "unknown"],
)
async def test_autodiscover_cname(dns_server, cname, found):
    run, server = await scan(dns_server, f'autodiscover.ex.nl CNAME {cname}.\nex.nl TXT "v=spf1 -all"\n')
    assert run.summary == expect(*found)
    assert asked(server, cname, "A") == 0  # the first hop names the provider


# ---- verification tokens --------------------------------------------------------------------


async def test_verification_tokens_alone_are_not_a_provider(dns_server):
    run, _ = await scan(dns_server, """
ex.nl TXT "MS=ms12345678"
ex.nl TXT "google-site-verification=abcdefghijklmnop"
ex.nl TXT "protonmail-verification=0123456789abcdef"
ex.nl TXT "v=spf1 -all"
""")
    assert run.findings == []


async def test_verification_tokens_corroborate_providers_found_otherwise(dns_server):
    long_token = "MS=ms" + "1" * 100
    run, _ = await scan(dns_server, f"""
ex.nl MX 10 {MS_MX}.
ex.nl TXT "{long_token}"
ex.nl TXT "google-site-verification=abcdefghijklmnop"
""")
    # the token is added to Microsoft's evidence (cut at 80 characters); Google stays absent
    assert run.summary == expect(f("email", "microsoft", C, f"MX 10 {MS_MX}", "TXT " + long_token[:80]))


async def test_a_token_is_added_once_per_provider(dns_server):
    run, _ = await scan(dns_server, f"""
ex.nl MX 10 {MS_MX}.
ex.nl TXT "v=spf1 include:spf.protection.outlook.com -all"
ex.nl TXT "MS=ms12345678"
""")
    assert len(run.findings) == 2  # MX and SPF
    assert [e for x in run.findings for e in x.evidence if e.startswith("TXT")] == ["TXT MS=ms12345678"]


# ---- tenant records only when MX and SPF leave the picture open ------------------------------

TENANT = f"""
selector1._domainkey.ex.nl CNAME {ONMICROSOFT}.
autodiscover.ex.nl CNAME autodiscover.outlook.com.
"""
TENANT_FINDINGS = [
    f("email", "microsoft", I, f"DKIM selector1._domainkey CNAME {ONMICROSOFT}"),
    f("email", "microsoft", I, "CNAME autodiscover.ex.nl -> autodiscover.outlook.com"),
]


def tenant_queries(server) -> list[tuple[str, str]]:
    return sorted(key for key in server.asked if "_domainkey" in key[0] or key[0].startswith("autodiscover."))


def selector_queries(server) -> list[tuple[str, str]]:
    """Queries for the provider-specific DKIM selectors (not the selector1 tenant CNAME)."""
    return sorted(k for k in server.asked if "_domainkey" in k[0] and not k[0].startswith("selector1."))


async def test_provider_selectors_are_not_asked_when_mx_and_spf_agree(dns_server):
    zone = TENANT + f'ex.nl MX 10 {MS_MX}.\nex.nl TXT "v=spf1 include:spf.protection.outlook.com -all"\n'
    settled = [f("email", "microsoft", C, f"MX 10 {MS_MX}"), f("email", "microsoft", I, "SPF include:spf.protection.outlook.com")]
    run, server = await scan(dns_server, zone)
    # the tenant CNAMEs are always asked; the provider-specific selectors are not
    assert run.summary == expect(*settled, *TENANT_FINDINGS)
    assert ("selector1._domainkey.ex.nl", "CNAME") in tenant_queries(server)
    assert selector_queries(server) == []

    run, server = await scan(dns_server, zone, always_check_tenant=True)
    assert run.summary == expect(*settled, *TENANT_FINDINGS)
    assert ("google._domainkey.ex.nl", "TXT") in selector_queries(server)


async def test_tenant_set_up_before_the_mx_moves_is_seen(dns_server):
    zone = TENANT + 'ex.nl MX 10 mx.transip.email.\nex.nl TXT "v=spf1 include:_spf.transip.email -all"\n'
    run, _ = await scan(dns_server, zone)
    assert run.summary == expect(
        f("email", "transip", C, "MX 10 mx.transip.email"),
        f("email", "transip", I, "SPF include:_spf.transip.email"),
        *TENANT_FINDINGS,
    )


@pytest.mark.parametrize(
    "zone",
    [
        'ex.nl MX 10 mx0a-001.pphosted.com.\nex.nl TXT "v=spf1 include:pphosted.com -all"\n',  # a gateway hides the mailbox
        'ex.nl MX 10 mail.ex.nl.\nmail.ex.nl A 5.161.0.10\nex.nl TXT "v=spf1 ip4:5.161.0.0/16 -all"\n',  # MX known only by address
        f'ex.nl MX 10 {MS_MX}.\nex.nl TXT "v=spf1 include:spf.protection.outlook.com include:sendgrid.net -all"\n',  # SPF names more
        f'ex.nl MX 10 {MS_MX}.\nex.nl TXT "v=spf1 -all"\n',  # SPF names fewer
        'ex.nl TXT "v=spf1 include:spf.protection.outlook.com -all"\n',  # no MX at all
        'ex.nl MX 0 .\n',  # null MX
    ],
    ids=["gateway", "mx-by-address", "spf-more", "spf-fewer", "no-mx", "null-mx"],
)
async def test_tenant_records_are_asked_when_mx_and_spf_leave_it_open(dns_server, shared_ranges, zone):
    run, server = await scan(dns_server, TENANT + zone, ip=shared_ranges)
    assert set(TENANT_FINDINGS) <= set(run.summary)
    assert ("selector1._domainkey.ex.nl", "CNAME") in tenant_queries(server)
    assert ("autodiscover.ex.nl", "CNAME") in tenant_queries(server)


# ---- failed lookups ----------------------------------------------------------------------------


async def test_failed_lookups_are_recorded_and_the_rest_still_found(dns_server, shared_ranges):
    run, _ = await scan(dns_server, """
ex.nl MX 10 mail.ex.nl.
mail.ex.nl AAAA 2a01:4f8::25
ex.nl TXT "v=spf1 include:_spf.ex.nl include:spf.protection.outlook.com -all"
""", ip=shared_ranges, failures={
        ("mail.ex.nl", "A"): "timeout",
        "_spf.ex.nl": "servfail",
        ("google._domainkey.ex.nl", "TXT"): "refused",
        ("autodiscover.ex.nl", "CNAME"): "servfail",
    })
    assert run.summary == expect(
        f("email", "hetzner", C, "MX 10 mail.ex.nl 2a01:4f8::25 (in hetzner IP ranges)"),
        f("email", "microsoft", I, "SPF include:spf.protection.outlook.com"),
    )
    assert sorted(run.failed) == [
        "A mail.ex.nl: TIMEOUT",
        "CNAME autodiscover.ex.nl: SERVFAIL",
        "TXT _spf.ex.nl: SERVFAIL",
        "TXT google._domainkey.ex.nl: REFUSED",
    ]


async def test_a_failed_mx_lookup_is_a_failure_not_an_absence(dns_server):
    run, _ = await scan(dns_server, f"ex.nl MX 10 {MS_MX}.\nex.nl TXT \"v=spf1 -all\"\n", failures={("ex.nl", "MX"): "servfail"})
    assert run.findings == []
    assert run.failed == ["MX ex.nl: SERVFAIL"]


async def test_a_target_that_does_not_exist_is_a_failure_its_absent_names_are_not(dns_server):
    run, _ = await scan(dns_server, "other.nl MX 10 mail.other.nl.", domain="gone.nl")
    assert run.findings == []
    assert set(run.failed) == {"MX gone.nl: NXDOMAIN", "TXT gone.nl: NXDOMAIN"}
    # nothing under the target (selectors, autodiscover) is reported: only the target itself
    assert all(" gone.nl:" in message for message in run.failed)


@pytest.mark.parametrize(
    ("spf", "message"),
    [
        ('ex.nl TXT "v=spf1 include:_a.ex.nl -all"\n_a.ex.nl TXT "v=spf1 include:ex.nl -all"\n', "SPF permerror: SPF loop at ex.nl"),
        ("".join(f'_{i}.ex.nl TXT "v=spf1 include:_{i + 1}.ex.nl -all"\n' for i in range(12)) + 'ex.nl TXT "v=spf1 include:_0.ex.nl -all"\n', "SPF permerror: more than 10 DNS-querying SPF terms"),
    ],
    ids=["loop", "too-many-lookups"],
)
async def test_spf_permerrors_are_reported_with_the_scan_not_as_failures(dns_server, spf, message):
    """A broken SPF policy is the domain's own problem: reported, but the email category is
    still complete (it must not block or fake a move the way a failed lookup would)."""
    from dijkwacht.config import AgentSettings
    from dijkwacht.runtime import build_runtime, load_data
    from dijkwacht.targets import Target

    server = await dns_server(f"ex.nl MX 10 {MS_MX}.\n" + spf)
    settings = AgentSettings(nameservers=(server.address,), dns_timeout=0.4, dns_tries=1)
    runtime = build_runtime(settings, load_data(settings), only=("email",))
    try:
        result = await runtime.scanner.scan(Target("ex.nl"))
    finally:
        await runtime.close()
    assert result.errors == [] and "email" not in result.incomplete
    assert [(w.detector, w.message) for w in result.warnings] == [("email", message)]
    assert result.to_json()["warnings"] == [{"detector": "email", "message": message}]
    assert ("email", "microsoft") in {(d.category, d.provider) for d in result.dependencies}
