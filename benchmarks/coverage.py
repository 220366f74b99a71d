"""Coverage: how many Austrian municipalities have every MX host attributed to a provider.

On the ESORICS 2026 records of 2,092 Austrian municipalities (../shared/data/real-world, see
its README), per municipality with MX records:

* by name: the catalog's `mx` facts match the host name (what the email detector does first);
* through the AS: a host no `mx` fact matches is attributed through the AS that routes its
  address (`dijkwacht data update` fetches the IP-to-AS table): to the catalog provider whose
  `asn` fact lists that AS, else to the AS's holder. The records carry no addresses, but they
  carry the study's own observation of each MX address's AS ("ASN 8447 registered in AT", one
  per address it resolved). A municipality counts as attributed through the AS when the study
  saw at least as many MX addresses in an AS as the municipality has hosts not known by name:
  an unresolvable host is never counted. Which observed AS belongs to which host is not in the
  records, so the AS figures are per municipality.

Printed: the share with at least one MX host known by name (the figure the catalog audit
quoted: 74 % before this work), with every host known by name, and with every host attributed
by name or AS (the target: at least 95 %), then the AS split and the host-name suffixes still
unknown by name.

    python benchmarks/coverage.py [--json] [--catalog-file FILE]

`--catalog-file` replaces the built-in catalog (e.g. an older version from git, to compare:
`git show REV:agent/catalog/providers.toml > old.toml`).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dijkwacht.asn import provider_id
from dijkwacht.catalog import Catalog, load_catalog

DATASET = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real-world" / "esorics2026-providers-at.json"
_AS_SEEN = re.compile(r"^ASN (\d+) registered in ([A-Z]{2}|\S+)")
_TWO_LEVEL = frozenset({"gv.at", "co.at", "or.at", "ac.at"})


@dataclass(frozen=True)
class Municipality:
    name: str
    domain: str
    mx: tuple[str, ...]
    ases: tuple[tuple[int, str], ...]  # (AS, registration country) per MX address the study resolved


def load(path: Path = DATASET) -> list[Municipality]:
    if not path.is_file():
        raise FileNotFoundError(f"real-world data missing: {path} (expected ../shared/data/real-world beside the repository)")
    rows = json.loads(path.read_text(encoding="utf-8"))["municipalities"]
    out = []
    for row in rows:
        seen = []
        for signal in row["classification_signals"]:
            match = _AS_SEEN.match(signal["detail"]) if signal["kind"] == "asn" else None
            if match:
                seen.append((int(match.group(1)), match.group(2)))
        out.append(Municipality(row["name"], row["domain"].lower(), tuple(h.lower().rstrip(".") for h in row["mx"]), tuple(seen)))
    return out


def suffix(host: str) -> str:
    labels = host.split(".")
    return ".".join(labels[-3:] if ".".join(labels[-2:]) in _TWO_LEVEL else labels[-2:])


@dataclass
class Coverage:
    municipalities: int = 0  # with at least one MX host
    any_by_name: int = 0
    all_by_name: int = 0
    all_by_name_or_as: int = 0
    via_catalog_as: int = 0  # of the AS-attributed: every observed AS is a catalog provider's
    via_as_holder: int = 0  # ... at least one observed AS is attributed to its holder
    unattributed: list[str] = field(default_factory=list)  # municipalities attributed neither way
    unknown_suffixes: Counter[str] = field(default_factory=Counter)  # MX host suffixes unknown by name
    as_providers: Counter[str] = field(default_factory=Counter)  # AS attributions, per provider id

    def share(self, n: int) -> float:
        return n / self.municipalities if self.municipalities else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "municipalities_with_mx": self.municipalities,
            "any_mx_by_name": self.any_by_name,
            "every_mx_by_name": self.all_by_name,
            "every_mx_by_name_or_as": self.all_by_name_or_as,
            "share_any_mx_by_name": round(self.share(self.any_by_name), 4),
            "share_every_mx_by_name": round(self.share(self.all_by_name), 4),
            "share_every_mx_by_name_or_as": round(self.share(self.all_by_name_or_as), 4),
            "as_attributed_to_catalog_providers_only": self.via_catalog_as,
            "as_attributed_to_an_as_holder": self.via_as_holder,
            "unattributed": self.unattributed,
            "unknown_mx_suffixes": dict(self.unknown_suffixes.most_common(25)),
            "as_providers": dict(self.as_providers.most_common(25)),
        }


def measure(rows: Iterable[Municipality], catalog: Catalog) -> Coverage:
    c = Coverage()
    for row in rows:
        if not row.mx:
            continue
        c.municipalities += 1
        unknown = [h for h in row.mx if not catalog.match_host("mx", h, "email")]
        c.any_by_name += len(unknown) < len(row.mx)
        if not unknown:
            c.all_by_name += 1
            c.all_by_name_or_as += 1
            continue
        c.unknown_suffixes.update({suffix(h) for h in unknown})
        if len(row.ases) < len(unknown):
            c.unattributed.append(f"{row.name} ({row.domain}: {', '.join(unknown)})")
            continue
        c.all_by_name_or_as += 1
        providers = {catalog.asn_providers.get(asn) or provider_id(asn) for asn, _ in row.ases}
        c.as_providers.update(providers)
        if all(p in catalog.providers for p in providers):
            c.via_catalog_as += 1
        else:
            c.via_as_holder += 1
    return c


def report(c: Coverage) -> str:
    def line(label: str, n: int) -> str:
        return f"  {label:<44} {n:5d} of {c.municipalities}  {100 * c.share(n):5.1f} %"

    out = [
        f"MX attribution, Austrian municipalities with MX records: {c.municipalities}",
        line("at least one MX host known by name", c.any_by_name),
        line("every MX host known by name", c.all_by_name),
        line("every MX host attributed, by name or AS", c.all_by_name_or_as),
        f"  of those through the AS: {c.via_catalog_as} to catalog providers only, {c.via_as_holder} also to an AS's holder",
        "",
        "MX host suffixes not known by name (municipalities):",
        *(f"  {n:5d}  {s}" for s, n in c.unknown_suffixes.most_common(15)),
        "",
        "AS attributions (municipalities):",
        *(f"  {n:5d}  {p}" for p, n in c.as_providers.most_common(10)),
        "",
        f"not attributed ({len(c.unattributed)}): " + "; ".join(c.unattributed),
    ]
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    parser.add_argument("--dataset", type=Path, default=DATASET, help=f"study JSON (default {DATASET})")
    parser.add_argument("--catalog-file", type=Path, help="use this catalog file instead of the built-in one")
    args = parser.parse_args(argv)
    try:
        rows = load(args.dataset)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    catalog = load_catalog([args.catalog_file], builtin=False) if args.catalog_file else load_catalog()
    coverage = measure(rows, catalog)
    print(json.dumps(coverage.to_json(), indent=2, ensure_ascii=False) if args.json else report(coverage))
    return 0


if __name__ == "__main__":
    sys.exit(main())
