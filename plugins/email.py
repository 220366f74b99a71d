"""Email: who receives, filters and sends a domain's mail.

Inbound: MX hosts matched by the catalog (a security gateway such as Proofpoint in front of a
mailbox provider is reported as well as the mailbox provider); an MX host the catalog does not
know is classified by the IP ranges of its addresses (self-hosted mail on a Leaseweb server
is a dependency on Leaseweb), else by the AS that routes them (IP-to-AS table, indicated). A null MX ("0 .") means the domain takes no mail.
Outbound and tenancy: SPF includes (walked per RFC 7208), DKIM selector records and the
autodiscover CNAME. A newsletter or transactional service in SPF (Mailchimp, SendGrid...) has
the role `sending`, never `mailbox`; so has a provider whose network SPF allows to send. Verification TXT tokens (MS=..., google-site-verification=...) are only
added as corroborating evidence, never a dependency by themselves.

The provider-specific DKIM selectors (google._domainkey, hse1._domainkey...) are asked only
when MX and SPF leave the picture open: an MX host known only by its address, a mail gateway
(role gateway: the catalog's mail_gateway or the fact's role), SPF naming other providers than
MX. When every MX host is a known provider and SPF names exactly the same providers they could
only add evidence, and across thousands of targets they would be a fifth of all queries. The Microsoft 365 tenant records
(the selector1 and autodiscover CNAMEs) are always asked: a tenant set up before the MX moves
is the earliest sign of a move.
"""

from __future__ import annotations

import ipaddress

from dijkwacht import hookimpl
from dijkwacht.detector import CONFIRMED, INDICATED, Detector, DetectorContext, Finding
from dijkwacht.dns import DATA
from dijkwacht.targets import Target

from ._common import address_findings
from .spf import walk_spf

CATEGORY = "email"


class EmailDetector(Detector):
    name = "email"
    categories = (CATEGORY,)
    description = "Mail providers from MX, SPF, DKIM selectors and autodiscover"
    settings = {
        # Selectors queried as CNAMEs: their targets name the tenant's provider.
        "cname_selectors": ["selector1"],
        # Extra selectors to look for besides the catalog's provider-specific ones.
        "extra_selectors": [],
        # Ask for the provider-specific DKIM selectors even when MX and SPF already agree.
        "always_check_tenant": False,
    }

    async def detect(self, target: Target, ctx: DetectorContext) -> list[Finding]:
        domain = target.domain
        inbound, by_name = await self._mx(domain, ctx)
        outbound = await self._spf(domain, ctx)
        findings = inbound + outbound
        providers = {f.provider for f in inbound}
        gateway = any((f.role or ctx.catalog.default_role(CATEGORY, f.provider)) == "gateway" for f in inbound)
        settled = by_name and not gateway and providers == {f.provider for f in outbound}
        # The tenant CNAMEs are always asked: a Microsoft 365 tenant set up while MX and SPF
        # still point at the old provider is the first sign of a move.
        findings += await self._tenant_cnames(domain, ctx)
        if self.options["always_check_tenant"] or not settled:
            findings += await self._dkim_selectors(domain, ctx)
        return self._corroborate(findings, await ctx.dns.resolve(domain, "TXT"), ctx)

    async def _mx(self, domain: str, ctx: DetectorContext) -> tuple[list[Finding], bool]:
        """Inbound findings, and whether every MX host was recognised by its name."""
        answer = await ctx.dns.resolve(domain, "MX")
        if answer.status != DATA:
            return [], False
        hosts = sorted(answer.records)
        if any(host in ("", ".") for _, host in hosts):  # RFC 7505 null MX: no mail at all
            return [], False
        found: list[Finding] = []
        by_name = True
        for priority, host in hosts:
            evidence = f"MX {priority} {host}"
            facts = ctx.catalog.match_host("mx", host, CATEGORY)
            if facts:
                found += [Finding.from_fact(f, evidence) for f in facts]
                continue
            by_name = False
            addresses, _ = await ctx.dns.addresses(host)
            found += address_findings(ctx, CATEGORY, evidence, addresses, role="hosting", by_as=True)
        return found, by_name

    async def _spf(self, domain: str, ctx: DetectorContext) -> list[Finding]:
        catalog = ctx.catalog
        walk = await walk_spf(ctx, domain, lambda d: bool(catalog.match_host("spf", d, CATEGORY)))
        if walk.permerror:  # receivers reject such a policy; what was found before it still counts
            ctx.warn(f"SPF permerror: {walk.permerror}")
        found = []
        for include, term in walk.includes:
            found += [Finding.from_fact(f, f"SPF {term}") for f in catalog.match_host("spf", include, CATEGORY)]
        for network, term in walk.networks:
            try:
                first = str(ipaddress.ip_network(network, strict=False).network_address)
            except ValueError:
                continue
            # A network allowed to send says who sends, not where the mailbox is.
            for provider in ctx.ip.lookup(first):
                found.append(Finding(CATEGORY, provider, [f"SPF {term} (in {provider} IP ranges)"], INDICATED, role="sending"))
        return found

    async def _tenant_cnames(self, domain: str, ctx: DetectorContext) -> list[Finding]:
        """DKIM selectors published as CNAMEs to the tenant, and the autodiscover CNAME."""
        found = []
        names = [(f"{s}._domainkey.{domain}", f"DKIM {s}._domainkey CNAME") for s in self.options["cname_selectors"]]
        names.append((f"autodiscover.{domain}", f"CNAME autodiscover.{domain} ->"))
        for name, label in names:
            answer = await ctx.dns.resolve(name, "CNAME")
            if answer.status == DATA:
                cname = answer.records[0]
                found += [Finding.from_fact(f, f"{label} {cname}") for f in ctx.catalog.match_host("cname", cname, CATEGORY)]
        return found

    async def _dkim_selectors(self, domain: str, ctx: DetectorContext) -> list[Finding]:
        """Provider-specific DKIM selectors (google._domainkey...), as TXT records."""
        found = []
        selectors = dict(ctx.catalog.dkim_probe_selectors)  # one per provider
        for extra in self.options["extra_selectors"]:
            # a selector the catalog knows keeps its provider (hse2 when only hse1 was queried)
            selectors.setdefault(extra, ctx.catalog.dkim_selectors.get(extra, []))
        for selector, facts in selectors.items():
            answer = await ctx.dns.resolve(f"{selector}._domainkey.{domain}", "TXT")
            if answer.status != DATA:
                continue
            evidence = f"DKIM {selector}._domainkey " + (f"CNAME {answer.chain[0]}" if answer.chain else "TXT")
            found += [Finding.from_fact(f, evidence) for f in facts if f.category == CATEGORY]
            for host in answer.chain:
                found += [Finding.from_fact(f, evidence) for f in ctx.catalog.match_host("cname", host, CATEGORY)]
        return found

    @staticmethod
    def _corroborate(findings: list[Finding], txt, ctx: DetectorContext) -> list[Finding]:
        """Add verification tokens as evidence to providers already found by other means."""
        if txt.status != DATA or not findings:
            return findings
        by_provider = {f.provider: f for f in findings}
        for text in txt.records:
            for fact in ctx.catalog.match_txt(text, "verification"):
                finding = by_provider.get(fact.provider)
                if finding is not None:
                    finding.evidence.append(f"TXT {text[:80]}")
        return findings


@hookimpl
def dijkwacht_detectors() -> list[type[Detector]]:
    return [EmailDetector]
