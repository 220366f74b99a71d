"""Helpers shared by the built-in detectors (a third-party plugin would have its own)."""

from __future__ import annotations

from collections.abc import Iterable

from dijkwacht.detector import CONFIRMED, INDICATED, DetectorContext, Finding


def provider_role(ctx: DetectorContext, provider_id: str) -> str:
    provider = ctx.catalog.providers.get(provider_id)
    return provider.ip_role if provider else "hosting"


def address_findings(ctx: DetectorContext, category: str, label: str, addresses: Iterable[str], *, role: str) -> list[Finding]:
    """Findings for addresses inside ranges of providers whose ip_role is `role`.

    An address two providers both announce (a shared /24) is reported for both, as indicated.
    """
    found = []
    for address in addresses:
        owners = [p for p in ctx.ip.lookup(address) if provider_role(ctx, p) == role]
        confidence = CONFIRMED if len(owners) == 1 else INDICATED
        for provider in owners:
            found.append(Finding(category, provider, [f"{label} {address} (in {provider} IP ranges)"], confidence))
    return found


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
