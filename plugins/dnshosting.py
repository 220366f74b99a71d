"""DNS hosting: who serves a domain's zone, from its NS records.

Nameserver names are matched by the catalog (awsdns, azure-dns, ns.cloudflare.com...);
nameservers the catalog does not know are classified by the IP ranges of their addresses, else
by the AS that routes them (IP-to-AS table).
"""

from __future__ import annotations

from dijkwacht import hookimpl
from dijkwacht.detector import INDICATED, Detector, DetectorContext, Finding
from dijkwacht.dns import DATA
from dijkwacht.targets import Target

from ._common import address_findings

CATEGORY = "dns"


class DnsHostingDetector(Detector):
    name = "dns"
    categories = (CATEGORY,)
    description = "DNS hosting providers from NS records"

    async def detect(self, target: Target, ctx: DetectorContext) -> list[Finding]:
        answer = await ctx.dns.resolve(target.domain, "NS")
        if answer.status != DATA:
            return []
        found: list[Finding] = []
        for host in sorted(answer.records):
            facts = ctx.catalog.match_host("ns", host, CATEGORY)
            if facts:
                found += [Finding.from_fact(f, f"NS {host}") for f in facts]
                continue
            addresses, _ = await ctx.dns.addresses(host)
            for finding in address_findings(ctx, CATEGORY, f"NS {host}", addresses, role="hosting", by_as=True):
                finding.confidence = INDICATED
                found.append(finding)
        return found


@hookimpl
def dijkwacht_detectors() -> list[type[Detector]]:
    return [DnsHostingDetector]
