"""CDN: which content delivery network fronts a domain's web names.

Evidence, strongest first: a CNAME chain ending at a CDN's edge names, addresses inside the
ranges of a provider whose addresses are CDN edges, and (only with HTTP probing switched on)
response headers such as cf-ray or x-amz-cf-id. Without probing no connection is opened.
"""

from __future__ import annotations

from dijkwacht import hookimpl
from dijkwacht.detector import Detector, DetectorContext, Finding
from dijkwacht.targets import Target

from ._common import address_findings, host_names

CATEGORY = "cdn"


class CdnDetector(Detector):
    name = "cdn"
    categories = (CATEGORY,)
    description = "CDNs from CNAME chains, edge address ranges and (optionally) HTTP headers"
    settings = {"hosts": []}  # extra host names to check, besides the apex, www and target.hosts

    async def detect(self, target: Target, ctx: DetectorContext) -> list[Finding]:
        found: list[Finding] = []
        probe_hosts = []
        for name in host_names(target.domain, [*self.options["hosts"], *target.hosts]):
            addresses, chain = await ctx.dns.addresses(name)
            for host in chain:
                found += [Finding.from_fact(f, f"CNAME {name} -> {host}") for f in ctx.catalog.match_host("cname", host, CATEGORY)]
            found += address_findings(ctx, CATEGORY, f"A/AAAA {name}", addresses, role="cdn")
            if addresses:
                probe_hosts.append(name)
        if ctx.http is not None:
            for name in probe_hosts[:2]:
                result = await ctx.http.headers(name, target.domain)
                for fact, header in ctx.catalog.match_headers(result.headers):
                    if fact.category == CATEGORY:
                        found.append(Finding.from_fact(fact, f"HTTP {result.url} {header[:100]}"))
        return found


@hookimpl
def dijkwacht_detectors() -> list[type[Detector]]:
    return [CdnDetector]
