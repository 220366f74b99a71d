"""The headline figures of a scan campaign, computed in ONE place.

`dijkwacht scan` prints them at the end of a campaign (and writes them with --summary-json);
a report built from scan results must use this module, so that every figure means the same
wherever it appears. The input is scan results: the objects `dijkwacht scan --format json`
prints (dicts, as read back from a JSON or JSONL file) or TargetResults; the functions are
pure and keep nothing but counts.

Definitions:

* A dependency **counts** unless its confidence is `inferred` (then only with
  `count_inferred`, as `[agent] count_inferred` decides for the metrics).
* A target is **foreign** when at least one counted dependency is foreign.
* A target is **incomplete** when its result has errors: a lookup failed or a detector did
  not finish, so what it shows is a lower bound. An incomplete target with no foreign
  dependency found is **unknown**, never clean.
* A target is **clean** when it is complete and has no foreign dependency.
  So `targets == foreign + clean + unknown`.
* Per category, role, provider and jurisdiction: the number of targets with at least one
  counted dependency of that kind (`targets`), and of those, how many with a foreign one.
  Jurisdiction is that of the provider's ultimate parent ("unknown" when the catalog has none).
* Per group label (`labels` of the targets file or config, as the scan JSON carries them):
  for every label name and value, the targets, foreign, clean and unknown counts.
* A target scanned a second time after transient failures is **retried**; if it still has
  errors it is listed in `still_failed`.

Keys of `figures()`' result (stable; `schema` changes if a key's meaning does):
`schema, count_inferred, targets, foreign, clean, unknown, incomplete, retried,
still_failed, categories, roles, providers, jurisdictions, labels, errors`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

SCHEMA = 1
INFERRED = "inferred"
UNKNOWN_JURISDICTION = "unknown"


def _as_object(result: Any) -> Mapping[str, Any]:
    return result if isinstance(result, Mapping) else result.to_json()


class Tally:
    """Counts results one at a time (a campaign of any size in constant memory per key)."""

    def __init__(self, *, count_inferred: bool = False) -> None:
        self.count_inferred = count_inferred
        self.targets = self.foreign = self.clean = self.unknown = self.incomplete = self.retried = 0
        self.still_failed: list[str] = []
        self.categories: dict[str, Counter[str]] = {}
        self.roles: dict[str, Counter[str]] = {}
        self.providers: dict[str, dict[str, Any]] = {}
        self.jurisdictions: dict[str, Counter[str]] = {}
        self.labels: dict[str, dict[str, Counter[str]]] = {}
        self.errors_by_detector: Counter[str] = Counter()

    def add(self, result: Any) -> None:
        """One target's result: a scan JSON object or a TargetResult."""
        obj = _as_object(result)
        deps = [d for d in obj.get("dependencies", ()) if self.count_inferred or d.get("confidence") != INFERRED]
        errors = obj.get("errors") or ()
        foreign = any(d.get("foreign") for d in deps)
        self.targets += 1
        if errors:
            self.incomplete += 1
            for detector in {e.get("detector", "") for e in errors}:
                self.errors_by_detector[detector] += 1
        status = "foreign" if foreign else ("unknown" if errors else "clean")
        setattr(self, status, getattr(self, status) + 1)
        if obj.get("retried"):
            self.retried += 1
            if errors:
                self.still_failed.append(obj.get("target", ""))
        self._kinds(self.categories, deps, lambda d: d.get("category"))
        self._kinds(self.roles, deps, lambda d: d.get("role"))
        self._kinds(self.jurisdictions, deps, lambda d: d.get("jurisdiction") or UNKNOWN_JURISDICTION)
        seen: dict[str, dict[str, Any]] = {}
        for d in deps:
            entry = seen.setdefault(d["provider"], {"foreign": False, "categories": set(), "dep": d})
            entry["foreign"] = entry["foreign"] or bool(d.get("foreign"))
            entry["categories"].add(d.get("category", ""))
        for provider, entry in seen.items():
            row = self.providers.get(provider)
            if row is None:
                dep = entry["dep"]
                row = self.providers[provider] = {
                    "parent": dep.get("parent", ""), "jurisdiction": dep.get("jurisdiction", ""),
                    "targets": 0, "foreign": 0, "categories": Counter(),
                }
            row["targets"] += 1
            row["foreign"] += entry["foreign"]
            row["categories"].update(entry["categories"])
        for key, value in (obj.get("labels") or {}).items():
            counts = self.labels.setdefault(key, {}).setdefault(value, Counter())
            counts["targets"] += 1
            counts[status] += 1

    @staticmethod
    def _kinds(table: dict[str, Counter[str]], deps: list[Mapping[str, Any]], key) -> None:
        found: dict[str, bool] = {}
        for d in deps:
            k = key(d)
            if k:
                found[k] = found.get(k, False) or bool(d.get("foreign"))
        for k, foreign in found.items():
            counts = table.setdefault(k, Counter())
            counts["targets"] += 1
            counts["foreign"] += foreign

    def figures(self) -> dict[str, Any]:
        def pairs(table: dict[str, Counter[str]]) -> dict[str, dict[str, int]]:
            ordered = sorted(table.items(), key=lambda kv: (-kv[1]["targets"], kv[0]))
            return {k: {"targets": c["targets"], "foreign": c["foreign"]} for k, c in ordered}

        providers = sorted(self.providers.items(), key=lambda kv: (-kv[1]["targets"], kv[0]))
        return {
            "schema": SCHEMA,
            "count_inferred": self.count_inferred,
            "targets": self.targets,
            "foreign": self.foreign,
            "clean": self.clean,
            "unknown": self.unknown,
            "incomplete": self.incomplete,
            "retried": self.retried,
            "still_failed": list(self.still_failed),
            "categories": pairs(self.categories),
            "roles": pairs(self.roles),
            "providers": {
                p: {"parent": r["parent"], "jurisdiction": r["jurisdiction"], "targets": r["targets"], "foreign": r["foreign"],
                    "categories": dict(sorted(r["categories"].items()))}
                for p, r in providers
            },
            "jurisdictions": pairs(self.jurisdictions),
            "labels": {
                key: {value: {k: c[k] for k in ("targets", "foreign", "clean", "unknown")} for value, c in sorted(values.items())}
                for key, values in sorted(self.labels.items())
            },
            "errors": {"targets": self.incomplete, "by_detector": dict(sorted(self.errors_by_detector.items()))},
        }


def figures(results: Iterable[Any], *, count_inferred: bool = False) -> dict[str, Any]:
    """The headline figures of `results` (scan JSON objects or TargetResults)."""
    tally = Tally(count_inferred=count_inferred)
    for result in results:
        tally.add(result)
    return tally.figures()


def _share(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f} %" if whole else "-"


def render_summary(fig: Mapping[str, Any], *, top: int = 10, listed: int = 10) -> str:
    """The campaign summary for people (stderr at the end of a scan)."""
    n = fig["targets"]
    lines = [
        f"{n} targets: {fig['foreign']} with a foreign dependency ({_share(fig['foreign'], n)}), {fig['clean']} without, "
        f"{fig['unknown']} unknown (errors, nothing foreign found)",
        f"with errors: {fig['incomplete']} ({_share(fig['incomplete'], n)})"
        + (f"; retried {fig['retried']}, still failing {len(fig['still_failed'])}" if fig["retried"] else ""),
    ]
    if fig["still_failed"]:
        shown = fig["still_failed"][:listed]
        more = len(fig["still_failed"]) - len(shown)
        lines.append("  still failing: " + ", ".join(shown) + (f" and {more} more" if more else ""))
    for title, key in (("per category", "categories"), ("per role", "roles")):
        table = fig[key]
        if table:
            lines.append(f"{title} (targets with one / with a foreign one):")
            width = max(len(k) for k in table)
            lines.extend(f"  {k:<{width}}  {c['targets']:>7}  {c['foreign']:>7} ({_share(c['foreign'], c['targets'])})" for k, c in table.items())
    if fig["providers"]:
        lines.append(f"top {min(top, len(fig['providers']))} providers (targets):")
        rows = list(fig["providers"].items())[:top]
        width = max(len(p) for p, _ in rows)
        lines.extend(f"  {p:<{width}}  {r['jurisdiction'] or '?':<2}  {r['targets']:>7}  {r['parent']}" for p, r in rows)
    return "\n".join(lines) + "\n"
