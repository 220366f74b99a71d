"""Rendering scan results: the JSON contract and a table for people."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable
from typing import TextIO

from .scanner import TargetResult, counted


async def write_json(results: AsyncIterator[TargetResult], out: TextIO) -> int:
    """Stream ONE JSON array, one object per target, in input order; return the count."""
    out.write("[")
    count = 0
    async for result in results:
        out.write(("\n" if not count else ",\n") + json.dumps(result.to_json(), ensure_ascii=False))
        count += 1
    out.write("\n]\n" if count else "]\n")
    return count


def _evidence(evidence: Iterable[str]) -> str:
    items = list(evidence)
    text = items[0] if items else ""
    return text + (f" (+{len(items) - 1} more)" if len(items) > 1 else "")


def render_table(results: Iterable[TargetResult], *, ip_data: bool = True, count_inferred: bool = False) -> str:
    """A per-target summary an ops engineer can read: one line per dependency, then errors.
    Inferred dependencies are listed but not counted as foreign unless `count_inferred`."""
    lines = []
    header = ("CATEGORY", "ROLE", "PROVIDER", "JURIS", "FOREIGN", "CONFIDENCE", "EVIDENCE")
    totals = {"targets": 0, "foreign": 0, "errors": 0}
    for result in results:
        totals["targets"] += 1
        deps = result.dependencies
        foreign = sum(d.foreign for d in counted(deps, count_inferred))
        totals["foreign"] += bool(foreign)
        totals["errors"] += bool(result.errors)
        summary = f"{len(deps)} dependencies, {foreign} foreign" + (f", {len(result.errors)} errors" if result.errors else "")
        lines.append(f"{result.target.domain}  ({summary})")
        rows = [(d.category, d.role, d.provider, d.jurisdiction or "?", "yes" if d.foreign else "no", d.confidence, _evidence(d.evidence)) for d in deps]
        if rows:
            widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(6)]
            for row in [header, *rows]:
                lines.append("  " + "  ".join(str(c).ljust(w) for c, w in zip(row[:6], widths)) + "  " + row[6])
        for error in result.errors:
            lines.append(f"  ! {error.detector}: {error.message}")
        lines.append("")
    lines.append(f"{totals['targets']} targets, {totals['foreign']} with a foreign dependency, {totals['errors']} with errors")
    if not ip_data:
        lines.append("note: no IP range data loaded (--data-dir); only hostname evidence was used")
    return "\n".join(lines) + "\n"
