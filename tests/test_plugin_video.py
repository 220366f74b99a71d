"""The video detector (plugins/video.py), run directly against the fake DNS server.

Teams by its CNAME and SRV records, Zoom and Webex by verification tokens, Google Meet only
inferred from Google Workspace mail, the settings, and failed lookups.
"""

from __future__ import annotations

import pytest

from dijkwacht_plugins.video import VideoDetector

from .detector_helpers import C, F, I, expect, f, run_detector


async def scan(dns_server, zone, failures=None, **settings):
    server = await dns_server(zone, failures=failures or {})
    return await run_detector(VideoDetector(settings), server, "ex.nl"), server


TEAMS = """
lyncdiscover.ex.nl CNAME webdir.online.lync.com.
sip.ex.nl CNAME sipdir.online.lync.com.
_sip._tls.ex.nl SRV 100 1 443 sipdir.online.lync.com.
_sipfederationtls._tcp.ex.nl SRV 100 1 5061 sipfed.online.lync.com.
webdir.online.lync.com A 52.112.1.1
"""


async def test_teams_is_confirmed_by_its_cnames_and_srv_records(dns_server):
    run, server = await scan(dns_server, TEAMS)
    assert run.summary == expect(
        f("video", "microsoft", C, "CNAME lyncdiscover.ex.nl -> webdir.online.lync.com"),
        f("video", "microsoft", C, "SRV _sipfederationtls._tcp.ex.nl -> sipfed.online.lync.com:5061"),
    )
    assert {x.service for x in run.findings} == {"Microsoft Teams / Skype for Business Online"}
    assert run.failed == []
    # the legacy records would only repeat the provider: not asked once the first pair found it
    assert ("sip.ex.nl", "CNAME") not in server.asked and ("_sip._tls.ex.nl", "SRV") not in server.asked


async def test_legacy_records_are_asked_when_the_first_pair_finds_nothing(dns_server):
    run, _ = await scan(dns_server, "sip.ex.nl CNAME sipdir.online.lync.com.\n_sip._tls.ex.nl SRV 100 1 443 sipdir.online.lync.com.\n")
    assert run.summary == expect(
        f("video", "microsoft", C, "CNAME sip.ex.nl -> sipdir.online.lync.com"),
        f("video", "microsoft", C, "SRV _sip._tls.ex.nl -> sipdir.online.lync.com:443"),
    )


async def test_every_srv_target_is_checked(dns_server):
    run, _ = await scan(dns_server, """
_sip._tls.ex.nl SRV 10 1 5061 sip.ex.nl.
_sip._tls.ex.nl SRV 20 1 443 sipdir.online.lync.com.
""")
    assert run.summary == expect(f("video", "microsoft", C, "SRV _sip._tls.ex.nl -> sipdir.online.lync.com:443"))


async def test_on_premises_lync_is_no_provider(dns_server):
    run, _ = await scan(dns_server, """
lyncdiscover.ex.nl CNAME lync.ex.nl.
sip.ex.nl CNAME lync.ex.nl.
lync.ex.nl A 195.230.171.50
_sip._tls.ex.nl SRV 100 1 443 lync.ex.nl.
_sipfederationtls._tcp.ex.nl SRV 100 1 5061 .
""")
    assert run.findings == []


@pytest.mark.parametrize(
    "token, provider",
    [
        ("ZOOM_verify_abcdefghijklmnop", "zoom"),
        ("zoom-domain-verification=ab12cd34-ef56", "zoom"),
        ("cisco-ci-domain-verification=0123456789abcdef", "cisco-webex"),
        ("webexdomainverification.ABCD=1234-5678", "cisco-webex"),
    ],
)
async def test_verification_tokens_indicate_an_account(dns_server, token, provider):
    run, _ = await scan(dns_server, f'ex.nl TXT "{token}"\nex.nl TXT "v=spf1 -all"\n')
    assert run.summary == expect(f("video", provider, I, f"TXT {token}"))


@pytest.mark.parametrize(
    "text",
    [
        "xZOOM_verify_abc",  # tokens are matched at the start of the string
        "zoom_verify_abc",  # ...and case-sensitively
        "v=spf1 include:zoom.us -all",
        "MS=ms12345678",
    ],
)
async def test_near_miss_tokens_are_nothing(dns_server, text):
    run, _ = await scan(dns_server, f'ex.nl TXT "{text}"\n')
    assert run.findings == []


async def test_long_tokens_are_cut_in_the_evidence(dns_server):
    token = "ZOOM_verify_" + "x" * 100
    run, _ = await scan(dns_server, f'ex.nl TXT "{token}"\n')
    assert run.summary == expect(f("video", "zoom", I, "TXT " + token[:80]))


async def test_webex_sip_srv_is_indicated(dns_server):
    run, _ = await scan(dns_server, "_sip._tls.ex.nl SRV 5 10 5061 ex-nl.call.ciscospark.webex.com.\n")
    assert run.summary == expect(f("video", "cisco-webex", I, "SRV _sip._tls.ex.nl -> ex-nl.call.ciscospark.webex.com:5061"))


@pytest.mark.parametrize("mx", ["aspmx.l.google.com", "smtp.google.com"])
async def test_meet_is_inferred_from_google_workspace_mail(dns_server, mx):
    run, _ = await scan(dns_server, f"ex.nl MX 1 {mx}.\nex.nl MX 5 alt1.aspmx.l.google.com.\n")
    assert run.summary == expect(
        f("video", "google", F, f"inferred from mail: MX 1 {mx}"),
        f("video", "google", F, "inferred from mail: MX 5 alt1.aspmx.l.google.com"),
    )
    assert {x.service for x in run.findings} == {"Google Meet"}


async def test_meet_is_not_inferred_without_google_mx(dns_server):
    # Google's SPF include, DKIM key and verification token say nothing about Meet,
    # and Microsoft mail does not imply Teams.
    run, _ = await scan(dns_server, """
ex.nl MX 10 ex-nl.mail.protection.outlook.com.
ex.nl TXT "v=spf1 include:_spf.google.com ~all"
ex.nl TXT "google-site-verification=abcdefghijklmnop"
google._domainkey.ex.nl TXT "v=DKIM1; p=X"
""")
    assert run.findings == []


async def test_settings_choose_the_cnames_and_srv_records(dns_server):
    zone = TEAMS + """
meet.ex.nl CNAME ex-nl.zoom.us.
_sips._tcp.ex.nl SRV 1 1 5061 sipfed.online.lync.com.
"""
    run, server = await scan(dns_server, zone, cname_hosts=["meet"], srv_records=["_sips._tcp"])
    assert run.summary == expect(
        f("video", "zoom", I, "CNAME meet.ex.nl -> ex-nl.zoom.us"),
        f("video", "microsoft", C, "SRV _sips._tcp.ex.nl -> sipfed.online.lync.com:5061"),
    )
    assert server.asked[("lyncdiscover.ex.nl", "CNAME")] == 0
    assert server.asked[("_sip._tls.ex.nl", "SRV")] == 0


@pytest.mark.parametrize("other", [TEAMS, 'ex.nl TXT "ZOOM_verify_abc"\n'], ids=["teams", "zoom"])
async def test_meet_is_not_inferred_where_another_video_service_is_in_use(dns_server, other):
    run, server = await scan(dns_server, "ex.nl MX 1 smtp.google.com.\n" + other)
    assert run.findings and "google" not in {x.provider for x in run.findings}
    assert server.asked[("ex.nl", "MX")] == 0


async def test_failed_lookups_are_recorded(dns_server):
    run, _ = await scan(dns_server, 'ex.nl TXT "v=spf1 -all"\n', failures={
        ("_sip._tls.ex.nl", "SRV"): "timeout",
        ("sip.ex.nl", "CNAME"): "servfail",
        ("ex.nl", "MX"): "refused",
    })
    assert run.summary == expect()
    assert run.failed == ["CNAME sip.ex.nl: SERVFAIL", "SRV _sip._tls.ex.nl: TIMEOUT", "MX ex.nl: REFUSED"]
