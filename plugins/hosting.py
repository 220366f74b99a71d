"""Hosting: where a domain's web servers run.

The apex and www addresses are classified by the providers' IP ranges; hosting platforms seen
in a CNAME chain (azurewebsites.net, herokuapp.com...) are reported too. An address no range
file knows is attributed through its AS (IP-to-AS table) when the catalog lists that AS, else
by a PTR name the catalog knows, else to the AS's holder. A name fronted by a CDN is not
claimed to be hosted by the CDN: its edge addresses say nothing about where the origin runs.
"""

from __future__ import annotations

import ipaddress

from dijkwacht import hookimpl
from dijkwacht.detector import INDICATED, Detector, DetectorContext, Finding
from dijkwacht.dns import DATA
from dijkwacht.targets import Target

from ._common import address_findings, as_finding, host_names

CATEGORY = "hosting"


class HostingDetector(Detector):
    name = "hosting"
    categories = (CATEGORY,)
    description = "Hosting providers from apex/www addresses, platform CNAMEs and PTR names"
    settings = {"hosts": [], "ptr_fallback": True}

    async def detect(self, target: Target, ctx: DetectorContext) -> list[Finding]:
        catalog = ctx.catalog
        found: list[Finding] = []
        for name in host_names(target.domain, [*self.options["hosts"], *target.hosts]):
            addresses, chain = await ctx.dns.addresses(name)
            fronted = False
            for host in chain:
                if catalog.match_host("cname", host, "cdn"):
                    # Past a CDN edge the chain is the CDN's own machinery (Front Door runs
                    # through trafficmanager.net): it says nothing about the origin's host.
                    fronted = True
                    break
                found += [Finding.from_fact(f, f"CNAME {name} -> {host}") for f in catalog.match_host("cname", host, CATEGORY)]
            if fronted:
                continue
            for address in addresses:
                label = f"A/AAAA {name}"
                if ctx.ip.lookup(address):
                    found += address_findings(ctx, CATEGORY, label, [address], role="hosting")
                    continue
                # No range file claims it: the AS if the catalog knows it, else a PTR name the
                # catalog knows, else the AS's holder.
                by_as = as_finding(ctx, CATEGORY, label, address)
                if by_as is not None and by_as.provider in catalog.providers:
                    found.append(by_as)
                    continue
                by_ptr = await self._ptr(address, name, ctx) if self.options["ptr_fallback"] else []
                found += by_ptr or ([by_as] if by_as is not None else [])
        return found

    @staticmethod
    async def _ptr(address: str, name: str, ctx: DetectorContext) -> list[Finding]:
        reverse = ipaddress.ip_address(address).reverse_pointer
        answer = await ctx.dns.resolve(reverse, "PTR")
        if answer.status != DATA:
            return []
        found = []
        for ptr in answer.records:
            for fact in ctx.catalog.match_host("ptr", ptr, CATEGORY):
                found.append(Finding.from_fact(fact, f"PTR {address} ({name}) -> {ptr}", confidence=INDICATED))
        return found


@hookimpl
def dijkwacht_detectors() -> list[type[Detector]]:
    return [HostingDetector]
