"""`dijkwacht catalog`: the provider catalog, for operators and for journalists who must cite.

Without a provider: one line per provider (today's ultimate parent and jurisdiction, dated
ownership records, whether the ownership is unverified). With one: its chain of ownership
(operator, group, ultimate parent, how it controls the operator, or that the owners above it
could not be verified), its ownership history and every fact, each with its public source.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path
from typing import Any

from .catalog import Catalog, Provider, load_catalog
from .config import AgentSettings
from .errors import DijkwachtError
from .cli_plugins import add_strict_option, load_host
from .runtime import load_config_with_plugins


class UnknownProvider(DijkwachtError):
    pass


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    catalog = subparsers.add_parser(
        "catalog",
        help="list the provider catalog with owners and jurisdictions, or show one provider",
        description="List the provider catalog, or show one provider's chain of ownership, facts and sources.",
    )
    catalog.add_argument("provider", nargs="?", metavar="PROVIDER", help="a provider id (e.g. transip): its chain of ownership, facts and sources")
    catalog.add_argument("--config", metavar="FILE", help="configuration file (its catalog files are included)")
    catalog.add_argument("--format", choices=["json", "table"], default="table", help="output format (default: table)")
    catalog.add_argument("--date", type=dt.date.fromisoformat, metavar="YYYY-MM-DD", help="show the owners on this day (default: today)")
    add_strict_option(catalog)


def _load(args: argparse.Namespace) -> Catalog:
    """The built-in catalog, the plugins' catalog files and the config's, as a scan loads them."""
    host = load_host(args.config, args.strict_plugins)  # the config's [plugins] section applies
    agent = load_config_with_plugins(args.config, host)[0].agent if args.config else AgentSettings()
    return load_catalog([*host.catalog_files(), *(Path(p) for p in agent.catalog)])


def describe(provider: Provider, day: dt.date) -> dict[str, Any]:
    """Everything the catalog says about a provider, as JSON."""
    owner = provider.owner_on(day)
    return {
        "id": provider.id,
        "name": provider.name,
        "operator": provider.operator,
        "group": provider.group,
        "parent": owner.parent,
        "jurisdiction": owner.jurisdiction,
        "parent_since": owner.since.isoformat() if owner.since else None,
        "control": provider.control,
        "verified": provider.verified,
        "source": provider.source,
        "note": provider.note,
        "mail_gateway": provider.mail_gateway,
        "ip_role": provider.ip_role,
        "ownership": [
            {"parent": o.parent, "jurisdiction": o.jurisdiction, "status": o.status, "effective": o.effective.isoformat(), "source": o.source, "note": o.note}
            for o in sorted(provider.ownership, key=lambda o: o.effective)
        ],
        "facts": [
            {"kind": f.kind, "category": f.category, "value": f.value, "role": f.role, "service": f.service, "confidence": f.confidence, "source": f.source}
            for f in provider.facts
        ],
    }


def unverified_words(parent: str) -> str:
    return f"the owners above {parent} could not be verified from public sources; it is taken as the top of the chain"


def _chain(data: dict[str, Any], base: Provider) -> list[str]:
    lines = [f"{data['name']} ({data['id']})", "", "Chain of ownership:", f"  operator   {data['operator']}"]
    if data["group"]:
        lines.append(f"  group      {data['group']}")
    since = f", since {data['parent_since']}" if data["parent_since"] else ""
    lines += [
        f"  parent     {data['parent']} ({data['jurisdiction'] or 'jurisdiction unknown'}{since})",
        f"  control    {data['control'] or 'not stated'}",
    ]
    if not data["verified"]:
        lines.append(f"  verified   no: {unverified_words(data['parent'])}")
    lines.append(f"  source     {data['source']}")
    if data["note"]:
        lines += ["", "Note:", f"  {data['note']}"]
    if data["ownership"]:
        lines += ["", "Ownership history:", f"  before     {base.parent} ({base.jurisdiction})"]
        for o in data["ownership"]:
            lines.append(f"  {o['effective']} {o['status']:<10} {o['parent']} ({o['jurisdiction']})")
            lines.append(f"             {o['source']}")
            if o["note"]:
                lines.append(f"             {o['note']}")
    lines += ["", f"Facts ({len(data['facts'])}):"]
    for f in data["facts"]:
        extras = ", ".join(x for x in (f["role"] and f"role {f['role']}", f["confidence"] != "confirmed" and f["confidence"], f["service"]) if x)
        lines.append(f"  {f['kind']:<11} {f['category']:<12} {f['value']}" + (f"  ({extras})" if extras else ""))
        lines.append(f"  {'':<11} {'':<12} {f['source']}")
    return lines


def run(args: argparse.Namespace) -> int:
    catalog = _load(args)
    day = args.date or dt.date.today()
    if args.provider:
        provider = catalog.providers.get(args.provider)
        if provider is None:
            raise UnknownProvider(f"catalog: no provider '{args.provider}' (list them with 'dijkwacht catalog')")
        data = describe(provider, day)
        print(json.dumps(data, indent=2, ensure_ascii=False) if args.format == "json" else "\n".join(_chain(data, provider)))
        return 0
    providers = sorted(catalog.providers.values(), key=lambda p: p.id)
    if args.format == "json":
        print(json.dumps([describe(p, day) for p in providers], indent=2, ensure_ascii=False))
        return 0
    for provider in providers:
        owner = provider.owner_on(day)
        history = [f"{o.status} {o.effective}: {o.parent} ({o.jurisdiction})" for o in sorted(provider.ownership, key=lambda o: o.effective)]
        suffix = ("  [" + "; ".join(history) + "]") if history else ""
        suffix += "" if provider.verified else "  (ownership not verified)"
        print(f"{provider.id:<20} {owner.jurisdiction or '?':<3} {owner.parent:<50} {len(provider.facts):>3} facts{suffix}")
    return 0
