"""Identity providers from DNS: who signs the organisation's people in.

An organisation that lets Okta or Microsoft Entra ID sign its staff in publishes records for
it: a custom sign-in domain (`login.example.nl CNAME example.okta.com`), or the device
registration names Microsoft documents (`enterpriseregistration.example.nl CNAME
enterpriseregistration.windows.net`). The hosts asked are a setting.
"""

from __future__ import annotations

from pathlib import Path

from dijkwacht import hookimpl
from dijkwacht.detector import Detector, DetectorContext, Finding
from dijkwacht.dns import DATA
from dijkwacht.targets import Target

DIJKWACHT_API = ">=1.0,<2"
CATEGORY = "identity"


class IdentityDetector(Detector):
    name = "identity"
    categories = (CATEGORY,)
    description = "Identity providers (Okta, Microsoft Entra ID) from sign-in and device-registration CNAMEs"
    settings = {"hosts": ["login", "sso", "enterpriseregistration", "msoid"]}

    async def detect(self, target: Target, ctx: DetectorContext) -> list[Finding]:
        found = []
        for host in self.options["hosts"]:
            name = f"{host}.{target.domain}"
            answer = await ctx.dns.resolve(name, "CNAME")
            if answer.status != DATA:
                continue  # a failed lookup is recorded by the core; absence is simply nothing
            for cname in answer.records:
                found += [Finding.from_fact(f, f"CNAME {name} -> {cname}") for f in ctx.catalog.match_host("cname", cname, CATEGORY)]
        return found


@hookimpl
def dijkwacht_detectors():
    return [IdentityDetector]


@hookimpl
def dijkwacht_catalog_files():
    return [Path(__file__).with_name("identity.toml")]
