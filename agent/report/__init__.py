"""`dijkwacht report`: the sovereignty report, from scan results or the agent's state.

`build()` turns what was read (inputs.py) into a Report: every number in it comes from
agent/figures.py, the module the scan summary uses too, so the report, the campaign summary
and the metrics agree on what "foreign", "incomplete" and every share mean. The renderers
(html.py, text.py) only format those numbers.

`to_json()` is the `--format json` output; its keys are stable (`schema` changes if one's
meaning does): `schema, title, generated, version, home, home_codes, count_inferred, source,
figures, shares, groups, changes, catalog, ip_data`.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import __version__
from ..catalog import Catalog
from ..figures import change_figures, counts, shares, with_groups
from ..ipranges import RangeFile
from .inputs import Loaded

SCHEMA = 1
# What a group's entry in the JSON holds of its figures (the providers are in the whole's).
GROUP_KEYS = ("targets", "foreign", "clean", "unknown", "incomplete", "categories", "roles", "jurisdictions")


@dataclass
class Report:
    title: str
    home: tuple[str, ...]  # as configured: "EU", "EEA" or alpha-2 codes
    home_codes: frozenset[str]
    count_inferred: bool
    loaded: Loaded
    generated: float
    since: float | None  # changes shown from (None: no history)
    catalog: dict[str, Any]
    ip_data: list[dict[str, Any]]
    figures: dict[str, Any] = field(default_factory=dict)
    shares: dict[str, Any] = field(default_factory=dict)
    groups: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # label -> value -> figures
    changes: dict[str, Any] | None = None  # change_figures() of loaded.changes

    @property
    def results(self) -> list[dict[str, Any]]:
        return self.loaded.results


def catalog_info(catalog: Catalog) -> dict[str, Any]:
    """Providers and the catalog files with their dates (the built-in one by version, not path)."""
    files = []
    for i, source in enumerate(catalog.sources):
        path = Path(source)
        try:
            updated: float | None = path.stat().st_mtime
        except OSError:  # e.g. inside a zipped package
            updated = None
        builtin = i == 0 and path.name == "providers.toml" and path.parent.name == "catalog"
        files.append({"file": f"built-in (dijkwacht {__version__})" if builtin else path.name, "updated": updated})
    newest = max((o.effective for p in catalog.providers.values() for o in p.ownership), default=None)
    unverified = [{"id": p.id, "name": p.name} for p in sorted(catalog.providers.values(), key=lambda p: p.id) if not p.verified]
    return {"providers": len(catalog.providers), "files": files, "newest_ownership_record": newest.isoformat() if newest else None,
            "unverified": unverified}


def ip_info(files: Iterable[RangeFile]) -> list[dict[str, Any]]:
    return [{"provider": f.provider, "updated": f.updated, "prefixes": f.prefixes_v4 + f.prefixes_v6} for f in files]


def build(loaded: Loaded, *, title: str, home: Sequence[str], home_codes: frozenset[str], count_inferred: bool,
          group_by: Sequence[str], since: float | None, catalog: dict[str, Any], ip_data: list[dict[str, Any]],
          now: float | None = None) -> Report:
    """The report of `loaded` (whose dependencies' `foreign` already follows `home_codes`)."""
    report = Report(title, tuple(home), home_codes, count_inferred, loaded, time.time() if now is None else now,
                    since if loaded.changes is not None else None, catalog, ip_data)
    report.figures, report.groups = with_groups(loaded.results, group_by, count_inferred=count_inferred)
    report.shares = shares(report.figures)
    if loaded.changes is not None:
        report.changes = change_figures(loaded.changes, home_codes)
    return report


def label_keys(results: Iterable[dict[str, Any]]) -> list[str]:
    return sorted({k for r in results for k in r.get("labels", ())})


def iso(moment: float | None) -> str | None:
    return None if moment is None else dt.datetime.fromtimestamp(moment, dt.UTC).isoformat(timespec="seconds")


def no_providers(report: Report) -> str:
    """What section 2 says when no dependency counts: none found, or only inferred ones."""
    left_out = sum(not counts(d, report.count_inferred) for r in report.results for d in r.get("dependencies", ()))
    if not left_out:
        return "No dependency was found."
    return (f"No dependency that counts was found: {left_out} inferred one{'s are' if left_out != 1 else ' is'} listed per domain"
            " but not counted (the option --count-inferred counts them).")


def home_words(home: Sequence[str]) -> str:
    """"the EU", "the EEA", "NL", "NL and BE": how the headline names home."""
    names = [f"the {h}" if h in ("EU", "EEA") else h for h in home]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def to_json(report: Report) -> dict[str, Any]:
    loaded = report.loaded
    scanned = loaded.scanned
    return {
        "schema": SCHEMA,
        "title": report.title,
        "generated": iso(report.generated),
        "version": __version__,
        "home": list(report.home),
        "home_codes": sorted(report.home_codes),
        "count_inferred": report.count_inferred,
        "source": {"kind": loaded.kind, "path": loaded.path, "scanned_from": iso(scanned[0]) if scanned else None,
                   "scanned_to": iso(scanned[1]) if scanned else None, "notes": list(loaded.notes)},
        "figures": report.figures,
        "shares": report.shares,
        "groups": {
            key: {value: {"figures": {k: fig[k] for k in GROUP_KEYS}, "shares": {k: v for k, v in shares(fig).items() if k in GROUP_KEYS}}
                  for value, fig in values.items()}
            for key, values in report.groups.items()
        },
        "changes": None if report.changes is None else {"since": iso(report.since), "figures": report.changes, "list": loaded.changes},
        "catalog": {**report.catalog, "files": [{**f, "updated": iso(f["updated"])} for f in report.catalog["files"]]},
        "ip_data": [{**f, "updated": iso(f["updated"])} for f in report.ip_data],
    }


def method(report: Report) -> list[tuple[str, list[str]]]:
    """Section 6 in plain text (heading, paragraphs): the one wording of what the figures mean,
    which every format renders."""
    home = home_words(report.home)
    inferred = "counted in this report" if report.count_inferred else "listed, but not counted in this report"
    return [
        ("What \u201cforeign\u201d means here", [
            f"A dependency is foreign when the provider's ultimate parent company falls under a jurisdiction outside {home} "
            f"({', '.join(sorted(report.home_codes))}). The parent decides, not where the servers stand: under the US CLOUD Act, US "
            "authorities can demand data from a US company and its subsidiaries wherever the data is stored, so a Microsoft mailbox in an "
            "Amsterdam data centre counts as US. Ownership is dated: a completed acquisition moves a provider to its new parent's "
            "jurisdiction from that day on, without any DNS record changing. A domain counts once in a share, however many foreign "
            "providers it has.",
            "An address that no provider's published IP ranges claim (a mail server, web server or name server) is attributed through "
            "the network that routes it, its autonomous system (AS), looked up in an IP-to-AS table: to the catalog provider that lists "
            "that AS, otherwise to the AS's holder itself, shown as as<number> with the AS's name and with the country the AS is "
            "registered in as its jurisdiction. Such a claim is at most indicated, never confirmed: the AS says who routes the address, "
            "not who runs the machine, and its registration country is the holder's own, not its ultimate parent's. An AS holder "
            "registered outside home therefore counts as foreign, and one registered at home counts as home even if a foreign company "
            "owns it. Where neither the catalog nor the AS table knows a provider, or the AS's registry gives no country, the "
            "jurisdiction is unknown, and an unknown jurisdiction is never counted as foreign.",
        ]),
        *_unverified(report),
        ("What DNS can and cannot show", [
            "Every claim rests on public DNS: MX, SPF and DKIM records, autodiscover and Teams/Skype records, CNAME chains, name servers, "
            "and addresses matched against the providers' published IP ranges. DNS cannot show services that leave no trace in it: "
            "software-as-a-service used through the browser (file sharing, HR, case management), hosting behind a proxy at home, internal "
            "systems. The shares are therefore lower bounds. A record can also outlive its use (an old DKIM key); the evidence of every "
            "claim is listed so that anyone can check it.",
        ]),
        ("Confidence", [
            "confirmed: a record only this provider's service uses, e.g. MX to mail.protection.outlook.com.",
            "indicated: a strong sign, e.g. an SPF include (the provider may send mail for the domain), or an address attributed "
            "through the AS that routes it.",
            f"inferred: concluded from another service, e.g. Google Meet from Google Workspace mail; {inferred}.",
        ]),
        ("Incomplete scans", [
            "A domain whose scan had errors (a DNS timeout or SERVFAIL, a detector that did not finish) is marked incomplete. If nothing "
            "foreign was found it counts as unknown, never as clean; a foreign dependency found despite errors counts.",
        ]),
    ]


def _unverified(report: Report) -> list[tuple[str, list[str]]]:
    """The catalog's providers whose owners could not be verified, and those this report counts."""
    unverified = report.catalog.get("unverified") or []
    if not unverified:
        return []
    counted = report.figures["providers"]
    here = [f"{p['name']} ({counted[p['id']]['targets']} domain{'s' if counted[p['id']]['targets'] != 1 else ''})"
            for p in unverified if p["id"] in counted]
    return [("Ownership not verified", [
        f"The ownership of {len(unverified)} of the catalog's {report.catalog['providers']} providers is not verified: "
        f"{', '.join(p['name'] for p in unverified)}. For each, the owners above the company the catalog names as its parent "
        "(usually the operating company itself) could not be established from public sources; that company is taken as the top of "
        "the chain and its own jurisdiction counts. An owner elsewhere would change it.",
        f"Of these, this report counts {', '.join(here)}." if here else "None of these is counted in this report.",
    ])]


def source_words(report: Report) -> str:
    """Where the figures come from and when, in words."""
    loaded = report.loaded
    scanned = loaded.scanned
    if loaded.kind == "scan":
        return f"scan results {loaded.path} ({f'written {when(scanned[1])}' if scanned else 'scan date not known'})"
    if loaded.kind == "agent":  # the agent keeps the time of each target's last scan without errors
        span = f"last complete scans between {when(scanned[0])} and {when(scanned[1])}" if scanned else "no complete scan yet"
        return f"confirmed dependencies from the running agent; {span}"
    span = f"targets last scanned between {when(scanned[0])} and {when(scanned[1])}" if scanned else "no scan recorded yet"
    return f"confirmed dependencies from the agent's state {loaded.path}; {span}"


def when(moment: float | None, *, time: bool = True) -> str:
    if moment is None:
        return "unknown"
    return dt.datetime.fromtimestamp(moment, dt.UTC).strftime("%Y-%m-%d %H:%M UTC" if time else "%Y-%m-%d")
