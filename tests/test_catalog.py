"""The provider catalog: schema validation with locations, dated ownership, matchers, coverage."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from dijkwacht.catalog import EEA, EU, STATUSES, HostMatcher, Fact, expand_home, load_catalog
from dijkwacht.errors import ConfigError

from .conftest import IP_RANGES, shared


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


def test_every_range_file_provider_is_in_the_catalog(catalog):
    ids = {p.stem for p in shared(IP_RANGES).glob("*.txt")}
    assert ids and ids <= set(catalog.providers)


def test_every_fact_and_ownership_record_has_a_public_source(catalog):
    for provider in catalog.providers.values():
        assert provider.source.startswith("https://"), provider.id
        assert re.fullmatch(r"[A-Z]{2}", provider.jurisdiction), provider.id
        for fact in provider.facts:
            assert fact.source.startswith(("https://", "http://")), (provider.id, fact)
        for record in provider.ownership:
            assert record.source.startswith("https://"), (provider.id, record)


def test_every_provider_names_its_top_of_the_chain_how_it_controls_and_a_source(catalog):
    """The ownership rule (docs/catalog.md) applied to every provider: a parent, its
    jurisdiction, how it controls the operator, and where that can be read."""
    assert len(catalog.providers) >= 124  # 64 before the coverage work, 60 or more added
    for provider in catalog.providers.values():
        assert provider.parent.strip() and provider.operator.strip(), provider.id
        assert re.fullmatch(r"[A-Z]{2}", provider.jurisdiction), provider.id
        assert len(provider.control.split()) >= 3, (provider.id, provider.control)
        assert provider.source.startswith("https://"), provider.id
        for record in provider.ownership:
            assert isinstance(record.effective, dt.date) and record.status in STATUSES, (provider.id, record)
            assert record.parent.strip() and re.fullmatch(r"[A-Z]{2}", record.jurisdiction), (provider.id, record)


# Words a sentence cannot end on: a text that ends in one was cut off ("... its sole owner since").
DANGLING = frozenset("a an and as at because but by for from in into its of on or since than that the their to under until whose which with".split())


def test_ownership_texts_are_whole_sentences(catalog):
    for provider in catalog.providers.values():
        texts = [("control", provider.control), ("note", provider.note), *(("ownership note", r.note) for r in provider.ownership)]
        for key, text in texts:
            if text:
                last = re.sub(r"[^\w-]", "", text.split()[-1])  # "AT", the country, may end one
                assert last not in DANGLING, (provider.id, key, text)


def test_unverified_ownership_is_data_not_prose(catalog):
    """Where the owners above the operator (or group) are not known, the provider says so with
    `verified = false`, not only in words: the catalog command and the reports list it."""
    unverified = {p.id for p in catalog.providers.values() if not p.verified}
    assert {"gandi", "yourhosting", "argeweb", "one-com", "easyname", "hostnet", "whereby"} <= unverified
    assert not unverified & {"microsoft", "transip", "solvinity", "a1-telekom", "zivver", "hetzner"}
    for provider in catalog.providers.values():
        assert "taken as the top" not in provider.control, provider.id  # the flag says it
        words = "not verified" in provider.control or ("ownership" in provider.note.lower() and "not verified" in provider.note)
        if words:  # the words and the flag agree
            assert not provider.verified, provider.id


def test_the_rule_cases_of_the_audit(catalog):
    today = dt.date(2026, 12, 1)
    # private-equity owners are the parent, by their manager's domicile, for everyone alike
    assert {pid: catalog.owner(pid, today).jurisdiction for pid in ("sophos", "proofpoint", "barracuda", "mimecast", "transip", "combell")} == {
        "sophos": "US", "proofpoint": "US", "barracuda": "US", "mimecast": "GB", "transip": "GB", "combell": "GB"}
    assert "largest single investor" in catalog.providers["transip"].control
    assert catalog.owner("solvinity", today).jurisdiction == "GB"
    assert "56.55 %" in catalog.providers["a1-telekom"].control
    assert "Enschede" in catalog.providers["antagonist"].note
    assert {catalog.providers[p].parent for p in ("yourhosting", "argeweb", "gandi")} == {"Your.Online"}
    assert {catalog.providers[p].group for p in ("transip", "combell", "byte", "vevida")} == {"team.blue NV (BE)"}


def test_dated_ownership(catalog):
    zivver = catalog.providers["zivver"]
    assert zivver.jurisdiction == "NL"
    assert zivver.owner_on(dt.date(2025, 1, 1)).jurisdiction == "NL"
    now = zivver.owner_on(dt.date(2026, 1, 1))
    assert now.jurisdiction == "US" and "Kiteworks" in now.parent and now.since is not None
    solvinity = catalog.providers["solvinity"]
    assert {r.status for r in solvinity.ownership} >= {"announced", "prohibited"}
    assert solvinity.owner_on(dt.date(2026, 11, 25)).jurisdiction == "GB"  # British owners; the Kyndryl deal was blocked
    assert catalog.owner("hornetsecurity", dt.date(2026, 6, 1)).jurisdiction == "US"


def test_home_expansion():
    assert expand_home(["EU"]) == EU and len(EU) == 27
    assert expand_home(["eea"]) == EEA and {"NO", "IS", "LI"} <= EEA
    assert expand_home(["NL", "ch"]) == {"NL", "CH"}
    with pytest.raises(ValueError):
        expand_home(["Europe"])


def test_host_matching_is_on_label_boundaries():
    facts = [
        Fact("a", "mx", "email", "outlook.com", "s"),
        Fact("b", "mx", "email", "inbound-smtp.*.amazonaws.com", "s"),
        Fact("c", "ns", "dns", r"re:^ns-\d+\.awsdns-\d+\.(com|net)$", "s"),
    ]
    matcher = HostMatcher(facts)
    assert [f.provider for f in matcher.match("x.mail.protection.OUTLOOK.com.")] == ["a"]
    assert matcher.match("outlook.com")[0].provider == "a"
    assert matcher.match("myoutlook.com") == []
    assert [f.provider for f in matcher.match("inbound-smtp.eu-west-1.amazonaws.com")] == ["b"]
    assert matcher.match("inbound-smtp.a.b.amazonaws.com") == []
    assert [f.provider for f in matcher.match("ns-12.awsdns-34.net")] == ["c"]


@pytest.mark.parametrize(
    ("kind", "name", "category", "provider"),
    [
        ("mx", "example-nl.mail.protection.outlook.com", "email", "microsoft"),
        ("mx", "example-nl.r-v1.mx.microsoft", "email", "microsoft"),
        ("mx", "aspmx.l.google.com", "email", "google"),
        ("mx", "mx0a-001234.pphosted.com", "email", "proofpoint"),
        ("mx", "mx1.hc123-45.iphmx.com", "email", "cisco"),
        ("spf", "spf.protection.outlook.com", "email", "microsoft"),
        ("cname", "autodiscover.outlook.com", "email", "microsoft"),
        ("cname", "webdir.online.lync.com", "video", "microsoft"),
        ("cname", "x.cdn.cloudflare.net", "cdn", "cloudflare"),
        ("cname", "e1.a.akamaiedge.net", "cdn", "akamai"),
        ("cname", "d1.cloudfront.net", "cdn", "amazon"),
        ("cname", "app.azurewebsites.net", "hosting", "microsoft"),
        ("ns", "ns-1.awsdns-01.org", "dns", "amazon"),
        ("ns", "ns1-01.azure-dns.com", "dns", "microsoft"),
        ("ns", "ada.ns.cloudflare.com", "dns", "cloudflare"),
        ("ptr", "static.1.2.3.4.clients.your-server.de", "hosting", "hetzner"),
        ("mx", "smtp.asp-bgld.at", "email", "asp-burgenland"),
        ("mx", "mx1.bon.at", "email", "a1-telekom"),
        ("mx", "smx01.a1.net", "email", "a1-telekom"),
        ("spf", "mxs.post.at", "email", "post-at"),
        ("spf", "spf.ess.de.barracudanetworks.com", "email", "barracuda"),
        ("spf", "spf.tmes.trendmicro.eu", "email", "trendmicro"),
        ("mx", "mx19a.antispameurope.com", "email", "hornetsecurity"),
        ("spf", "_spf.hier-im-netz.de", "email", "deutsche-telekom"),
        ("ns", "ns1.first-ns.de", "dns", "hetzner"),
        ("ns", "ns-123-a.gandi.net", "dns", "gandi"),
        ("mx", "mailstore1.secureserver.net", "email", "godaddy"),
        ("ns", "ns01.domaincontrol.com", "dns", "godaddy"),
        ("mx", "mx.surfmailfilter.nl", "email", "surf"),
        ("mx", "mxlbpu.ispgateway.de", "email", "domainfactory"),
        ("mx", "w00e5cf7.kasserver.com", "email", "all-inkl"),
        ("spf", "spf-de.emailsignatures365.com", "email", "codetwo"),
        ("spf", "spf.mailjet.com", "email", "mailjet"),
        ("cname", "x.kxcdn.com", "cdn", "keycdn"),
        ("cname", "x.llnwd.net", "cdn", "edgio"),
        ("ns", "ns1.desec.io", "dns", "desec"),
    ],
)
def test_well_known_fingerprints(catalog, kind, name, category, provider):
    assert provider in {f.provider for f in catalog.match_host(kind, name, category)}


def test_txt_and_header_fingerprints(catalog):
    assert {f.provider for f in catalog.match_txt("ZOOM_verify_abc", "video")} == {"zoom"}
    assert {f.provider for f in catalog.match_txt("MS=ms1234", "verification")} == {"microsoft"}
    assert catalog.match_txt("MS=ms1234", "email") == []  # a token is never a mail provider
    found = {f.provider for f, _ in catalog.match_headers({"CF-RAY": "8a1b-AMS", "Server": "cloudflare"})}
    assert found == {"cloudflare"}


def write(tmp_path, text):
    path = tmp_path / "extra.toml"
    path.write_text(text)
    return path


def test_user_file_extends_and_overrides(tmp_path):
    path = write(tmp_path, """
[providers.transip]
jurisdiction = "GB"
parent = "Hg"
[[providers.transip.facts]]
kind = "mx"
category = "email"
value = "mail.transip-custom.example"
source = "https://intranet.example/transip"

[providers.gemeente-it]
name = "Gemeentelijke ICT"
jurisdiction = "NL"
source = "https://intranet.example"
""")
    catalog = load_catalog([path])
    assert catalog.providers["transip"].jurisdiction == "GB"
    assert catalog.providers["transip"].name  # kept from the built-in file
    assert catalog.match_host("mx", "mail.transip-custom.example", "email")[0].provider == "transip"
    assert catalog.providers["gemeente-it"].jurisdiction == "NL"
    assert catalog.providers["gemeente-it"].verified and not catalog.providers["hostnet"].verified
    # a later file can record what it verified (scalar keys override)
    verified = write(tmp_path, '[providers.hostnet]\nverified = true\nparent = "Hostnet Holding"\n')
    assert load_catalog([verified]).providers["hostnet"].verified


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[providers.Bad_Id]\nname = "x"\n', "line 1: providers.Bad_Id: provider id must be a lowercase slug"),
        ('[providers.as8447]\nname = "x"\n', "line 1: providers.as8447: ids as<number> are reserved for AS organisations"),
        ('[providers.x]\nname = "x"\njurisdiction = "USA"\nsource = "https://x"\n', "line 3: providers.x.jurisdiction: 'USA' is not an ISO"),
        ('[providers.x]\nname = "x"\njurisdiction = "US"\nsource = "https://x"\ncolour = "red"\n', "line 5: providers.x.colour: unknown key"),
        ('[providers.x]\nname = "x"\nsource = "https://x"\n', "lacks required key 'jurisdiction'"),
        ('[providers.x]\nname = "x"\njurisdiction = "US"\nsource = "https://x"\n[[providers.x.facts]]\nkind = "smtp"\ncategory = "email"\nvalue = "a"\nsource = "s"\n', "line 6: providers.x.facts.kind: 'smtp' is not one of"),
        ('[providers.x]\nname = "x"\njurisdiction = "US"\nsource = "https://x"\n[[providers.x.facts]]\nkind = "mx"\ncategory = "email"\nvalue = "a"\n', "providers.x.facts.source: is required"),
        ('[providers.x]\nname = "x"\njurisdiction = "US"\nsource = "https://x"\n[[providers.x.facts]]\nkind = "txt"\ncategory = "video"\nvalue = "^(unclosed"\nsource = "s"\n', "line 8: providers.x.facts.value: invalid regular expression"),
        ('[providers.x]\nname = "x"\njurisdiction = "US"\nsource = "https://x"\n[[providers.x.ownership]]\nparent = "P"\njurisdiction = "US"\nstatus = "rumoured"\neffective = 2025-01-01\nsource = "s"\n', "line 8: providers.x.ownership.status: must be one of"),
        ('[providers.x]\nname = "x"\njurisdiction = "US"\nsource = "https://x"\n[[providers.x.ownership]]\nparent = "P"\njurisdiction = "US"\nstatus = "completed"\neffective = "soon"\nsource = "s"\n', "line 9: providers.x.ownership.effective: must be a TOML date"),
        ('[providers.x]\nname = "x"\njurisdiction = "US"\nsource = "https://x"\nmail_gateway = "yes"\n', "line 5: providers.x.mail_gateway: must be true or false"),
        ('[providers.x]\nname = "x"\njurisdiction = "US"\nsource = "https://x"\nverified = "no"\n', "line 5: providers.x.verified: must be true or false"),
        ("[providers.x\n", "invalid TOML"),
    ],
)
def test_bad_catalog_files_name_file_line_and_key(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_catalog([path])
    expected = message
    line = re.match(r"line (\d+): (.*)", message)
    if line:
        expected = f"{path}:{line.group(1)}: {line.group(2)}"
    assert expected in str(info.value)


@pytest.mark.parametrize(("content", "message"), [
    (b"\xff\xfe[providers.x]\n", "not valid UTF-8 (byte 1)"),
    (b"a = " + b"[" * 5000 + b"]" * 5000, "nested too deeply"),
    (None, "cannot read catalog: embedded null byte"),
])
def test_catalog_files_nobody_can_read_are_one_line_errors(tmp_path, content, message):
    """Not a traceback (exit 70) from every command: an operator's file is a config error, a
    plugin's file fails that plugin only (pluginhost turns the error into its PluginError)."""
    path = tmp_path / "a\0b.toml" if content is None else tmp_path / "bad.toml"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_catalog([path])


def test_fact_roles_and_asn_values_are_validated(tmp_path):
    head = '[providers.x]\nname = "x"\njurisdiction = "US"\nsource = "https://x"\n[[providers.x.facts]]\n'
    path = write(tmp_path, head + 'kind = "spf"\ncategory = "email"\nvalue = "x.example"\nrole = "Sending!"\nsource = "s"\n')
    with pytest.raises(ConfigError, match="providers.x.facts.role: must be a lowercase slug"):
        load_catalog([path])
    path = write(tmp_path, head + 'kind = "asn"\ncategory = "hosting"\nvalue = "AS1136"\nsource = "s"\n')
    with pytest.raises(ConfigError, match="'as1136' is not an AS number"):
        load_catalog([path])
    path = write(tmp_path, head + 'kind = "spf"\ncategory = "email"\nvalue = "x.example"\nrole = "sending"\nsource = "s"\n')
    catalog = load_catalog([path])
    assert [f.role for f in catalog.match_host("spf", "x.example")] == ["sending"]
    assert catalog.default_role("email", "x") == "mailbox" and catalog.default_role("email", "proofpoint") == "gateway"
    assert catalog.default_role("video", "x") == "meeting" and catalog.default_role("identity", "x") == "identity"
