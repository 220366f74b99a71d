"""Video conferencing: Teams / Skype for Business Online, Zoom, Webex, Google Meet.

Teams is confirmed by its DNS records (lyncdiscover and sip CNAMEs, _sipfederationtls._tcp and
_sip._tls SRV records pointing at online.lync.com; the latter of each pair only when the first
found nothing). Zoom and Webex publish
domain-verification TXT tokens: those indicate an account. Google Meet has no DNS footprint of
its own: it is inferred from Google Workspace mail and marked as such, and only for a domain
where no other video service left a record (a Workspace domain on Teams or Zoom is no Meet user).
"""

from __future__ import annotations

from dijkwacht import hookimpl
from dijkwacht.detector import Detector, DetectorContext, Finding
from dijkwacht.dns import DATA
from dijkwacht.targets import Target

CATEGORY = "video"


class VideoDetector(Detector):
    name = "video"
    categories = (CATEGORY,)
    description = "Video conferencing from Teams/Lync records, verification tokens and Workspace mail"
    settings = {
        "cname_hosts": ["lyncdiscover", "sip"],
        "srv_records": ["_sipfederationtls._tcp", "_sip._tls"],
    }

    async def detect(self, target: Target, ctx: DetectorContext) -> list[Finding]:
        domain = target.domain
        catalog = ctx.catalog
        cnames, srvs = self.options["cname_hosts"], self.options["srv_records"]
        # The first CNAME and SRV name of each list are asked for every target; the others
        # (legacy Skype records) only when those found nothing, since they would only repeat
        # the same provider -- they are a quarter of all queries of a large scan otherwise.
        found = await self._records(domain, cnames[:1], srvs[:1], ctx)
        if not found:
            found = await self._records(domain, cnames[1:], srvs[1:], ctx)
        txt = await ctx.dns.resolve(domain, "TXT")
        if txt.status == DATA:
            for text in txt.records:
                found += [Finding.from_fact(f, f"TXT {text[:80]}") for f in catalog.match_txt(text, CATEGORY)]
        if found:  # a domain with Teams, Zoom or Webex records does not get Meet guessed too
            return found
        mx = await ctx.dns.resolve(domain, "MX")
        if mx.status == DATA:
            for priority, host in mx.records:
                for fact in catalog.match_host("mx", host, CATEGORY):
                    found.append(Finding.from_fact(fact, f"inferred from mail: MX {priority} {host}"))
        return found

    @staticmethod
    async def _records(domain: str, cnames: list[str], srvs: list[str], ctx: DetectorContext) -> list[Finding]:
        found: list[Finding] = []
        for host in cnames:
            answer = await ctx.dns.resolve(f"{host}.{domain}", "CNAME")
            if answer.status == DATA:
                cname = answer.records[0]
                found += [Finding.from_fact(f, f"CNAME {host}.{domain} -> {cname}") for f in ctx.catalog.match_host("cname", cname, CATEGORY)]
        for record in srvs:
            answer = await ctx.dns.resolve(f"{record}.{domain}", "SRV")
            if answer.status == DATA:
                for _, _, port, srv_target in answer.records:
                    evidence = f"SRV {record}.{domain} -> {srv_target}:{port}"
                    found += [Finding.from_fact(f, evidence) for f in ctx.catalog.match_host("srv", srv_target, CATEGORY)]
        return found


@hookimpl
def dijkwacht_detectors() -> list[type[Detector]]:
    return [VideoDetector]
