"""The SPF walker (plugins/spf.py) against RFC 7208, on the fake DNS server.

`walk_spf` is called directly with a `known` predicate; what it records (includes, networks,
the lookup count, a permanent error) and which names it asked the server for are exact.
"""

from __future__ import annotations

import pytest

from dijkwacht_plugins.spf import LOOKUP_LIMIT, spf_records, walk_spf

from .detector_helpers import asked, catalog, detector_context, names_asked

LIMIT_ERROR = "more than 10 DNS-querying SPF terms"


async def walk(server, domain="ex.nl", known=()):
    """Walk `domain`'s SPF; `known` is a set of include domains (or a predicate)."""
    predicate = known if callable(known) else set(known).__contains__
    async with detector_context(server, domain) as ctx:
        result = await walk_spf(ctx, domain, predicate)
    return result, [a.describe() for a in ctx.dns.failures]


def spf(record: str) -> str:
    return f'ex.nl TXT "{record}"\n'


# ---- which TXT strings are SPF records (RFC 7208 4.5) ------------------------------------


def test_spf_records_selects_v_spf1_case_insensitively_and_nothing_else():
    texts = [
        "v=spf1 -all",
        "V=SPF1 include:a.example ~all",
        "v=spf1",
        "v=spf10 -all",  # another version, not SPF
        "v=spf1x",
        "v=spf1\t-all",  # the version must be followed by a space or end the record
        " v=spf1 -all",
        "spf2.0/pra include:a.example",
        "MS=ms12345",
        "",
    ]
    assert spf_records(texts) == ["v=spf1 -all", "V=SPF1 include:a.example ~all", "v=spf1"]


async def test_the_one_spf_record_among_other_txt_strings_is_walked(dns_server):
    server = await dns_server(
        'ex.nl TXT "MS=ms12345"\n'
        'ex.nl TXT "v=spf10 include:_ten.ex.nl"\n'
        + spf("v=spf1 include:_one.ex.nl -all")
    )
    result, failures = await walk(server)
    assert result.includes == [("_one.ex.nl", "include:_one.ex.nl")]
    assert (result.permerror, result.lookups, failures) == ("", 1, [])
    assert asked(server, "_ten.ex.nl", "TXT") == 0


async def test_multiple_spf_records_are_a_permerror_and_neither_is_used(dns_server):
    server = await dns_server(spf("v=spf1 include:_a.ex.nl -all") + spf("V=SPF1 include:_b.ex.nl -all") + 'ex.nl TXT "other"')
    result, _ = await walk(server)
    assert result.permerror == "ex.nl has 2 SPF records"
    assert (result.includes, result.networks, result.lookups) == ([], [], 0)
    assert asked(server, "_a.ex.nl", "TXT") == asked(server, "_b.ex.nl", "TXT") == 0


async def test_multiple_spf_records_in_an_include_stop_the_walk(dns_server):
    server = await dns_server(
        spf("v=spf1 ip4:192.0.2.1 include:_two.ex.nl include:_later.ex.nl ip4:192.0.2.2 -all")
        + '_two.ex.nl TXT "v=spf1 -all"\n_two.ex.nl TXT "v=spf1 ~all"\n'
    )
    result, _ = await walk(server)
    assert result.permerror == "_two.ex.nl has 2 SPF records"
    assert result.includes == [("_two.ex.nl", "include:_two.ex.nl")]
    assert result.networks == [("192.0.2.1", "ip4:192.0.2.1")]
    assert asked(server, "_later.ex.nl", "TXT") == 0


# ---- include and redirect -----------------------------------------------------------------


async def test_include_and_redirect_are_followed_and_their_networks_collected(dns_server):
    server = await dns_server(
        spf("v=spf1 ip4:192.0.2.0/24 include:_spf.ex.nl redirect=_r.ex.nl")
        + '_spf.ex.nl TXT "v=spf1 ip6:2001:db8::/32 ~ip4:198.51.100.7 -ip4:198.51.100.8 -all"\n'
        + '_r.ex.nl TXT "v=spf1 ip4:203.0.113.0/24 -all"\n'
    )
    result, failures = await walk(server)
    assert result.includes == [("_spf.ex.nl", "include:_spf.ex.nl"), ("_r.ex.nl", "redirect=_r.ex.nl")]
    assert result.networks == [
        ("192.0.2.0/24", "ip4:192.0.2.0/24"),
        ("2001:db8::/32", "ip6:2001:db8::/32"),
        ("198.51.100.7", "ip4:198.51.100.7"),  # "~" still lets it send (softfail); "-" does not
        ("203.0.113.0/24", "ip4:203.0.113.0/24"),
    ]
    assert (result.lookups, result.permerror, failures) == (2, "", [])


@pytest.mark.parametrize("all_term", ["-all", "~all", "?all", "+all", "all", "-ALL"])
async def test_redirect_is_ignored_when_the_record_has_an_all(dns_server, all_term):
    # RFC 7208 6.1: "any redirect modifier MUST be ignored if there is an all mechanism".
    server = await dns_server(spf(f"v=spf1 redirect=_r.ex.nl include:_i.ex.nl {all_term}") + '_r.ex.nl TXT "v=spf1 -all"')
    result, _ = await walk(server)
    assert result.includes == [("_i.ex.nl", "include:_i.ex.nl")]
    assert asked(server, "_r.ex.nl", "TXT") == 0
    assert result.lookups == 1  # an ignored redirect queries nothing, so it does not count
    assert result.permerror == ""


async def test_mechanism_names_are_case_insensitive_and_domains_normalised(dns_server):
    server = await dns_server(spf("v=spf1 INCLUDE:_Up.Ex.NL. IP4:192.0.2.1 Redirect=_R.ex.nl"))
    result, _ = await walk(server)
    assert result.includes == [("_up.ex.nl", "include:_Up.Ex.NL."), ("_r.ex.nl", "redirect=_r.ex.nl")]
    assert result.networks == [("192.0.2.1", "ip4:192.0.2.1")]
    assert asked(server, "_up.ex.nl", "TXT") == 1 and asked(server, "_r.ex.nl", "TXT") == 1


async def test_macros_are_not_expanded_nor_followed_but_count(dns_server):
    server = await dns_server(spf("v=spf1 include:%{d}._spf.ex.nl exists:%{i}._e.ex.nl include:_ok.ex.nl redirect=%{d}._r.ex.nl"))
    result, failures = await walk(server)
    assert result.includes == [("_ok.ex.nl", "include:_ok.ex.nl")]
    assert names_asked(server) == {"ex.nl", "_ok.ex.nl"}
    assert (result.lookups, result.permerror, failures) == (4, "", [])


async def test_a_negated_include_is_not_followed_but_counts(dns_server):
    server = await dns_server(spf("v=spf1 -include:_bad.ex.nl ~include:_soft.ex.nl ?include:_neutral.ex.nl +include:_plus.ex.nl -ip4:192.0.2.1 -all"))
    result, _ = await walk(server)
    assert result.includes == [
        ("_soft.ex.nl", "include:_soft.ex.nl"),
        ("_neutral.ex.nl", "include:_neutral.ex.nl"),
        ("_plus.ex.nl", "include:_plus.ex.nl"),
    ]
    assert asked(server, "_bad.ex.nl", "TXT") == 0
    assert result.networks == []  # "-ip4" forbids, it does not authorise
    assert result.lookups == 4  # "-include" is still evaluated by receivers


async def test_missing_include_is_recorded_and_a_failed_one_is_a_lookup_failure(dns_server):
    server = await dns_server(
        spf("v=spf1 include:_gone.ex.nl include:_sf.ex.nl include:_next.ex.nl -all")
        + '_next.ex.nl TXT "v=spf1 ip4:192.0.2.9 -all"',
        failures={"_sf.ex.nl": "servfail"},
    )
    result, failures = await walk(server)
    assert [d for d, _ in result.includes] == ["_gone.ex.nl", "_sf.ex.nl", "_next.ex.nl"]
    assert result.networks == [("192.0.2.9", "ip4:192.0.2.9")]  # the walk went on
    assert failures == ["TXT _sf.ex.nl: SERVFAIL"]  # NXDOMAIN of an include is no failure


# ---- known and unknown includes -----------------------------------------------------------

PROVIDERS = """
spf.protection.outlook.com TXT "v=spf1 ip4:40.92.0.0/15 -all"
_spf.google.com TXT "v=spf1 include:_netblocks.google.com ~all"
_netblocks.google.com TXT "v=spf1 ip4:142.250.0.0/15 ~all"
sendgrid.net TXT "v=spf1 ip4:167.89.0.0/17 ~all"
"""


async def test_nested_unknown_includes_are_followed_known_ones_are_not_descended(dns_server):
    server = await dns_server(
        PROVIDERS
        + spf("v=spf1 include:_spf.ex.nl include:spf.protection.outlook.com -all")
        + '_spf.ex.nl TXT "v=spf1 include:_spf2.ex.nl include:_spf.google.com ~all"\n'
        + '_spf2.ex.nl TXT "v=spf1 ip4:149.210.0.0/16 include:sendgrid.net -all"\n'
    )
    known = lambda d: bool(catalog().match_host("spf", d, "email"))  # noqa: E731 -- as the email detector does
    result, _ = await walk(server, known=known)
    assert result.includes == [
        ("_spf.ex.nl", "include:_spf.ex.nl"),
        ("_spf2.ex.nl", "include:_spf2.ex.nl"),
        ("sendgrid.net", "include:sendgrid.net"),
        ("_spf.google.com", "include:_spf.google.com"),
        ("spf.protection.outlook.com", "include:spf.protection.outlook.com"),
    ]
    assert result.networks == [("149.210.0.0/16", "ip4:149.210.0.0/16")]
    for provider_name in ("spf.protection.outlook.com", "_spf.google.com", "_netblocks.google.com", "sendgrid.net"):
        assert asked(server, provider_name, "TXT") == 0, provider_name
    assert asked(server, "_spf2.ex.nl", "TXT") == 1
    assert result.lookups == 5


# ---- the limit of 10 DNS-querying terms (RFC 7208 4.6.4) ---------------------------------


@pytest.mark.parametrize("term", ["a", "A", "a:mail.ex.nl", "a/24", "mx", "MX", "mx:ex.nl/24", "ptr", "ptr:ex.nl", "exists:x.ex.nl", "include:_n.ex.nl", "~include:_n.ex.nl"])
async def test_each_dns_querying_mechanism_counts_towards_the_limit(dns_server, term):
    # nine "a" plus `term` make ten: allowed; the include after them is the eleventh
    assert LOOKUP_LIMIT == 10
    server = await dns_server(spf("v=spf1 " + "a " * 9 + f"{term} include:_after.ex.nl ip4:192.0.2.1 -all"))
    result, _ = await walk(server)
    assert result.permerror == LIMIT_ERROR
    assert result.lookups == 11
    assert "_after.ex.nl" not in [d for d, _ in result.includes]
    assert asked(server, "_after.ex.nl", "TXT") == 0
    assert result.networks == []  # the walk stopped at the eleventh


@pytest.mark.parametrize("term", ["ip4:192.0.2.1", "ip4:192.0.2.0/24", "ip6:2001:db8::1", "ip6:2001:db8::/48", "?all", "exp=explain.ex.nl", "unknown-modifier=x"])
async def test_ip4_ip6_all_and_other_modifiers_do_not_count(dns_server, term):
    server = await dns_server(spf("v=spf1 " + "a " * 9 + " ".join([term] * 5) + " include:_tenth.ex.nl"))
    result, _ = await walk(server)
    assert (result.permerror, result.lookups) == ("", 10)
    assert result.includes == [("_tenth.ex.nl", "include:_tenth.ex.nl")]
    assert asked(server, "_tenth.ex.nl", "TXT") == 1


async def test_redirect_counts_towards_the_limit(dns_server):
    server = await dns_server(spf("v=spf1 " + "a " * 9 + "redirect=_r.ex.nl"))
    result, _ = await walk(server)
    assert (result.permerror, result.lookups, result.includes) == ("", 10, [("_r.ex.nl", "redirect=_r.ex.nl")])

    server = await dns_server(spf("v=spf1 " + "a " * 10 + "redirect=_r.ex.nl"))
    result, _ = await walk(server)
    assert (result.permerror, result.lookups, result.includes) == (LIMIT_ERROR, 11, [])
    assert asked(server, "_r.ex.nl", "TXT") == 0


async def test_redirect_is_counted_when_it_applies_not_where_it_is_written(dns_server):
    # A redirect is evaluated after every mechanism (RFC 7208 6.1), wherever it is written:
    # the ten includes come first and are all seen; the redirect would be the eleventh.
    includes = " ".join(f"include:_i{n}.ex.nl" for n in range(9))
    server = await dns_server(spf(f"v=spf1 redirect=_r.ex.nl {includes} include:known.example"))
    result, _ = await walk(server, known={"known.example"})
    assert [d for d, _ in result.includes] == [f"_i{n}.ex.nl" for n in range(9)] + ["known.example"]
    assert result.permerror == LIMIT_ERROR
    assert asked(server, "_r.ex.nl", "TXT") == 0

    # With an "all" the redirect is ignored altogether: ten lookups, no error.
    server = await dns_server(spf(f"v=spf1 redirect=_r.ex.nl {includes} include:known.example -all"))
    result, _ = await walk(server, known={"known.example"})
    assert len(result.includes) == 10
    assert (result.permerror, result.lookups) == ("", 10)


async def test_lookups_are_counted_across_nested_includes(dns_server):
    server = await dns_server(
        spf("v=spf1 a mx include:_n1.ex.nl ip4:192.0.2.1 -all")  # 3
        + '_n1.ex.nl TXT "v=spf1 a a a a a a include:_n2.ex.nl -all"\n'  # 3 + 7 = 10
        + '_n2.ex.nl TXT "v=spf1 include:_n3.ex.nl -all"\n'  # 11
        + '_n3.ex.nl TXT "v=spf1 -all"\n'
    )
    result, _ = await walk(server)
    assert result.permerror == LIMIT_ERROR
    assert [d for d, _ in result.includes] == ["_n1.ex.nl", "_n2.ex.nl"]
    assert asked(server, "_n3.ex.nl", "TXT") == 0
    assert result.networks == []  # the root's ip4 after the include is not reached


# ---- loops ---------------------------------------------------------------------------------


async def test_an_include_loop_is_a_permerror_and_cut(dns_server):
    server = await dns_server(
        spf("v=spf1 include:_a.ex.nl -all")
        + '_a.ex.nl TXT "v=spf1 include:_b.ex.nl ip4:192.0.2.1 -all"\n'
        + '_b.ex.nl TXT "v=spf1 ip4:192.0.2.2 include:ex.nl include:_c.ex.nl -all"\n'
    )
    result, _ = await walk(server)
    assert result.permerror == "SPF loop at ex.nl"
    assert [d for d, _ in result.includes] == ["_a.ex.nl", "_b.ex.nl", "ex.nl"]
    assert result.networks == [("192.0.2.2", "ip4:192.0.2.2")]  # what was seen before the loop stays
    assert asked(server, "_c.ex.nl", "TXT") == 0
    assert asked(server, "ex.nl", "TXT") == 1


@pytest.mark.parametrize("record", ["v=spf1 include:ex.nl -all", "v=spf1 redirect=ex.nl", "v=spf1 include:EX.NL. -all"])
async def test_a_record_referring_to_itself_is_a_loop(dns_server, record):
    server = await dns_server(spf(record))
    result, _ = await walk(server)
    assert result.permerror == "SPF loop at ex.nl"
    assert asked(server, "ex.nl", "TXT") == 1


async def test_an_include_reached_twice_without_a_loop_is_no_error(dns_server):
    # A diamond (two includes sharing a third) and a repeated include are not loops:
    # receivers evaluate them twice (and count them twice). Later terms must still be seen.
    server = await dns_server(
        spf("v=spf1 include:_a.ex.nl include:_b.ex.nl include:_a.ex.nl include:known.example -all")
        + '_a.ex.nl TXT "v=spf1 include:_shared.ex.nl -all"\n'
        + '_b.ex.nl TXT "v=spf1 include:_shared.ex.nl -all"\n'
        + '_shared.ex.nl TXT "v=spf1 ip4:192.0.2.0/24 -all"\n'
    )
    result, _ = await walk(server, known={"known.example"})
    assert result.permerror == ""
    assert [d for d, _ in result.includes] == ["_a.ex.nl", "_shared.ex.nl", "_b.ex.nl", "_shared.ex.nl", "_a.ex.nl", "_shared.ex.nl", "known.example"]
    assert result.networks == [("192.0.2.0/24", "ip4:192.0.2.0/24")] * 3
    assert result.lookups == 7
