"""Helpers shared by the built-in detectors (a third-party plugin would have its own)."""

from __future__ import annotations

from collections.abc import Iterable

from dijkwacht.asn import provider_id
from dijkwacht.detector import CONFIRMED, INDICATED, DetectorContext, Finding


def provider_role(ctx: DetectorContext, provider_id: str) -> str:
    provider = ctx.catalog.providers.get(provider_id)
    return provider.ip_role if provider else "hosting"


def address_findings(ctx: DetectorContext, category: str, label: str, addresses: Iterable[str], *, role: str, by_as: bool = False) -> list[Finding]:
    """Findings for addresses inside ranges of providers whose ip_role is `role`; with `by_as`,
    an address no range file claims is attributed through its AS (see as_finding).

    An address two providers both announce (a shared /24) is reported for both, as indicated.
    """
    found = []
    for address in addresses:
        claimed = ctx.ip.lookup(address)
        if not claimed and by_as:
            finding = as_finding(ctx, category, label, address)
            if finding is not None:
                found.append(finding)
            continue
        owners = [p for p in claimed if provider_role(ctx, p) == role]
        confidence = CONFIRMED if len(owners) == 1 else INDICATED
        for provider in owners:
            found.append(Finding(category, provider, [f"{label} {address} (in {provider} IP ranges)"], confidence))
    return found


def as_finding(ctx: DetectorContext, category: str, label: str, address: str) -> Finding | None:
    """The address's AS, from the IP-to-AS table: the catalog provider that lists the AS, else
    the AS's holder itself (provider "as<N>", its registration country as jurisdiction).
    Indicated at most: an AS says who routes the address, not who runs the machine."""
    info = ctx.ip.origin(address)
    if info is None:
        return None
    provider = ctx.catalog.asn_providers.get(info.asn) or provider_id(info.asn)
    evidence = f"{label} {address} (AS{info.asn} {info.name}, {info.country or 'country unknown'})"
    return Finding(category, provider, [evidence], INDICATED)


def host_names(domain: str, extra: Iterable[str]) -> list[str]:
    """The apex, www and configured extra names: "portal" means portal.<domain>; a name with
    a trailing dot ("cdn.example.com.") or already under the domain is taken as written."""
    names = [domain, f"www.{domain}"]
    for raw in extra:
        name = raw.lower().rstrip(".")
        absolute = raw.endswith(".") or name == domain or name.endswith("." + domain)
        full = name if absolute else f"{name}.{domain}"
        if full not in names:
            names.append(full)
    return names
