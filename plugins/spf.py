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
    seen: set[str] = field(default_factory=set)  # every domain whose record was walked
    path: list[str] = field(default_factory=list)  # the include/redirect chain being walked now


def spf_records(texts: tuple[str, ...] | list[str]) -> list[str]:
    """The SPF records among a domain's TXT strings (RFC 7208 4.5: "v=spf1" then space or end)."""
    return [t for t in texts if t[:6].lower() == "v=spf1" and (len(t) == 6 or t[6] == " ")]


async def walk_spf(ctx: DetectorContext, domain: str, known: Callable[[str], bool], walk: SpfWalk | None = None, depth: int = 0) -> SpfWalk:
    """Walk the SPF policy of `domain`. `known(d)` tells whether an include is a recognised
    provider (then it is recorded but not descended into)."""
    walk = walk or SpfWalk()
    # A loop is a domain that includes itself, directly or not. A domain reached twice by
    # different includes (a diamond, or the same include written twice) is no loop: receivers
    # evaluate it again, and its lookups count again.
    if domain in walk.path:
        walk.permerror = walk.permerror or f"SPF loop at {domain}"
        return walk
    walk.seen.add(domain)
    walk.path.append(domain)
    try:
        return await _walk_record(ctx, domain, known, walk, depth)
    finally:
        walk.path.pop()


async def _walk_record(ctx: DetectorContext, domain: str, known: Callable[[str], bool], walk: SpfWalk, depth: int) -> SpfWalk:
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
        if name in _COUNTED and name != "redirect":  # a redirect counts when it applies, below
            if not _count(walk):
                return walk
        if name in ("ip4", "ip6") and qualifier != "-":
            walk.networks.append((value, f"{name}:{value}"))
        elif name == "include" and qualifier != "-" and value and "%" not in value:
            await _follow(ctx, value.lower().rstrip("."), f"include:{value}", known, walk, depth)
        elif name == "redirect" and sep == "=" and value:
            redirect = value.lower().rstrip(".")
        if walk.permerror:
            return walk
    # RFC 7208 6.1: a redirect applies only without an "all", and only after every mechanism,
    # wherever it is written; only then is it looked up and counted.
    if redirect and not has_all and _count(walk) and "%" not in redirect:
        await _follow(ctx, redirect, f"redirect={redirect}", known, walk, depth)
    return walk


def _count(walk: SpfWalk) -> bool:
    """Count one DNS-querying term; False (and a permerror) past the limit."""
    walk.lookups += 1
    if walk.lookups > LOOKUP_LIMIT:
        walk.permerror = walk.permerror or "more than 10 DNS-querying SPF terms"
        return False
    return True


async def _follow(ctx: DetectorContext, target: str, term: str, known: Callable[[str], bool], walk: SpfWalk, depth: int) -> None:
    walk.includes.append((target, term))
    if not known(target) and depth < LOOKUP_LIMIT:
        await walk_spf(ctx, target, known, walk, depth + 1)
