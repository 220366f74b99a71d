"""The report as Markdown, CSV and JSON.

Markdown has sections 1-4 and 6 (the domain table with `--domains`); CSV one row per
(domain, category, provider) with every field, plus one row for a domain without any
dependency, so that every domain is in it; JSON every figure under the stable keys of
`to_json()`. Values from DNS are escaped for each format: Markdown punctuation that could
start markup or raw HTML, and spreadsheet formulas in CSV.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

from ..figures import CHANGE_KINDS, counts, share, shares as shares_of, status
from . import Report, home_words, label_keys, method, no_providers, source_words, to_json, when

_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|&~#!])")


def _md(value: Any) -> str:
    """A value as literal Markdown text: one line, markup characters escaped."""
    return _MD_SPECIAL.sub(r"\\\1", " ".join(str(value).split()))


def _n(value: int) -> str:
    return f"{value:,}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} %"


def _md_table(head: Sequence[str], rows: Iterable[Sequence[str]], numeric: Iterable[int] = ()) -> list[str]:
    nums = set(numeric)
    lines = ["| " + " | ".join(_md(h) for h in head) + " |", "|" + "|".join("---:" if i in nums else "---" for i in range(len(head))) + "|"]
    lines.extend("| " + " | ".join(row) + " |" for row in rows)
    return lines + [""]


def render_markdown(report: Report, *, domains: bool = False) -> str:
    fig, sh = report.figures, report.shares
    n = fig["targets"]
    home = home_words(report.home)
    out = [f"# {_md(report.title)}", "", f"From {_md(source_words(report))}. Home: {_md(home)}. Made {when(report.generated)}.", ""]

    out += ["## 1. The headline", "",
            f"**{_n(fig['foreign'])} of {_n(n)} domains ({_pct(sh['foreign'])}) depend on at least one provider whose ultimate parent "
            f"falls outside {_md(home)}.**", "",
            f"- {_n(fig['clean'])} ({_pct(sh['clean'])}) without a foreign dependency, as far as DNS shows",
            f"- {_n(fig['unknown'])} ({_pct(sh['unknown'])}) unknown: incomplete, nothing foreign found (never counted as clean)",
            f"- {_n(fig['incomplete'])} ({_pct(sh['incomplete'])}) incomplete in all (errors in the scan)", ""]
    for key, title, noun in (("categories", "Per category", "Category"), ("roles", "Per role", "Role")):
        if fig[key]:
            out += [f"### {title}", ""]
            out += _md_table([noun, "Domains with one", "With a foreign one", "Foreign, share of all domains", "Foreign, share of those with one"], (
                [_md(k), _n(c["targets"]), _n(c["foreign"]), _pct(sh[key][k]["foreign"]), _pct(sh[key][k]["foreign_of_any"])] for k, c in fig[key].items()
            ), numeric=(1, 2, 3, 4))

    out += ["## 2. Providers and jurisdictions", ""]
    if fig["providers"]:
        out += _md_table(["Provider", "Ultimate parent", "Jurisdiction", "Domains", "Share of all domains", "Foreign"], (
            [_md(p), _md(r["parent"] or "unknown"), _md(r["jurisdiction"] or "unknown"), _n(r["targets"]), _pct(sh["providers"][p]["any"]),
             "yes" if r["foreign"] else "no"] for p, r in fig["providers"].items()
        ), numeric=(3, 4))
        out += _md_table(["Jurisdiction", "Domains", "Share of all domains", f"Outside {home}"], (
            [_md(j), _n(c["targets"]), _pct(sh["jurisdictions"][j]["any"]), "yes" if c["foreign"] else "no"] for j, c in fig["jurisdictions"].items()
        ), numeric=(1, 2))
    else:
        out += [no_providers(report), ""]

    out += ["## 3. Per group", ""]
    if not report.groups:
        out += ["The domains carry no labels to group them by (`--group-by LABEL`).", ""]
    for key, values in report.groups.items():
        cats = sorted({c for f in values.values() for c in f["categories"]}, key=lambda c: -fig["categories"].get(c, {}).get("targets", 0))
        out += [f"### By {_md(key)}", ""]
        rows = []
        for value, gfig in values.items():
            gsh = shares_of(gfig)
            rows.append([_md(value or f"(no {key})"), _n(gfig["targets"]), _n(gfig["foreign"]), _pct(gsh["foreign"]), _n(gfig["unknown"]),
                         _n(gfig["incomplete"]), *(_pct(gsh["categories"][c]["foreign"] if c in gsh["categories"] else share(0, gfig["targets"])) for c in cats)])
        out += _md_table([key, "Domains", "Foreign", "Share", "Unknown", "Incomplete", *(f"{c}: foreign" for c in cats)], rows, numeric=range(1, 6 + len(cats)))

    out += ["## 4. Changes", ""]
    if report.changes is None:
        out += ["These figures come from one scan; changes over time come from the agent's history (`--state STATE.db --since DATE`).", ""]
    else:
        ch = report.changes
        out += [f"Since {when(report.since, time=False)}: **{_n(ch['kinds']['home_to_foreign'])}** moves out of {_md(home)} and "
                f"**{_n(ch['kinds']['foreign_to_home'])}** moves home; **{_n(ch['reasons']['ownership'])}** of all changes came from a change of "
                f"owner, without any DNS change ({_n(ch['changes'])} confirmed changes for {_n(ch['targets'])} domains).", ""]
        if ch["changes"]:
            out += _md_table(["Category", "Changes", *CHANGE_KINDS], (
                [_md(c), _n(per["changes"]), *(_n(per[k]) for k in CHANGE_KINDS)] for c, per in ch["categories"].items()
            ), numeric=range(1, 2 + len(CHANGE_KINDS)))
            out += _md_table(["When", "Domain", "Category", "Reason", "From", "To"], (
                [_md(c["at"]), _md(c["target"]), _md(c["category"]), _md(c["reason"]),
                 _md(f'{", ".join(c["from"]) or "none"} ({c["from_jurisdiction"] or "?"})'),
                 _md(f'{", ".join(c["to"]) or "none"} ({c["to_jurisdiction"] or "?"})')] for c in reversed(report.loaded.changes or [])
            ))

    if domains:
        out += ["## 5. Every domain", ""]
        out += _md_table(["Domain", "Status", "Category", "Role", "Provider", "Ultimate parent", "Jurisdiction", "Confidence", "Evidence"], (
            row for r in report.results for row in _md_domain(r, report.count_inferred)
        ))

    out += ["## 6. Method and limits", ""]
    for heading, paragraphs in method(report):
        out += [f"### {_md(heading)}", ""]
        for paragraph in paragraphs:
            out += [_md(paragraph), ""]
    cat = report.catalog
    out += ["### Data and dates", "",
            f"- Source: {_md(source_words(report))}",
            f"- Report made: {when(report.generated)}",
            f"- Catalog: {_n(cat['providers'])} providers; " + "; ".join(f"{_md(f['file'])} ({when(f['updated'], time=False)})" for f in cat["files"])
            + (f"; newest ownership record {cat['newest_ownership_record']}" if cat.get("newest_ownership_record") else "")]
    if report.ip_data:
        out.append("- IP data: " + ", ".join(f"{_md(f['provider'])} {when(f['updated'], time=False)}" for f in report.ip_data))
    else:
        out.append("- IP data: no IP range files given to the report (--data-dir)")
    out += [f"- {_md(note)}" for note in report.loaded.notes]
    return "\n".join(out) + "\n"


def _md_domain(result: dict[str, Any], count_inferred: bool) -> Iterable[list[str]]:
    state = status(result, count_inferred=count_inferred) + (", incomplete" if result["errors"] else "")
    if not result["dependencies"]:
        yield [_md(result["target"]), state, "", "", "none found", "", "", "", _md("; ".join(f"{e['detector']}: {e['message']}" for e in result["errors"]))]
    for d in result["dependencies"]:
        yield [_md(result["target"]), state, _md(d["category"]), _md(d["role"]), _md(d["name"] or d["provider"]), _md(d["parent"] or "unknown"),
               _md(d["jurisdiction"] or "unknown") + (" (foreign)" if d["foreign"] else ""), _md(d["confidence"]), _md("; ".join(d["evidence"]))]


CSV_FIELDS = ("domain", "status", "incomplete", "errors", "category", "role", "provider", "name", "parent", "jurisdiction", "foreign",
              "confidence", "counted", "evidence")
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> str:
    """A CSV cell a spreadsheet shows as text: a leading formula character gets a quote."""
    text = value if isinstance(value, str) else ("true" if value is True else "false" if value is False else str(value))
    return "'" + text if text.startswith(_FORMULA) else text


def render_csv(report: Report) -> str:
    """One row per (domain, category, provider); a domain without dependencies gets one row
    with those fields empty. Labels follow as `label_<key>` columns; evidence lines are joined
    with " | "."""
    keys = label_keys(report.results)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*CSV_FIELDS, *(f"label_{k}" for k in keys)])
    for r in report.results:
        state = status(r, count_inferred=report.count_inferred)
        head = [r["target"], state, bool(r["errors"]), " | ".join(f"{e['detector']}: {e['message']}" for e in r["errors"])]
        labels = [r.get("labels", {}).get(k, "") for k in keys]
        rows = [[d["category"], d["role"], d["provider"], d["name"], d["parent"], d["jurisdiction"], d["foreign"], d["confidence"],
                 counts(d, report.count_inferred), " | ".join(d["evidence"])] for d in r["dependencies"]] or [[""] * 10]
        writer.writerows([_cell(v) for v in [*head, *row, *labels]] for row in rows)
    return buffer.getvalue()


def render_json(report: Report) -> str:
    return json.dumps(to_json(report), indent=2, ensure_ascii=False) + "\n"
