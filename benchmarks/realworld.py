"""Real-world benchmark: dijkwacht's email detector against the ESORICS 2026 study of Austria.

The study (mxmap/esorics2026, see ../shared/data/real-world/README.md) gives, for 2,092
Austrian municipalities, the domain's MX host names, its SPF record and the study's own
classification of the email provider. This script serves exactly those records from
dijkwacht's in-process FakeDNSServer on 127.0.0.1, runs the real Scanner (email detector
only) over every domain and compares what dijkwacht reports with the study's labels.

    .venv/bin/python benchmarks/realworld.py [--limit N] [--json]

What is served, per domain: the apex MX records (the dataset's MX list, in its order, with
priorities 10, 20, ...; the real priorities are not in the dataset), the apex SPF TXT record,
and an SOA record so that a domain with neither MX nor SPF exists (NODATA, not NXDOMAIN).
Nothing else: the dataset has no addresses, DKIM, autodiscover or verification records, so
unknown MX hosts and SPF includes resolve to NXDOMAIN. Only 127.0.0.1 is contacted.

Class mapping (study label -> comparable class; our result -> comparable class)
-------------------------------------------------------------------------------
The study labels a domain microsoft / google / aws when it decides the mailbox is at that
US cloud, otherwise domestic / foreign by the ASN country of the MX host's address, or
unknown when it cannot decide (confidence 0). We see host names only, no addresses, so we
cannot tell an Austrian server from a German one. Hence the comparable classes are

    microsoft | google | aws | other

with study domestic and foreign both mapped to "other" ("some other provider or
self-hosted"). Study "unknown" rows are shown in the confusion matrix but excluded from every
metric: the study abstained there, so neither answer can be scored.

Our side, from the email dependencies of the scan result (finer columns in the matrix):

* microsoft / google / aws: the provider (amazon -> aws) is found by an MX host name match
  ("MX ..." evidence, confidence confirmed). This is the strict mapping.
* gateway: MX hosts only at catalog providers that are mail security gateways (Proofpoint,
  Hornetsecurity, Cisco, Sophos, ...: the catalog's `mail_gateway = true` providers, or GATEWAYS
  below for a catalog without that flag) -- no mailbox provider seen by MX.
* other-known: an MX host at a catalog provider that is not a US mailbox provider nor a
  gateway (IONOS, Hetzner, ...).
* unrecognised: no MX host is known to the catalog (self-hosted, Austrian hosters, gateways
  the catalog does not know such as SEPPmail).
* no-mx: the domain has no MX records.   * error: the scan reported an email error.

All of those collapse to "other". The gateway-aware mapping additionally counts a US mailbox
provider that is only *indicated* (an SPF include, or an SPF ip4:/ip6: network inside the
provider's published IP ranges: the provider sends the domain's mail) as that provider when
the MX is at a gateway or unrecognised -- the typical "SEPPmail / Sophos /
Hornetsecurity in front of Microsoft 365" setup that the study, using tenant and autodiscover
signals we cannot see here, labels microsoft. Microsoft wins if both Microsoft and Google are
indicated. It is not applied when the MX is at another known mailbox host (other-known), and
Amazon SES in SPF is a bulk sender, never a mailbox, so it is not promoted. Both mappings are
reported.

Duplicate domains (several municipalities sharing one domain, e.g. 122 Carinthian ones on
ktn.gde.at) are scanned and scored once, with the label of their most confident row.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dijkwacht.catalog import Catalog
from dijkwacht.config import AgentSettings
from dijkwacht.ipranges import IPRanges, load_ranges
from dijkwacht.runtime import build_runtime, load_data
from dijkwacht.scanner import TargetResult
from dijkwacht.targets import Target
from dijkwacht.testing import FakeDNSServer, Record

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
REAL_WORLD = SHARED / "real-world"
DATASET = REAL_WORLD / "esorics2026-providers-at.json"
IP_RANGES = SHARED / "ip-ranges"

STUDY_CLASSES = ("microsoft", "google", "aws", "domestic", "foreign", "unknown")
OUR_CLASSES = ("microsoft", "google", "aws", "gateway", "other-known", "unrecognised", "no-mx", "error")
CLASSES = ("microsoft", "google", "aws", "other")  # what is compared
US_MAILBOX = {"microsoft": "microsoft", "google": "google", "amazon": "aws"}  # catalog id -> class
PROMOTABLE = ("microsoft", "google")  # indicated-only providers the gateway-aware mapping accepts
# Catalog providers that filter mail in front of a mailbox elsewhere (not mailboxes themselves).
# Used only when the catalog does not flag them itself (`mail_gateway = true`, see gateways()).
GATEWAYS = frozenset(
    {"proofpoint", "hornetsecurity", "mimecast", "barracuda", "cisco", "broadcom", "trendmicro", "sophos", "n-able", "cloudflare"}
)
MODES = ("strict", "gateway-aware")
CONFIDENT = 80.0  # the study's own threshold for "sure"
# Targets in flight. The fake server shares the scan's event loop and answers over UDP. With
# 512 targets and 512 queries in flight (the defaults when this was written) its receive buffer
# (Linux default 208 KiB) overflowed, c-ares retried, and a few lookups per run timed out twice:
# scan errors, not detection results. 128 targets lose nothing and scan faster.
SCAN_CONCURRENCY = 128
# Second-level public suffixes that appear in the data (enough for grouping host names).
_TWO_LEVEL = frozenset({"gv.at", "co.at", "or.at", "ac.at", "priv.at", "co.uk", "org.uk", "com.au", "com.de"})


# --------------------------------------------------------------------------- dataset


@dataclass(frozen=True)
class Row:
    """One municipality of the study (or, after `unique_domains`, one domain)."""

    code: str
    name: str
    domain: str
    mx: tuple[str, ...]
    spf: str
    label: str  # study provider: microsoft/google/aws/domestic/foreign/unknown
    confidence: float
    gateway: str = ""
    municipalities: int = 1  # how many rows share this domain

    @property
    def study_class(self) -> str:
        return study_class(self.label)


def load_dataset(path: Path | str = DATASET) -> list[Row]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"real-world data missing: {path} (the repository expects ../shared/data/real-world beside it)")
    data = json.loads(path.read_text(encoding="utf-8"))
    rows = []
    for m in data["municipalities"]:
        rows.append(
            Row(
                code=str(m["code"]),
                name=m["name"],
                domain=m["domain"].lower().rstrip("."),
                mx=tuple(dict.fromkeys(h.lower().rstrip(".") for h in m["mx"])),
                spf=m.get("spf") or "",
                label=m["provider"],
                confidence=float(m.get("classification_confidence") or 0.0),
                gateway=m.get("gateway") or "",
            )
        )
    return rows


def unique_domains(rows: Iterable[Row]) -> list[Row]:
    """One row per domain, in first-seen order; the label is the most confident row's."""
    groups: dict[str, list[Row]] = {}
    for row in rows:
        groups.setdefault(row.domain, []).append(row)
    out = []
    for domain, group in groups.items():
        best = max(group, key=lambda r: r.confidence)  # max() keeps the first on ties
        out.append(Row(group[0].code, group[0].name, domain, group[0].mx, group[0].spf, best.label, best.confidence, best.gateway, len(group)))
    return out


def study_class(label: str) -> str:
    """The study's label as a comparable class; "unknown" stays unknown (not scored)."""
    if label in ("microsoft", "google", "aws"):
        return label
    if label in ("domestic", "foreign"):
        return "other"
    return "unknown"


def build_records(rows: Iterable[Row]) -> list[Record]:
    """The DNS data the dataset gives: apex MX (priorities 10, 20, ...) and SPF, plus an SOA."""
    records: list[Record] = []
    seen: set[str] = set()
    for row in rows:
        if row.domain in seen:
            continue
        seen.add(row.domain)
        records.append(Record(row.domain, "SOA", ("ns.invalid", "hostmaster.invalid", "1", "3600", "600", "86400", "300")))
        for i, host in enumerate(row.mx, start=1):
            records.append(Record(row.domain, "MX", (str(10 * i), host)))
        if row.spf:
            records.append(Record(row.domain, "TXT", (row.spf,)))
    return records


# --------------------------------------------------------------------------- scanning


@dataclass
class ScanRun:
    results: dict[str, TargetResult]
    seconds: float  # wall time of the scan itself (server and catalog loading excluded)
    queries: int  # queries the fake server received
    catalog: Catalog
    engine_queries: int = 0  # lookups dijkwacht's DNS engine sent (cache misses)
    nameserver: str = ""  # the only server the engine was given

    @property
    def rate(self) -> float:
        return len(self.results) / self.seconds if self.seconds else 0.0


async def scan_rows(
    rows: Sequence[Row],
    *,
    ranges: IPRanges | None = None,
    concurrency: int = SCAN_CONCURRENCY,
    dns_timeout: float = 2.0,
) -> ScanRun:
    """Serve the rows' records on 127.0.0.1 and scan every domain with the email detector."""
    async with FakeDNSServer(build_records(rows), host="127.0.0.1") as server:
        agent = AgentSettings(nameservers=(server.address,), dns_timeout=dns_timeout, dns_tries=2, concurrency=concurrency)
        data = load_data(agent)
        data.ranges = ranges if ranges is not None else IPRanges()
        runtime = build_runtime(agent, data, only=["email"])
        targets = [Target(d) for d in dict.fromkeys(r.domain for r in rows)]
        try:
            t0 = time.perf_counter()
            results = [r async for r in runtime.scanner.scan_all(targets, concurrency=concurrency)]
            seconds = time.perf_counter() - t0
        finally:
            await runtime.close()
        return ScanRun(
            {r.target.domain: r for r in results},
            seconds,
            sum(server.asked.values()),
            data.catalog,
            sum(runtime.engine.queries.values()),
            server.address,
        )


def default_ranges(use: bool = True) -> IPRanges:
    """The shared provider IP lists (they only matter for SPF ip4:/ip6: terms here)."""
    return load_ranges(IP_RANGES) if use and IP_RANGES.is_dir() else IPRanges()


# --------------------------------------------------------------------------- mapping


def _email(result: TargetResult):
    return [d for d in result.dependencies if d.category == "email"]


def mx_providers(result: TargetResult) -> set[str]:
    """Email providers found through an MX host name (not through addresses or SPF)."""
    return {d.provider for d in _email(result) if any(e.startswith("MX ") and "IP ranges" not in e for e in d.evidence)}


def gateways(catalog: Catalog) -> frozenset[str]:
    """The catalog's mail gateways (`mail_gateway = true`), else the built-in GATEWAYS list."""
    flagged = frozenset(pid for pid, p in catalog.providers.items() if getattr(p, "mail_gateway", False))
    return flagged or GATEWAYS


def our_label(result: TargetResult, row: Row, mode: str = "strict", gateway_ids: frozenset[str] = GATEWAYS) -> str:
    """dijkwacht's result as one of OUR_CLASSES (see the module docstring)."""
    if mode not in MODES:
        raise ValueError(mode)
    if any(e.detector == "email" for e in result.errors):
        return "error"
    confirmed_mx = {d.provider for d in _email(result) if d.confidence == "confirmed"} & mx_providers(result)
    for provider, cls in US_MAILBOX.items():
        if provider in confirmed_mx:
            return cls
    if not row.mx:
        return "no-mx"
    by_mx = mx_providers(result)
    if not by_mx:
        fine = "unrecognised"
    elif by_mx <= gateway_ids:
        fine = "gateway"
    else:
        fine = "other-known"
    if mode == "gateway-aware" and fine in ("gateway", "unrecognised"):
        indicated = {d.provider for d in _email(result)}
        for provider in PROMOTABLE:
            if provider in indicated:
                return US_MAILBOX[provider]
    return fine


def collapse(label: str) -> str:
    return label if label in ("microsoft", "google", "aws") else "other"


# --------------------------------------------------------------------------- metrics


@dataclass
class Scores:
    precision: float | None
    recall: float | None
    f1: float | None
    tp: int
    fp: int
    fn: int

    def to_json(self) -> dict[str, Any]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


def scores(pairs: Iterable[tuple[str, str]], positive: Iterable[str]) -> Scores:
    """Binary scores for "is in `positive`" over (study class, our class) pairs."""
    pos = set(positive)
    tp = fp = fn = 0
    for truth, ours in pairs:
        t, o = truth in pos, ours in pos
        tp += t and o
        fp += o and not t
        fn += t and not o
    p = tp / (tp + fp) if tp + fp else None
    r = tp / (tp + fn) if tp + fn else None
    f = 2 * p * r / (p + r) if p and r else (0.0 if p is not None and r is not None else None)
    return Scores(p, r, f, tp, fp, fn)


@dataclass
class Comparison:
    """The study against one mapping of our results, over one set of rows."""

    mode: str
    matrix: dict[str, Counter]  # study label -> Counter(our fine label)
    pairs: list[tuple[str, str]]  # (study class, our class) of the scored rows
    scored: int
    excluded: int  # study "unknown"

    @property
    def agreement(self) -> float:
        return sum(t == o for t, o in self.pairs) / len(self.pairs) if self.pairs else 0.0

    def score(self, cls: str) -> Scores:
        return scores(self.pairs, [cls])

    def us_score(self) -> Scores:
        return scores(self.pairs, ["microsoft", "google", "aws"])

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "scored": self.scored,
            "excluded_study_unknown": self.excluded,
            "agreement": round(self.agreement, 4),
            "confusion": {s: dict(self.matrix[s]) for s in self.matrix},
            "microsoft": self.score("microsoft").to_json(),
            "google": self.score("google").to_json(),
            "aws": self.score("aws").to_json(),
            "us_mailbox": self.us_score().to_json(),
        }


def compare(rows: Iterable[Row], labels: Mapping[str, str], mode: str) -> Comparison:
    """`labels`: domain -> our fine label under `mode`."""
    matrix: dict[str, Counter] = {s: Counter() for s in STUDY_CLASSES}
    pairs = []
    excluded = 0
    for row in rows:
        ours = labels[row.domain]
        matrix.setdefault(row.label, Counter())[ours] += 1
        truth = row.study_class
        if truth == "unknown":
            excluded += 1
            continue
        pairs.append((truth, collapse(ours)))
    return Comparison(mode, {s: c for s, c in matrix.items()}, pairs, len(pairs), excluded)


# --------------------------------------------------------------------------- diagnostics


def registrable(host: str) -> str:
    """A host name's registrable domain, roughly (enough to group MX hosts and includes)."""
    labels = host.lower().rstrip(".").split(".")
    n = 3 if ".".join(labels[-2:]) in _TWO_LEVEL else 2
    return ".".join(labels[-n:])


def spf_references(spf: str) -> list[str]:
    """Domains named by include: and redirect= in an SPF record (macros skipped)."""
    out = []
    for term in spf.split()[1:]:
        body = term.lstrip("+-~?")
        low = body.lower()
        if low.startswith("include:"):
            value = body[8:]
        elif low.startswith("redirect="):
            value = body[9:]
        else:
            continue
        value = value.lower().rstrip(".")
        if value and "%" not in value:
            out.append(value)
    return out


def _mx_summary(row: Row, catalog: Catalog) -> str:
    parts = set()
    for host in row.mx:
        facts = catalog.match_host("mx", host, "email")
        if facts:
            parts.update(f.provider for f in facts)
        elif host == row.domain or host.endswith("." + row.domain) or registrable(host) == registrable(row.domain):
            parts.add("own domain")
        else:
            parts.add(registrable(host))
    return ", ".join(sorted(parts)) or "none"


def _spf_summary(row: Row, catalog: Catalog) -> str:
    providers = sorted({f.provider for ref in spf_references(row.spf) for f in catalog.match_host("spf", ref, "email")} & set(US_MAILBOX))
    return "SPF -> " + ", ".join(providers) if providers else "no US mailbox in SPF"


def disagreements(rows: Iterable[Row], labels: Mapping[str, str], catalog: Catalog, top: int = 15) -> list[tuple[str, int, str]]:
    """Most common (study, ours, MX, SPF) patterns where the comparable classes differ."""
    patterns: Counter[str] = Counter()
    example: dict[str, str] = {}
    for row in rows:
        truth = row.study_class
        ours = labels[row.domain]
        if truth == "unknown" or truth == collapse(ours):
            continue
        key = f"study {row.label} / ours {ours} | MX {_mx_summary(row, catalog)} | {_spf_summary(row, catalog)}"
        patterns[key] += 1
        example.setdefault(key, row.domain)
    return [(k, n, example[k]) for k, n in patterns.most_common(top)]


@dataclass
class Unknowns:
    """Names the catalog does not know, with how many domains use them and the study's labels."""

    mx: list[tuple[str, int, dict[str, int], str]] = field(default_factory=list)  # suffix, domains, labels, example host
    spf: list[tuple[str, int, dict[str, int], str]] = field(default_factory=list)  # include domain, domains, labels, suffix
    self_hosted: int = 0  # domains whose unknown MX is under their own domain

    def to_json(self) -> dict[str, Any]:
        return {
            "mx_suffixes": [{"suffix": s, "domains": n, "study": lab, "example": ex} for s, n, lab, ex in self.mx],
            "spf_includes": [{"include": s, "domains": n, "study": lab, "suffix": suf} for s, n, lab, suf in self.spf],
            "self_hosted_domains": self.self_hosted,
        }


def unknown_names(rows: Iterable[Row], catalog: Catalog, top: int = 25) -> Unknowns:
    mx_domains: dict[str, set[str]] = defaultdict(set)
    mx_labels: dict[str, Counter] = defaultdict(Counter)
    mx_example: dict[str, str] = {}
    spf_domains: dict[str, set[str]] = defaultdict(set)
    spf_labels: dict[str, Counter] = defaultdict(Counter)
    self_hosted = 0
    for row in rows:
        own = False
        for host in row.mx:
            if catalog.match_host("mx", host, "email"):
                continue
            if registrable(host) == registrable(row.domain) or host.endswith("." + row.domain):
                own = True
                continue
            suffix = registrable(host)
            if row.domain not in mx_domains[suffix]:
                mx_labels[suffix][row.label] += 1
            mx_domains[suffix].add(row.domain)
            mx_example.setdefault(suffix, host)
        self_hosted += own
        for ref in dict.fromkeys(spf_references(row.spf)):
            if catalog.match_host("spf", ref, "email"):
                continue
            if registrable(ref) == registrable(row.domain):
                continue
            if row.domain not in spf_domains[ref]:
                spf_labels[ref][row.label] += 1
            spf_domains[ref].add(row.domain)

    def ranked(domains: dict[str, set[str]]) -> list[str]:
        return sorted(domains, key=lambda k: (-len(domains[k]), k))[:top]

    return Unknowns(
        [(s, len(mx_domains[s]), dict(mx_labels[s]), mx_example[s]) for s in ranked(mx_domains)],
        [(s, len(spf_domains[s]), dict(spf_labels[s]), registrable(s)) for s in ranked(spf_domains)],
        self_hosted,
    )


# --------------------------------------------------------------------------- the whole benchmark


@dataclass
class Benchmark:
    rows: list[Row]  # one per domain
    municipalities: int
    run: ScanRun
    labels: dict[str, dict[str, str]]  # mode -> domain -> our fine label
    all: dict[str, Comparison]  # mode -> comparison over every domain
    confident: dict[str, Comparison]  # mode -> comparison over classification_confidence >= 80
    by_municipality: dict[str, Comparison]  # mode -> every municipality row, shared domains counted each time
    patterns: dict[str, list[tuple[str, int, str]]]
    unknowns: Unknowns

    def to_json(self) -> dict[str, Any]:
        return {
            "dataset": str(DATASET.name),
            "municipalities": self.municipalities,
            "domains": len(self.rows),
            "study_counts": dict(Counter(r.label for r in self.rows)),
            "our_counts": {m: dict(Counter(self.labels[m].values())) for m in MODES},
            "all": {m: self.all[m].to_json() for m in MODES},
            f"confidence_ge_{CONFIDENT:g}": {m: self.confident[m].to_json() for m in MODES},
            "by_municipality": {m: self.by_municipality[m].to_json() for m in MODES},
            "disagreements": {m: [{"pattern": p, "domains": n, "example": ex} for p, n, ex in self.patterns[m]] for m in MODES},
            "unknown": self.unknowns.to_json(),
            "timing": {
                "domains": len(self.run.results),
                "seconds": round(self.run.seconds, 3),
                "domains_per_second": round(self.run.rate, 1),
                "dns_queries": self.run.queries,
                "scan_errors": sum(bool(r.errors) for r in self.run.results.values()),
            },
        }


async def evaluate(
    rows: Sequence[Row] | None = None,
    *,
    limit: int | None = None,
    ranges: IPRanges | None = None,
    concurrency: int = SCAN_CONCURRENCY,
    top: int = 15,
) -> Benchmark:
    """Load (unless given), scan and compare. `limit` keeps the first N distinct domains."""
    source = list(rows) if rows is not None else load_dataset()
    domains = unique_domains(source)
    if limit is not None:
        domains = domains[:limit]
    kept = {r.domain for r in domains}
    municipalities = sum(1 for r in source if r.domain in kept)
    run = await scan_rows(domains, ranges=ranges, concurrency=concurrency)
    gateway_ids = gateways(run.catalog)
    labels = {m: {r.domain: our_label(run.results[r.domain], r, m, gateway_ids) for r in domains} for m in MODES}
    confident = [r for r in domains if r.confidence >= CONFIDENT]
    return Benchmark(
        domains,
        municipalities,
        run,
        labels,
        {m: compare(domains, labels[m], m) for m in MODES},
        {m: compare(confident, labels[m], m) for m in MODES},
        {m: compare([r for r in source if r.domain in kept], labels[m], m) for m in MODES},
        {m: disagreements(domains, labels[m], run.catalog, top) for m in MODES},
        unknown_names(domains, run.catalog),
    )


# --------------------------------------------------------------------------- text report


def _fmt(value: float | None) -> str:
    return "  n/a" if value is None else f"{value:5.3f}"


def _matrix_text(c: Comparison) -> list[str]:
    cols = [o for o in OUR_CLASSES if any(c.matrix[s][o] for s in c.matrix)]
    width = max(len(o) for o in cols) + 1
    lines = ["  study \\ ours".ljust(16) + "".join(o.rjust(width) for o in cols) + "total".rjust(7)]
    for s in STUDY_CLASSES:
        row = c.matrix.get(s, Counter())
        if not sum(row.values()):
            continue
        lines.append(f"  {s:<14}" + "".join(str(row[o]).rjust(width) for o in cols) + str(sum(row.values())).rjust(7))
    return lines


def _scores_text(c: Comparison) -> list[str]:
    lines = [f"  {'class':<22}{'prec':>6}{'recall':>8}{'F1':>7}{'TP':>6}{'FP':>6}{'FN':>6}"]
    for name, s in (("microsoft", c.score("microsoft")), ("google", c.score("google")), ("aws", c.score("aws")), ("any US mailbox", c.us_score())):
        lines.append(f"  {name:<22}{_fmt(s.precision):>6}{_fmt(s.recall):>8}{_fmt(s.f1):>7}{s.tp:>6}{s.fp:>6}{s.fn:>6}")
    return lines


def report_text(b: Benchmark) -> str:
    out = [
        f"dijkwacht email detector vs ESORICS 2026 (Austria): {b.municipalities} municipalities, {len(b.rows)} distinct domains",
        "",
        "Study labels (per domain): " + ", ".join(f"{k} {v}" for k, v in Counter(r.label for r in b.rows).most_common()),
    ]
    for m in MODES:
        out.append(f"Our labels, {m}: " + ", ".join(f"{k} {v}" for k, v in Counter(b.labels[m].values()).most_common()))
    for m in MODES:
        for title, c in ((f"all domains", b.all[m]), (f"study confidence >= {CONFIDENT:g}", b.confident[m])):
            out += [
                "",
                f"== {m} mapping, {title}: {c.scored} scored ({c.excluded} study 'unknown' not scored), agreement {c.agreement:.3f}",
                *_matrix_text(c),
                "",
                *_scores_text(c),
            ]
    out.append("")
    for m in MODES:
        c = b.by_municipality[m]
        ms = c.score("microsoft")
        out.append(
            f"== {m} mapping, per municipality ({c.scored} scored, shared domains counted per municipality): "
            f"agreement {c.agreement:.3f}, microsoft precision {_fmt(ms.precision).strip()} recall {_fmt(ms.recall).strip()}"
        )
    for m in MODES:
        out += ["", f"== most common disagreements, {m} mapping (domains, example)"]
        out += [f"  {n:5d}  {p}  (e.g. {ex})" for p, n, ex in b.patterns[m]]
    u = b.unknowns
    out += ["", f"== MX host suffixes the catalog does not know (domains; study labels), {u.self_hosted} more domains self-hosted under their own name"]
    out += [f"  {n:5d}  {s:<32} {lab}  e.g. {ex}" for s, n, lab, ex in u.mx]
    out += ["", "== SPF include/redirect domains the catalog does not know (domains; study labels)"]
    out += [f"  {n:5d}  {s:<40} {lab}" for s, n, lab, _ in u.spf]
    run = b.run
    errors = sum(bool(r.errors) for r in run.results.values())
    out += [
        "",
        f"== timing: {len(run.results)} domains in {run.seconds:.2f} s = {run.rate:.0f} domains/s "
        f"({run.queries} DNS queries to 127.0.0.1, {errors} domains with scan errors)",
    ]
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, metavar="N", help="scan only the first N distinct domains")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    parser.add_argument("--dataset", type=Path, default=DATASET, help=f"study JSON (default {DATASET})")
    parser.add_argument("--no-ip-ranges", action="store_true", help="do not load the shared provider IP lists (used for SPF ip4:/ip6: terms)")
    parser.add_argument("--concurrency", type=int, default=SCAN_CONCURRENCY, help="targets scanned at once (default 128; see SCAN_CONCURRENCY)")
    parser.add_argument("--top", type=int, default=15, help="disagreement patterns to list (default 15)")
    args = parser.parse_args(argv)
    if args.limit is not None and args.limit < 1:
        parser.error("--limit must be at least 1")
    try:
        rows = load_dataset(args.dataset)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    bench = asyncio.run(evaluate(rows, limit=args.limit, ranges=default_ranges(not args.no_ip_ranges), concurrency=args.concurrency, top=args.top))
    print(json.dumps(bench.to_json(), indent=2, ensure_ascii=False) if args.json else report_text(bench))
    return 0


if __name__ == "__main__":
    sys.exit(main())
