"""The headline figures of a scan campaign, computed in ONE place.

`dijkwacht scan` prints them at the end of a campaign (and writes them with --summary-json);
a report built from scan results must use this module, so that every figure means the same
wherever it appears. The input is scan results: the objects `dijkwacht scan --format json`
prints (dicts, as read back from a JSON or JSONL file) or TargetResults; the functions are
pure and keep nothing but counts.

Definitions:

* A dependency **counts** unless its confidence is `inferred` (then only with
  `count_inferred`, as `[agent] count_inferred` decides for the metrics, the state and the
  agent's alerts, which use `counted()` from here too).
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

Built on it, for `dijkwacht report` and anything else that shows these numbers:
`status()` (one target: foreign, clean or unknown), `with_groups()` (`figures()` and the same
per value of a label), `share()` and `shares()` (every percentage, rounded once, here), `change_kind()` and
`change_figures()` (confirmed changes from the agent's history: into and out of home,
ownership changes).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from .catalog import is_foreign
from .detector import INFERRED

SCHEMA = 1
UNKNOWN_JURISDICTION = "unknown"
D = TypeVar("D")


def _as_object(result: Any) -> Mapping[str, Any]:
    # dict first: an ABC isinstance check costs more than the rest of a small result's count
    return result if type(result) is dict or isinstance(result, Mapping) else result.to_json()


def _confidence(dependency: Any) -> str:
    """A dependency's confidence: a scan JSON object's (dict first, see _as_object) or a Dependency's."""
    if type(dependency) is dict or isinstance(dependency, Mapping):
        return dependency.get("confidence")
    return dependency.confidence


def counts(dependency: Any, count_inferred: bool = False) -> bool:
    """Whether a dependency (a scan JSON object or a scanner Dependency) counts in the figures,
    the metrics, the state and alerts: an inferred one (a guess from another service, such as
    Meet from Workspace mail) only with `count_inferred`."""
    return count_inferred or _confidence(dependency) != INFERRED


def counted(dependencies: Iterable[D], count_inferred: bool = False) -> list[D]:
    """The dependencies that count (see `counts`), in their order."""
    return list(dependencies) if count_inferred else [d for d in dependencies if _confidence(d) != INFERRED]


def _status(any_foreign: bool, errors: Any) -> str:
    return "foreign" if any_foreign else ("unknown" if errors else "clean")


def status(result: Any, *, count_inferred: bool = False) -> str:
    """One target's place in the headline: `foreign`, `clean` or `unknown` (see the definitions)."""
    obj = _as_object(result)
    return _status(any(d.get("foreign") for d in counted(obj.get("dependencies", ()), count_inferred)), obj.get("errors"))


def _digest(obj: Mapping[str, Any], count_inferred: bool) -> tuple:
    """What one result adds to a tally: its status, errors and, per category, role,
    jurisdiction and provider, whether it has one and a foreign one (a target counts once per key)."""
    errors = obj.get("errors") or ()
    categories: dict[str, bool] = {}
    roles: dict[str, bool] = {}
    jurisdictions: dict[str, bool] = {}
    seen: dict[str, list[Any]] = {}  # provider -> [foreign, categories, first dependency]
    any_foreign = False
    for d in counted(obj.get("dependencies", ()), count_inferred):
        foreign = bool(d.get("foreign"))
        any_foreign = any_foreign or foreign
        category = d.get("category")
        if category:
            categories[category] = categories.get(category, False) or foreign
        role = d.get("role")
        if role:
            roles[role] = roles.get(role, False) or foreign
        juris = d.get("jurisdiction") or UNKNOWN_JURISDICTION
        jurisdictions[juris] = jurisdictions.get(juris, False) or foreign
        entry = seen.get(d["provider"])
        if entry is None:
            seen[d["provider"]] = [foreign, {category or ""}, d]
        else:
            entry[0] = entry[0] or foreign
            entry[1].add(category or "")
    return _status(any_foreign, errors), errors, categories, roles, jurisdictions, seen


class Tally:
    """Counts results one at a time (a campaign of any size in constant memory per key)."""

    def __init__(self, *, count_inferred: bool = False) -> None:
        self.count_inferred = count_inferred
        self.targets = self.foreign = self.clean = self.unknown = self.incomplete = self.retried = 0
        self.still_failed: list[str] = []
        self.categories: dict[str, list[int]] = {}  # key -> [targets, foreign]
        self.roles: dict[str, list[int]] = {}
        self.providers: dict[str, dict[str, Any]] = {}
        self.jurisdictions: dict[str, list[int]] = {}
        self.labels: dict[str, dict[str, Counter[str]]] = {}
        self.errors_by_detector: Counter[str] = Counter()

    def add(self, result: Any) -> None:
        """One target's result: a scan JSON object or a TargetResult."""
        obj = _as_object(result)
        self.add_digest(obj, _digest(obj, self.count_inferred))

    def add_digest(self, obj: Mapping[str, Any], digest: tuple) -> None:
        """One target's result with its digest (`_digest`), which several tallies can share."""
        status, errors, categories, roles, jurisdictions, seen = digest
        self.targets += 1
        setattr(self, status, getattr(self, status) + 1)
        if errors:
            self.incomplete += 1
            for detector in {e.get("detector", "") for e in errors}:
                self.errors_by_detector[detector] += 1
        if obj.get("retried"):
            self.retried += 1
            if errors:
                self.still_failed.append(obj.get("target", ""))
        for table, found in ((self.categories, categories), (self.roles, roles), (self.jurisdictions, jurisdictions)):
            for k, foreign in found.items():
                counts = table.get(k)
                if counts is None:
                    counts = table[k] = [0, 0]
                counts[0] += 1
                counts[1] += foreign
        for provider, (foreign, cats, dep) in seen.items():
            row = self.providers.get(provider)
            if row is None:
                row = self.providers[provider] = {
                    "parent": dep.get("parent", ""), "jurisdiction": dep.get("jurisdiction", ""),
                    "targets": 0, "foreign": 0, "categories": {},
                }
            row["targets"] += 1
            row["foreign"] += foreign
            per = row["categories"]
            for category in cats:
                per[category] = per.get(category, 0) + 1
        for key, value in (obj.get("labels") or {}).items():
            counts = self.labels.setdefault(key, {}).setdefault(value, Counter())
            counts["targets"] += 1
            counts[status] += 1

    def figures(self) -> dict[str, Any]:
        def pairs(table: dict[str, list[int]]) -> dict[str, dict[str, int]]:
            ordered = sorted(table.items(), key=lambda kv: (-kv[1][0], kv[0]))
            return {k: {"targets": targets, "foreign": foreign} for k, (targets, foreign) in ordered}

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


def with_groups(results: Iterable[Any], keys: Iterable[str], *, count_inferred: bool = False) -> tuple[dict[str, Any], dict[str, dict[str, dict[str, Any]]]]:
    """`figures()` of all results, and per label in `keys` the `figures()` of the targets with
    each of its values ("" for targets without the label), in one pass: every figure of a group
    means exactly what it means for all targets."""
    whole = Tally(count_inferred=count_inferred)
    keys = list(keys)
    tallies: dict[str, dict[str, Tally]] = {key: {} for key in keys}
    for result in results:
        obj = _as_object(result)
        digest = _digest(obj, count_inferred)
        whole.add_digest(obj, digest)
        labels = obj.get("labels") or {}
        for key in keys:
            value = labels.get(key, "")
            tally = tallies[key].get(value)
            if tally is None:
                tally = tallies[key][value] = Tally(count_inferred=count_inferred)
            tally.add_digest(obj, digest)
    return whole.figures(), {key: {value: t.figures() for value, t in sorted(groups.items())} for key, groups in tallies.items()}


def share(part: int, whole: int) -> float | None:
    """`part` as a percentage of `whole`, rounded to one decimal; None when `whole` is 0.
    Every percentage a summary or report shows is this number."""
    return round(100 * part / whole, 1) if whole else None


def shares(fig: Mapping[str, Any]) -> dict[str, Any]:
    """The percentages of `figures()`' counts, under the same keys. Of all targets:
    `foreign`, `clean`, `unknown`, `incomplete`; per category, role and jurisdiction `any`
    (targets with a counted dependency of that kind), `foreign` (with a foreign one) and
    `foreign_of_any` (foreign as a share of `any`, not of all); per provider `any`; per label
    value `foreign`, `clean`, `unknown` of that value's targets."""
    n = fig["targets"]

    def kinds(table: Mapping[str, Mapping[str, int]]) -> dict[str, dict[str, float | None]]:
        return {k: {"any": share(c["targets"], n), "foreign": share(c["foreign"], n), "foreign_of_any": share(c["foreign"], c["targets"])}
                for k, c in table.items()}

    return {
        **{key: share(fig[key], n) for key in ("foreign", "clean", "unknown", "incomplete")},
        "categories": kinds(fig["categories"]),
        "roles": kinds(fig["roles"]),
        "jurisdictions": kinds(fig["jurisdictions"]),
        "providers": {p: {"any": share(r["targets"], n)} for p, r in fig["providers"].items()},
        "labels": {key: {value: {s: share(c[s], c["targets"]) for s in ("foreign", "clean", "unknown")} for value, c in values.items()}
                   for key, values in fig["labels"].items()},
    }


# How a confirmed change moved a (target, category) relative to home (the metrics count them so too).
CHANGE_KINDS = ("home_to_foreign", "foreign_to_foreign", "foreign_to_home", "other")


def change_kind(from_jurisdiction: str, to_jurisdiction: str, to_foreign: bool, home: frozenset[str]) -> str:
    """How a confirmed change (its comma-joined jurisdictions before and after, and whether a
    foreign provider came in) moved relative to home. home_to_foreign: a foreign provider came
    in where none was, or took a home one's place; foreign_to_foreign: a foreign provider came
    in next to or instead of another foreign one; foreign_to_home: nothing foreign is left;
    other: anything else (e.g. home to home)."""
    before = {j for j in from_jurisdiction.split(",") if j}
    after = {j for j in to_jurisdiction.split(",") if j}
    was_foreign = any(is_foreign(j, home) for j in before)
    if to_foreign:
        home_lost = any(not is_foreign(j, home) for j in before - after)
        return "home_to_foreign" if not was_foreign or home_lost else "foreign_to_foreign"
    if was_foreign and not any(is_foreign(j, home) for j in after):
        return "foreign_to_home"
    return "other"


def change_figures(changes: Iterable[Mapping[str, Any]], home: frozenset[str]) -> dict[str, Any]:
    """Counts of confirmed changes (`Change.to_json()` objects): in all, targets concerned, per
    kind (CHANGE_KINDS), per reason (`dns`: records changed; `ownership`: a provider's parent
    changed) and per category (`changes` and one count per kind).
    Keys (stable): `changes, targets, kinds, reasons, categories`."""
    kinds: Counter[str] = Counter({k: 0 for k in CHANGE_KINDS})
    reasons: Counter[str] = Counter({"dns": 0, "ownership": 0})
    categories: dict[str, Counter[str]] = {}
    targets: set[str] = set()
    total = 0
    for change in changes:
        kind = change_kind(change["from_jurisdiction"], change["to_jurisdiction"], change["to_foreign"], home)
        total += 1
        targets.add(change["target"])
        kinds[kind] += 1
        reasons[change["reason"]] += 1
        per = categories.setdefault(change["category"], Counter({"changes": 0, **{k: 0 for k in CHANGE_KINDS}}))
        per["changes"] += 1
        per[kind] += 1
    return {
        "changes": total,
        "targets": len(targets),
        "kinds": dict(kinds),
        "reasons": dict(reasons),
        "categories": {c: dict(per) for c, per in sorted(categories.items())},
    }


def _share(part: int, whole: int) -> str:
    value = share(part, whole)
    return "-" if value is None else f"{value:.1f} %"


def headline(fig: Mapping[str, Any]) -> str:
    """The headline in words: foreign, clean and unknown targets (the summary's and the scan table's last line)."""
    n = fig["targets"]
    return (f"{n} targets: {fig['foreign']} with a foreign dependency ({_share(fig['foreign'], n)}), {fig['clean']} without, "
            f"{fig['unknown']} unknown (errors, nothing foreign found)")


def render_summary(fig: Mapping[str, Any], *, top: int = 10, listed: int = 10) -> str:
    """The campaign summary for people (stderr at the end of a scan)."""
    n = fig["targets"]
    lines = [
        headline(fig),
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
