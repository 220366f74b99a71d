"""`dijkwacht scan --demo`: example organisations served by an embedded DNS server.

It shows on a machine without internet access what a scan reports. The records imitate real
provider patterns; the domains are under the reserved .example TLD, so they cannot be mistaken
for (or leak queries about) real organisations.
"""

from __future__ import annotations

from .targets import Target
from .testing import FakeDNSServer

DEMO_ZONE = """
; A municipality on Microsoft 365 with Teams
gemeente.example MX 0 gemeente-example.mail.protection.outlook.com.
gemeente.example TXT "v=spf1 include:spf.protection.outlook.com -all"
gemeente.example TXT "MS=ms48151623"
autodiscover.gemeente.example CNAME autodiscover.outlook.com.
lyncdiscover.gemeente.example CNAME webdir.online.lync.com.
_sip._tls.gemeente.example SRV 100 1 443 sipdir.online.lync.com.
gemeente.example NS ns-512.awsdns-00.net.
www.gemeente.example CNAME www.gemeente.example.cdn.cloudflare.net.
; A hospital: Proofpoint gateway in front of Microsoft 365
ziekenhuis.example MX 10 mx0a-00123.pphosted.com.
ziekenhuis.example TXT "v=spf1 include:pphosted.com include:spf.protection.outlook.com -all"
selector1._domainkey.ziekenhuis.example CNAME selector1-ziekenhuis-example._domainkey.zkh.onmicrosoft.com.
ziekenhuis.example NS ns0.transip.net.
; A university on Google Workspace, web behind Akamai
universiteit.example MX 1 aspmx.l.google.com.
universiteit.example TXT "v=spf1 include:_spf.google.com ~all"
google._domainkey.universiteit.example TXT "v=DKIM1; k=rsa; p=MIIB"
www.universiteit.example CNAME www.universiteit.example.edgekey.net.
universiteit.example TXT "ZOOM_verify_a1b2c3d4"
; A water board with mail at a Dutch hoster and a lone verification token
waterschap.example MX 10 mailfilter.hostnet.nl.
waterschap.example TXT "google-site-verification=abcdefghijklmnopqrstuvwxyz"
; A ministry whose MX lookup fails: reported as an error, not as "no provider"
ministerie.example TXT "v=spf1 include:spf.protection.outlook.com -all"
; Provider-side names
autodiscover.outlook.com A 52.97.1.1
www.gemeente.example.cdn.cloudflare.net A 104.16.1.1
www.universiteit.example.edgekey.net CNAME e123.a.akamaiedge.net.
e123.a.akamaiedge.net A 23.72.0.1
"""
DEMO_FAILURES = {("ministerie.example", "MX"): "servfail"}
DEMO_TARGETS = ("gemeente.example", "ziekenhuis.example", "universiteit.example", "waterschap.example", "ministerie.example")


DEMO_TARGETS_WITH_LABELS = tuple(Target(d, {"sector": "demo"}) for d in DEMO_TARGETS)


async def start_demo_server() -> FakeDNSServer:
    return await FakeDNSServer(DEMO_ZONE, failures=DEMO_FAILURES).start()
