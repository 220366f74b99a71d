"""A corpus of targets imitating real provider record patterns, with exact expected results.

Each case is one domain, the DNS records that make it up (zone lines, absolute names), the
dependencies the scan must report as (category, provider, confidence) -- and nothing else --
and the detectors that must report an error. Shared provider-side names (MX hosts, SPF
include records, CDN edges) are in PROVIDER_ZONE, served once for all cases, as on the
internet. Addresses are taken from the shared IP range snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass, field

C, I, F = "confirmed", "indicated", "inferred"


@dataclass(frozen=True)
class Case:
    domain: str
    zone: str
    expect: frozenset[tuple[str, str, str]]
    errors: frozenset[str] = frozenset()
    failures: dict = field(default_factory=dict)  # name -> servfail/timeout for the fake server
    note: str = ""
    query: str = ""  # the name as given on the command line, if not the domain itself


def case(domain, zone, expect=(), errors=(), failures=None, note="", query=""):
    return Case(domain, zone.strip(), frozenset(expect), frozenset(errors), failures or {}, note, query)


PROVIDER_ZONE = """
; Microsoft 365
spf.protection.outlook.com TXT "v=spf1 ip4:40.92.0.0/15 ip4:40.107.0.0/16 ip4:52.100.0.0/15 -all"
autodiscover.outlook.com A 52.97.1.1
webdir.online.lync.com A 52.112.1.1
sipdir.online.lync.com A 52.112.1.2
sipfed.online.lync.com A 52.112.1.3
; Google
_spf.google.com TXT "v=spf1 include:_netblocks.google.com ~all"
_netblocks.google.com TXT "v=spf1 ip4:142.250.0.0/15 ~all"
; Proofpoint, Mimecast and other gateways' SPF
pphosted.com TXT "v=spf1 ip4:67.231.144.0/20 -all"
_netblocks.mimecast.com TXT "v=spf1 ip4:207.211.30.0/24 -all"
spf.mandrillapp.com TXT "v=spf1 ip4:198.2.128.0/18 ~all"
sendgrid.net TXT "v=spf1 ip4:167.89.0.0/17 ~all"
; a hoster's SPF that includes nothing known
_spf.transip.email TXT "v=spf1 ip4:149.210.0.0/16 -all"
; CDN edges
edge.cloudflare.test.cdn.cloudflare.net A 104.24.0.1
e1234.a.akamaiedge.net A 23.72.0.1
d111111abcdef8.cloudfront.net A 54.230.1.1
contoso.azurefd.net A 13.107.246.1
dualstack.n.sni.global.fastly.net A 151.101.1.1
cdn-example.b-cdn.net A 109.104.146.1
x7y8z9.x.incapdns.net A 45.60.1.1
contoso-app.azurewebsites.net A 20.50.2.1
; Microsoft 365 mail hosts
gemeente-a-nl.mail.protection.outlook.com A 52.101.68.1
ziekenhuis-b-nl.mail.protection.outlook.com A 52.101.68.2
nieuw-c-nl.r-v1.mx.microsoft A 52.101.68.3
; Google mail hosts
aspmx.l.google.com A 142.250.27.26
alt1.aspmx.l.google.com A 142.250.27.27
smtp.google.com A 142.250.27.28
; gateways
mx0a-001.pphosted.com A 67.231.149.1
mx0b-001.pphosted.com A 67.231.149.2
eu-smtp-inbound-1.mimecast.com A 207.211.30.1
d123.ess.barracudanetworks.com A 209.222.82.1
mx01.hornetsecurity.com A 94.100.128.1
mx1.hc1234-56.iphmx.com A 216.71.129.1
inbound-smtp.eu-west-1.amazonaws.com A 3.64.0.1
; Dutch hosters' mail
mx.transip.email A 37.97.1.1
; nameservers
ns-123.awsdns-45.com A 205.251.192.123
ns1-01.azure-dns.com A 40.90.4.1
ada.ns.cloudflare.com A 173.245.58.1
ns0.transip.net A 195.135.195.195
ns1.selfhosted-ns.example A 88.99.1.1
"""

CASES = [
    # ---- email: mailbox providers -------------------------------------------------------
    case("gemeente-a.nl", """
gemeente-a.nl MX 0 gemeente-a-nl.mail.protection.outlook.com.
gemeente-a.nl TXT "v=spf1 include:spf.protection.outlook.com -all"
gemeente-a.nl TXT "MS=ms12345678"
autodiscover.gemeente-a.nl CNAME autodiscover.outlook.com.
selector1._domainkey.gemeente-a.nl CNAME selector1-gemeente-a-nl._domainkey.gemeentea.onmicrosoft.com.
""", [("email", "microsoft", C)], note="classic Microsoft 365"),
    case("nieuw-c.nl", """
nieuw-c.nl MX 0 nieuw-c-nl.r-v1.mx.microsoft.
nieuw-c.nl TXT "v=spf1 include:spf.protection.outlook.com -all"
""", [("email", "microsoft", C)], note="the newer *.mx.microsoft MX"),
    case("school-d.nl", """
school-d.nl MX 1 aspmx.l.google.com.
school-d.nl MX 5 alt1.aspmx.l.google.com.
school-d.nl TXT "v=spf1 include:_spf.google.com ~all"
school-d.nl TXT "google-site-verification=abcdefghijklmnopqrstuvwxyz0123456789ABCDE"
google._domainkey.school-d.nl TXT "v=DKIM1; k=rsa; p=MIIBIjANBgkq"
""", [("email", "google", C), ("video", "google", F)], note="Google Workspace; Meet inferred"),
    case("startup-e.nl", """
startup-e.nl MX 1 smtp.google.com.
""", [("email", "google", C), ("video", "google", F)], note="newer smtp.google.com MX"),
    case("ses-f.nl", """
ses-f.nl MX 10 inbound-smtp.eu-west-1.amazonaws.com.
""", [("email", "amazon", C)], note="Amazon SES inbound"),
    # ---- email: gateways in front of mailbox providers ---------------------------------
    case("ziekenhuis-g.nl", """
ziekenhuis-g.nl MX 10 mx0a-001.pphosted.com.
ziekenhuis-g.nl MX 10 mx0b-001.pphosted.com.
ziekenhuis-g.nl TXT "v=spf1 include:pphosted.com include:spf.protection.outlook.com -all"
""", [("email", "proofpoint", C), ("email", "microsoft", I)], note="Proofpoint gateway + Microsoft 365"),
    case("ministerie-h.nl", """
ministerie-h.nl MX 10 eu-smtp-inbound-1.mimecast.com.
ministerie-h.nl TXT "v=spf1 include:_netblocks.mimecast.com -all"
selector1._domainkey.ministerie-h.nl CNAME selector1-ministerie-h-nl._domainkey.minh.onmicrosoft.com.
""", [("email", "mimecast", C), ("email", "microsoft", I)], note="Mimecast + M365 tenant via DKIM CNAME (lingers after a migration: indicated)"),
    case("provincie-i.nl", """
provincie-i.nl MX 10 d123.ess.barracudanetworks.com.
""", [("email", "barracuda", C)]),
    case("waterschap-j.nl", """
waterschap-j.nl MX 10 mx01.hornetsecurity.com.
waterschap-j.nl TXT "v=spf1 include:spf.hornetsecurity.com ~all"
""", [("email", "hornetsecurity", C)]),
    case("universiteit-k.nl", """
universiteit-k.nl MX 10 mx1.hc1234-56.iphmx.com.
""", [("email", "cisco", C)], note="Cisco Secure Email (IronPort)"),
    # ---- email: Dutch hosters and self-hosted ------------------------------------------
    case("dorp-l.nl", """
dorp-l.nl MX 10 mx.transip.email.
dorp-l.nl TXT "v=spf1 include:_spf.transip.email -all"
""", [("email", "transip", C)], note="TransIP mail by hostname"),
    case("stad-m.nl", """
stad-m.nl MX 10 mail.stad-m.nl.
mail.stad-m.nl A 5.181.42.10
stad-m.nl TXT "v=spf1 mx -all"
""", [("email", "leaseweb", C)], note="self-hosted mail on a Leaseweb address"),
    case("stad-n.nl", """
stad-n.nl MX 10 mail.stad-n.nl.
mail.stad-n.nl A 5.161.0.10
mail.stad-n.nl AAAA 2a01:4f8::25
""", [("email", "hetzner", C)], note="self-hosted mail at Hetzner (v4 and v6)"),
    case("stad-o.nl", """
stad-o.nl MX 10 mail.stad-o.nl.
mail.stad-o.nl A 195.230.171.116
""", [], note="self-hosted on an address no range file knows: nothing claimed"),
    case("geenmail-p.nl", """
geenmail-p.nl MX 0 .
geenmail-p.nl TXT "v=spf1 -all"
""", [], note="null MX: no mail"),
    case("hybride-q.nl", """
hybride-q.nl MX 10 mail.hybride-q.nl.
mail.hybride-q.nl A 195.230.171.117
hybride-q.nl TXT "v=spf1 mx include:_spf.hybride-q.nl -all"
_spf.hybride-q.nl TXT "v=spf1 include:spf.protection.outlook.com include:spf.mandrillapp.com ~all"
""", [("email", "microsoft", I), ("email", "mailchimp", I)], note="nested SPF include to outbound senders"),
    case("redirect-r.nl", """
redirect-r.nl MX 10 mail.redirect-r.nl.
mail.redirect-r.nl A 195.230.171.118
redirect-r.nl TXT "v=spf1 redirect=_spf.redirect-r.nl"
_spf.redirect-r.nl TXT "v=spf1 include:sendgrid.net -all"
""", [("email", "sendgrid", I)], note="SPF redirect"),
    case("spfloop-s.nl", """
spfloop-s.nl MX 10 mail.spfloop-s.nl.
mail.spfloop-s.nl A 195.230.171.119
spfloop-s.nl TXT "v=spf1 include:a.spfloop-s.nl -all"
a.spfloop-s.nl TXT "v=spf1 include:b.spfloop-s.nl -all"
b.spfloop-s.nl TXT "v=spf1 include:spf.protection.outlook.com include:a.spfloop-s.nl -all"
""", [("email", "microsoft", I)], note="an SPF include loop is cut, what was seen before it stays"),
    case("spflimit-t.nl", """
spflimit-t.nl MX 10 mail.spflimit-t.nl.
mail.spflimit-t.nl A 195.230.171.120
spflimit-t.nl TXT "v=spf1 a mx ptr exists:x.spflimit-t.nl include:i1.spflimit-t.nl include:i2.spflimit-t.nl include:i3.spflimit-t.nl include:i4.spflimit-t.nl include:i5.spflimit-t.nl include:i6.spflimit-t.nl include:spf.protection.outlook.com -all"
i1.spflimit-t.nl TXT "v=spf1 -all"
i2.spflimit-t.nl TXT "v=spf1 -all"
i3.spflimit-t.nl TXT "v=spf1 -all"
i4.spflimit-t.nl TXT "v=spf1 -all"
i5.spflimit-t.nl TXT "v=spf1 -all"
i6.spflimit-t.nl TXT "v=spf1 -all"
""", [], note="the 11th DNS-querying term is past the RFC 7208 limit: not followed"),
    case("twospf-u.nl", """
twospf-u.nl MX 10 mail.twospf-u.nl.
mail.twospf-u.nl A 195.230.171.121
twospf-u.nl TXT "v=spf1 include:spf.protection.outlook.com -all"
twospf-u.nl TXT "v=spf1 include:_spf.google.com -all"
""", [], note="two SPF records are a permanent error: neither is used"),
    case("verify-v.nl", """
verify-v.nl MX 10 mail.verify-v.nl.
mail.verify-v.nl A 195.230.171.122
verify-v.nl TXT "google-site-verification=zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"
verify-v.nl TXT "MS=ms87654321"
""", [], note="lone verification tokens are not a mail provider"),
    case("dkim-w.nl", """
dkim-w.nl MX 10 mail.dkim-w.nl.
mail.dkim-w.nl A 195.230.171.123
selector1._domainkey.dkim-w.nl CNAME selector1-dkim-w-nl._domainkey.dkimw.onmicrosoft.com.
autodiscover.dkim-w.nl CNAME autodiscover.outlook.com.
""", [("email", "microsoft", I)], note="on-prem MX but Microsoft 365 tenant records (DKIM + autodiscover): hybrid or left over, indicated"),
    # ---- video ---------------------------------------------------------------------------
    case("gemeente-x.nl", """
gemeente-x.nl MX 0 gemeente-a-nl.mail.protection.outlook.com.
lyncdiscover.gemeente-x.nl CNAME webdir.online.lync.com.
sip.gemeente-x.nl CNAME sipdir.online.lync.com.
_sip._tls.gemeente-x.nl SRV 100 1 443 sipdir.online.lync.com.
_sipfederationtls._tcp.gemeente-x.nl SRV 100 1 5061 sipfed.online.lync.com.
""", [("email", "microsoft", C), ("video", "microsoft", C)], note="Teams / Skype for Business Online"),
    case("zoom-y.nl", """
zoom-y.nl TXT "ZOOM_verify_abcdefghijklmnop"
zoom-y.nl TXT "v=spf1 -all"
""", [("video", "zoom", I)]),
    case("webex-z.nl", """
webex-z.nl TXT "cisco-ci-domain-verification=0123456789abcdef"
webex-z.nl TXT "webexdomainverification.ABCD=1234-5678"
""", [("video", "cisco-webex", I)]),
    case("zoomnew-aa.nl", """
zoomnew-aa.nl TXT "zoom-domain-verification=ab12cd34-ef56"
""", [("video", "zoom", I)]),
    # ---- CDN -----------------------------------------------------------------------------
    case("site-ab.nl", """
site-ab.nl A 104.24.0.1
www.site-ab.nl CNAME edge.cloudflare.test.cdn.cloudflare.net.
""", [("cdn", "cloudflare", C)], note="Cloudflare: apex in its ranges, www by CNAME; not hosting"),
    case("site-ac.nl", """
www.site-ac.nl CNAME www.site-ac.nl.edgekey.net.
www.site-ac.nl.edgekey.net CNAME e1234.a.akamaiedge.net.
""", [("cdn", "akamai", C)], note="Akamai edgekey -> akamaiedge chain"),
    case("site-ad.nl", """
www.site-ad.nl CNAME d111111abcdef8.cloudfront.net.
""", [("cdn", "amazon", C)], note="CloudFront: its addresses are in amazon ranges but it is not hosting"),
    case("site-ae.nl", """
www.site-ae.nl CNAME contoso.azurefd.net.
""", [("cdn", "microsoft", C)], note="Azure Front Door"),
    case("site-af.nl", """
www.site-af.nl CNAME dualstack.n.sni.global.fastly.net.
""", [("cdn", "fastly", C)]),
    case("site-ag.nl", """
www.site-ag.nl CNAME cdn-example.b-cdn.net.
""", [("cdn", "bunny", C)]),
    case("site-ah.nl", """
www.site-ah.nl CNAME x7y8z9.x.incapdns.net.
""", [("cdn", "imperva", C)]),
    # ---- hosting -------------------------------------------------------------------------
    case("site-ai.nl", """
site-ai.nl A 5.161.0.20
www.site-ai.nl CNAME site-ai.nl.
""", [("hosting", "hetzner", C)], note="apex at Hetzner; www CNAME to apex"),
    case("site-aj.nl", """
site-aj.nl A 51.38.0.1
www.site-aj.nl A 31.14.96.10
""", [("hosting", "ovh", C), ("hosting", "transip", C)], note="apex at OVH, www at TransIP"),
    case("site-ak.nl", """
site-ak.nl A 3.120.0.1
""", [("hosting", "amazon", C)], note="EC2 address"),
    case("site-al.nl", """
www.site-al.nl CNAME contoso-app.azurewebsites.net.
""", [("hosting", "microsoft", C)], note="Azure App Service by CNAME (and its address)"),
    case("site-am.nl", """
site-am.nl A 185.19.33.10
""", [("hosting", "leaseweb", I), ("hosting", "ovh", I)], note="a prefix both Leaseweb and OVH announce"),
    case("site-an.nl", """
site-an.nl A 185.12.1.1
1.1.12.185.in-addr.arpa PTR static.1.1.12.185.clients.your-server.de.
""", [("hosting", "hetzner", I)], note="PTR fallback for an address no range file knows"),
    # ---- DNS hosting ---------------------------------------------------------------------
    case("dns-ao.nl", """
dns-ao.nl NS ns-123.awsdns-45.com.
dns-ao.nl NS ns-456.awsdns-12.net.
""", [("dns", "amazon", C)], note="Route 53"),
    case("dns-ap.nl", """
dns-ap.nl NS ns1-01.azure-dns.com.
""", [("dns", "microsoft", C)]),
    case("dns-aq.nl", """
dns-aq.nl NS ada.ns.cloudflare.com.
""", [("dns", "cloudflare", C)]),
    case("dns-ar.nl", """
dns-ar.nl NS ns0.transip.net.
""", [("dns", "transip", C)]),
    case("dns-as.nl", """
dns-as.nl NS ns1.selfhosted-ns.example.
""", [("dns", "hetzner", I)], note="own nameserver on a Hetzner address"),
    # ---- hard cases ----------------------------------------------------------------------
    case("bigtxt-at.nl", "\n".join(
        ['bigtxt-at.nl MX 0 ziekenhuis-b-nl.mail.protection.outlook.com.',
         'bigtxt-at.nl TXT "v=spf1 include:spf.protection.outlook.com -all"']
        + [f'bigtxt-at.nl TXT "verification-token-{i}={"x" * 60}"' for i in range(40)]
    ), [("email", "microsoft", C)], note="a TXT set too big for UDP: retried over TCP"),
    case("loop-au.nl", """
loop-au.nl MX 10 mail.loop-au.nl.
mail.loop-au.nl A 5.161.0.30
www.loop-au.nl CNAME w1.loop-au.nl.
w1.loop-au.nl CNAME www.loop-au.nl.
""", [("email", "hetzner", C)], errors=["cdn", "hosting"], note="a CNAME loop on www is an error for the web detectors"),
    case("xn--gemeente-zrich-psb.ch", """
xn--gemeente-zrich-psb.ch MX 10 gemeente-a-nl.mail.protection.outlook.com.
""", [("email", "microsoft", C)], query="gemeente-zürich.ch", note="IDN target"),
    case("mixedcase-av.nl", """
mixedcase-av.nl MX 10 aspmx.l.google.com.
""", [("email", "google", C), ("video", "google", F)], query="MixedCase-AV.NL.", note="mixed case and trailing dot"),
    case("servfail-aw.nl", """
servfail-aw.nl TXT "v=spf1 include:spf.protection.outlook.com -all"
servfail-aw.nl NS ns0.transip.net.
""", [("email", "microsoft", I), ("dns", "transip", C)], errors=["email", "video"],
        failures={("servfail-aw.nl", "MX"): "servfail"}, note="SERVFAIL on MX: email and video incomplete, not empty"),
    case("timeout-ax.nl", """
timeout-ax.nl MX 10 gemeente-a-nl.mail.protection.outlook.com.
""", [("email", "microsoft", C)], errors=["email", "video"],
        failures={("timeout-ax.nl", "TXT"): "timeout"}, note="timeout on TXT: an error, not absence"),
    case("nxdomain-ay.nl", "", [], errors=["email", "video", "cdn", "hosting", "dns"], note="the domain does not exist"),
    case("empty-az.nl", """
empty-az.nl TXT "v=spf1 -all"
""", [], note="exists, has nothing of interest"),
]
