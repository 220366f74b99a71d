"""SPF discovery (RFC 7208): which outside domains and networks a domain lets send its mail.

This walks a domain's SPF record the way a receiver would (include and redirect, the limit of
10 DNS-querying terms, loop protection), but to list senders rather than to check one IP.
Includes that the catalog recognises are not descended into: they are the provider's own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from dijkwacht.detector import DetectorContext
from dijkwacht.dns import DATA

LOOKUP_LIMIT = 10  # RFC 7208 section 4.6.4
_COUNTED = ("include", "a", "mx", "ptr", "exists", "redirect")


@dataclass
class SpfWalk:
    """What an SPF walk found: referenced domains and networks, and any permanent error."""

    includes: list[tuple[str, str]] = field(default_factory=list)  # (domain, how it was referenced)
    networks: list[tuple[str, str]] = field(default_factory=list)  # (address or CIDR, term)
    lookups: int = 0
    permerror: str = ""
    seen: set[str] = field(default_factory=set)


def spf_records(texts: tuple[str, ...] | list[str]) -> list[str]:
    """The SPF records among a domain's TXT strings (RFC 7208 4.5: "v=spf1" then space or end)."""
    return [t for t in texts if t[:6].lower() == "v=spf1" and (len(t) == 6 or t[6] == " ")]


async def walk_spf(ctx: DetectorContext, domain: str, known: Callable[[str], bool], walk: SpfWalk | None = None, depth: int = 0) -> SpfWalk:
    """Walk the SPF policy of `domain`. `known(d)` tells whether an include is a recognised
    provider (then it is recorded but not descended into)."""
    walk = walk or SpfWalk()
    if domain in walk.seen:
        walk.permerror = walk.permerror or f"SPF loop at {domain}"
        return walk
    walk.seen.add(domain)
    answer = await ctx.dns.resolve(domain, "TXT")
    if answer.status != DATA:
        return walk
    records = spf_records(answer.records)
    if len(records) != 1:
        if len(records) > 1:
            walk.permerror = walk.permerror or f"{domain} has {len(records)} SPF records"
        return walk
    terms = records[0].split()[1:]
    has_all = any(t.lstrip("+-~?").lower() == "all" for t in terms)
    redirect = ""
    for term in terms:
        qualifier = term[0] if term[0] in "+-~?" else "+"
        body = term.lstrip("+-~?")
        name, sep, value = body.partition(":") if ":" in body.split("=")[0] else body.partition("=")
        name = name.lower().split("/")[0]
        if name in _COUNTED:
            walk.lookups += 1
            if walk.lookups > LOOKUP_LIMIT:
                walk.permerror = walk.permerror or "more than 10 DNS-querying SPF terms"
                return walk
        if name in ("ip4", "ip6") and qualifier != "-":
            walk.networks.append((value, f"{name}:{value}"))
        elif name == "include" and qualifier != "-" and value and "%" not in value:
            await _follow(ctx, value.lower().rstrip("."), f"include:{value}", known, walk, depth)
        elif name == "redirect" and sep == "=" and value and "%" not in value:
            redirect = value.lower().rstrip(".")
        if walk.permerror:
            return walk
    if redirect and not has_all:  # RFC 7208 6.1: redirect applies only without an "all"
        await _follow(ctx, redirect, f"redirect={redirect}", known, walk, depth)
    return walk


async def _follow(ctx: DetectorContext, target: str, term: str, known: Callable[[str], bool], walk: SpfWalk, depth: int) -> None:
    walk.includes.append((target, term))
    if not known(target) and depth < LOOKUP_LIMIT:
        await walk_spf(ctx, target, known, walk, depth + 1)
