#!/usr/bin/env python3
"""Synthetic benchmark data for `dijkwacht scan`, served by Knot DNS.

    python benchmarks/generate.py --domains 16500 --seed 1 --out DIR [--port 53530]

writes into DIR:

  knot.conf       Knot DNS configuration: listen 127.0.0.1@PORT, ONE ZONE PER TARGET DOMAIN
                  (SOA and its own NS records at the apex) plus a root zone "." holding every
                  provider-side name (MX hosts, SPF include records, CDN edges, NS host
                  addresses, PTR records). Per-domain zones are needed because NS records
                  below the apex of a single zone would be delegations.
  zones/          the zone files (TTL 300 everywhere, SOA minimum 300)
  targets.txt     one domain per line, for `dijkwacht scan --targets-file`
  queries.txt     dnsperf input: the (name, type) queries a scan sends, one `name TYPE` a line
  expected.json   {domain: [[category, provider, confidence], ...]}: what the data IMPLIES
  not_looked_for.json  {domain: [[category, provider], ...]}: implied dependencies that the
                  detectors' current rules do not look for (see below)
  patterns.json   {domain: [pattern, ...]}: the record patterns the domain was built from
  meta.json       parameters, counts, the query mix per domain, the generator's hash

Addresses are drawn from the real provider ranges in ../shared/data/ip-ranges (read here, at
generation time; nothing of them is copied into the repository).

What a domain implies is computed by `Rules` below: an independent re-statement of the
built-in detectors' documented rules (plugins/*.py) applied to the generated records, with
the catalog and the IP ranges as the only knowledge -- so a CloudFront CNAME implies cdn
amazon and not hosting amazon, an SPF-only Microsoft is email microsoft "indicated", Google
Workspace MX implies video google "inferred" unless another meeting service left a record,
verification tokens imply nothing. One rule
is a shortcut rather than a meaning: the email detector skips the tenant records (DKIM
selectors, autodiscover) when MX and SPF name the same providers. expected.json counts what
those records imply anyway; not_looked_for.json lists what the shortcut leaves out.

`Resolver` models how the DNS engine (agent/dns.py) asks Knot -- CNAMEs chased by Knot
inside one zone only, the engine asking again where a chain leaves a zone, the target's own
names cached per target, every other name once per scan process, an NXDOMAIN holding for
every type of its name -- which gives the queries a scan sends (queries.txt, and the counts
for 1-4 scan workers in meta.json). It mirrors the detectors as of commit a05b857; when they
change, run_scan.py's comparison of Knot's query counter with the model shows it.
"""

from __future__ import annotations

import argparse
import hashlib
import ipaddress
import json
import random
import string
import sys
import time
from collections import Counter, defaultdict
from importlib import resources
from pathlib import Path

from dijkwacht.catalog import load_catalog
from dijkwacht.ipranges import load_ranges

REPO = Path(__file__).resolve().parents[1]
RANGES_DIR = REPO.parent / "shared/data/ip-ranges"
TTL = 300
DEFAULT_PORT = 53530
UDP_PAYLOAD = 1232  # c-ares' EDNS buffer size and Knot's max-udp-payload: larger answers go TCP

SECTORS = {"gemeente": 8, "ziekenhuis": 4, "school": 18, "universiteit": 2, "waterschap": 1, "provincie": 1,
           "zorg": 10, "bedrijf": 32, "stichting": 12, "vereniging": 12}
TLDS = {"nl": 55, "be": 15, "de": 18, "at": 12}

# Addresses no range file covers (checked at run time): servers of hosters without a range
# file, found only through the PTR fallback, or not at all.
UNLISTED_NETS = ["195.230.160.0/19", "91.184.0.0/17", "185.182.56.0/22", "185.104.28.0/22", "217.21.240.0/20", "83.96.128.0/17"]


def weighted(rng: random.Random, table: dict):
    keys = list(table)
    return rng.choices(keys, weights=[table[k] for k in keys])[0]


def token(rng: random.Random, n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


# ---------------------------------------------------------------------------------------------
# Addresses inside (or outside) the real provider ranges
# ---------------------------------------------------------------------------------------------


class Addresses:
    """Random addresses that the range files attribute to exactly one given provider."""

    def __init__(self, rng: random.Random, ranges_dir: Path) -> None:
        self.rng = rng
        self.ranges = load_ranges(ranges_dir)
        if self.ranges.empty:
            sys.exit(f"generate.py: no IP range files in {ranges_dir}")
        self.nets: dict[str, tuple[list, list]] = {}
        for path in sorted(ranges_dir.glob("*.txt")):
            v4, v6 = [], []
            for line in path.read_text(encoding="utf-8").splitlines():
                line = line.strip()
                if line and not line.startswith("#"):
                    net = ipaddress.ip_network(line, strict=False)
                    (v4 if net.version == 4 else v6).append(net)
            self.nets[path.stem] = (v4, v6)
        self.used: set[str] = set()

    def has_v6(self, provider: str) -> bool:
        return bool(self.nets.get(provider, ((), ()))[1])

    def _draw(self, net) -> str:
        size = net.num_addresses
        offset = self.rng.randrange(1, min(size - 1, 2**64)) if size > 2 else 0
        return str(net.network_address + offset)

    def pick(self, provider: str, v6: bool = False) -> str:
        nets = self.nets[provider][1 if v6 else 0]
        for _ in range(200):
            address = self._draw(self.rng.choice(nets))
            if address not in self.used and self.ranges.lookup(address) == (provider,):
                self.used.add(address)
                return address
        raise RuntimeError(f"no address found for {provider} (v6={v6})")

    def unlisted(self) -> str:
        for _ in range(200):
            address = self._draw(ipaddress.ip_network(self.rng.choice(UNLISTED_NETS)))
            if address not in self.used and not self.ranges.lookup(address):
                self.used.add(address)
                return address
        raise RuntimeError("no unlisted address found")


# ---------------------------------------------------------------------------------------------
# The records, by zone
# ---------------------------------------------------------------------------------------------


class Records:
    """All records: name -> type -> values, plus which zone serves each name.

    Values: A/AAAA address string; MX (priority, host) with host "" for a null MX; TXT the
    text; CNAME/NS/PTR a host name; SRV (priority, weight, port, target). Names have no
    trailing dot and are lowercase.
    """

    def __init__(self) -> None:
        self.data: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
        self.zones: set[str] = set()  # the target domains; everything else is in "."
        self.ents: set[str] = set()  # empty non-terminals and nodes: every existing name

    def zone_of(self, name: str) -> str:
        labels = name.split(".")
        for i in range(len(labels) - 1):
            suffix = ".".join(labels[i:])
            if suffix in self.zones:
                return suffix
        return ""

    def add(self, name: str, rtype: str, value) -> None:
        values = self.data[name][rtype]
        if value not in values:  # provider-side names are shared: add once
            values.append(value)
        zone = self.zone_of(name)
        labels = name.split(".")
        for i in range(len(labels)):
            suffix = ".".join(labels[i:])
            self.ents.add(suffix)
            if suffix == zone:
                break


def rdata(rtype: str, value) -> str:
    if rtype == "MX":
        return f"{value[0]} {value[1] + '.' if value[1] else '.'}"
    if rtype == "TXT":
        return " ".join(f'"{value[i:i + 255]}"' for i in range(0, max(len(value), 1), 255))
    if rtype == "SRV":
        return f"{value[0]} {value[1]} {value[2]} {value[3]}."
    if rtype in ("CNAME", "NS", "PTR"):
        return value + "."
    return value


def wire_size(name: str, rtype: str, value) -> int:
    """Approximate size of one resource record in an answer (owner compressed to 2 bytes)."""
    if rtype == "A":
        size = 4
    elif rtype == "AAAA":
        size = 16
    elif rtype == "TXT":
        size = len(value) + (len(value) // 255 + 1)
    elif rtype == "MX":
        size = 2 + len(value[1]) + 2
    elif rtype == "SRV":
        size = 6 + len(value[3]) + 2
    else:
        size = len(value) + 2
    return 2 + 10 + size


# ---------------------------------------------------------------------------------------------
# How Knot answers and how dijkwacht's engine asks
# ---------------------------------------------------------------------------------------------

DATA, NXDOMAIN, NODATA, ERROR = "data", "nxdomain", "nodata", "error"


class Server:
    """Knot's answers for the generated zones: CNAMEs chased within the query's zone only."""

    def __init__(self, records: Records) -> None:
        self.r = records

    def answer(self, name: str, qtype: str) -> tuple[str, tuple, bool]:
        """(status, answer records as (owner, type, value), truncated over UDP)."""
        zone = self.r.zone_of(name)
        rrs: list[tuple[str, str, object]] = []
        current, seen = name, set()
        status = DATA
        while True:
            node = self.r.data.get(current)
            if node is not None and node.get(qtype):
                rrs += [(current, qtype, v) for v in node[qtype]]
                break
            if node is not None and qtype != "CNAME" and node.get("CNAME") and current not in seen:
                seen.add(current)
                target = node["CNAME"][0]
                rrs.append((current, "CNAME", target))
                if self.r.zone_of(target) != zone:
                    break  # Knot does not follow a CNAME into another zone
                current = target
                continue
            if current not in self.r.ents:
                status = NXDOMAIN
            elif not rrs:
                status = NODATA
            break
        size = 12 + len(name) + 6 + 11 + sum(wire_size(o, t, v) for o, t, v in rrs)
        return status, tuple(rrs), size > UDP_PAYLOAD


class Resolver:
    """The query behaviour of agent/dns.py DNSEngine.resolve, against `Server`.

    The target's own names are cached per target, every other name once per scan process
    (the engine's shared cache; each scan worker has its own), and an NXDOMAIN holds for
    every type of its name. So `sent` is the list of queries one scan process sends for the
    targets it is given, if nothing times out.
    """

    MAX_CHAIN = 8

    def __init__(self, server: Server) -> None:
        self.server = server
        self.shared: dict = {}
        self.private: dict = {}
        self.domain = ""
        self.sent: list[tuple[str, str, bool, str]] = []  # (name, type, private, target), in order
        self.tcp = 0  # answers too large for UDP: c-ares asks again over TCP

    def start(self, domain: str) -> None:
        self.domain, self.private = domain, {}

    def _raw(self, name: str, qtype: str):
        private = name == self.domain or name.endswith("." + self.domain)
        cache = self.private if private else self.shared
        hit = cache.get((name, qtype)) or cache.get((name, ""))
        if hit is None:
            status, rrs, truncated = self.server.answer(name, qtype)
            hit = (status, rrs)
            cache[(name, "" if status == NXDOMAIN else qtype)] = hit
            self.sent.append((name, qtype, private, self.domain))
            self.tcp += truncated
        return hit

    def resolve(self, name: str, qtype: str) -> tuple[str, tuple, tuple]:
        """(status, records of qtype for the final name, CNAME chain)."""
        chain: list[str] = []
        seen = {name}
        current = name
        for _ in range(self.MAX_CHAIN):
            status, rrs = self._raw(current, qtype)
            if status != DATA:
                return status, (), tuple(chain)
            if qtype == "CNAME":
                targets = tuple(v for o, t, v in rrs if t == "CNAME" and o == current)
                return (DATA if targets else NODATA), targets[:1], tuple(chain)
            cnames = {o: v for o, t, v in rrs if t == "CNAME"}
            while current in cnames:
                current = cnames[current]
                if current in seen:
                    return ERROR, (), tuple(chain)
                seen.add(current)
                chain.append(current)
            records = tuple(v for o, t, v in rrs if t == qtype and o == current)
            if records:
                return DATA, records, tuple(chain)
            if not chain or chain[-1] != current or not cnames:
                return NODATA, (), tuple(chain)
        return ERROR, (), tuple(chain)

    def addresses(self, name: str) -> tuple[list[str], tuple]:
        s4, v4, c4 = self.resolve(name, "A")
        s6, v6, c6 = self.resolve(name, "AAAA")
        return [*(v4 if s4 == DATA else ()), *(v6 if s6 == DATA else ())], c4 or c6


# ---------------------------------------------------------------------------------------------
# What the records imply: the detectors' documented rules
# ---------------------------------------------------------------------------------------------

_RANK = {"confirmed": 3, "indicated": 2, "inferred": 1}
SPF_LOOKUP_LIMIT = 10


class Rules:
    """(category, provider) -> confidence for one target, from the detectors' documented rules.

    email: MX hosts by the catalog, else by the IP ranges of their addresses (hosting role);
           a null MX means no mail. SPF walked per RFC 7208 (include/redirect, 10-lookup limit,
           catalog includes not descended), its ip4/ip6 networks by the ranges. DKIM: the
           selector1 CNAME, and one TXT selector per catalog provider (CNAMEs followed).
           Autodiscover CNAME. Verification tokens are never a dependency.
    video: lyncdiscover CNAME and _sipfederationtls._tcp SRV, then sip/_sip._tls only when those
           found nothing; TXT tokens; Google Workspace MX (inferred) only when
           none of those found a meeting service.
    cdn:   apex and www: CNAME chain hosts, addresses in ranges of cdn-role providers.
    hosting: apex and www: hosting CNAMEs in the chain; addresses in hosting-role ranges unless
           the name is fronted by a CDN CNAME; PTR of an address no range file knows.
    dns:   NS hosts by the catalog, else by the ranges of their addresses (indicated).
    """

    def __init__(self, catalog, ranges, resolver: Resolver, *, always_check_tenant: bool = False) -> None:
        self.catalog = catalog
        self.ranges = ranges
        self.dns = resolver
        # The email detector asks for tenant records (DKIM selectors, autodiscover) only when
        # MX and SPF leave the picture open; True asks always (what the data implies).
        self.always_check_tenant = always_check_tenant
        self.gateways = {p.id for p in catalog.providers.values() if getattr(p, "mail_gateway", False)}
        self.found: dict[tuple[str, str], str] = {}
        # The DKIM selectors the email detector asks for: the first of each provider's.
        self.selectors: dict[str, list] = {}
        covered: set[str] = set()
        for selector, facts in catalog.dkim_selectors.items():
            owners = {f.provider for f in facts}
            if not owners <= covered:
                self.selectors[selector] = facts
                covered |= owners

    def _add(self, category: str, provider: str, confidence: str) -> None:
        key = (category, provider)
        old = self.found.get(key)
        if old is None or _RANK[confidence] > _RANK[old]:
            self.found[key] = confidence

    def _facts(self, facts) -> None:
        for f in facts:
            self._add(f.category, f.provider, f.confidence)

    def _host(self, kind: str, host: str, category: str) -> list:
        return self.catalog.match_host(kind, host, category)

    def _role(self, provider: str) -> str:
        p = self.catalog.providers.get(provider)
        return p.ip_role if p else "hosting"

    def _by_address(self, category: str, addresses, role: str, confidence: str | None = None) -> set[str]:
        providers: set[str] = set()
        for address in addresses:
            owners = [p for p in self.ranges.lookup(address) if self._role(p) == role]
            for p in owners:
                self._add(category, p, confidence or ("confirmed" if len(owners) == 1 else "indicated"))
            providers.update(owners)
        return providers

    def evaluate(self, domain: str) -> dict[tuple[str, str], str]:
        self.found = {}
        self.dns.start(domain)
        self._email(domain)
        self._video(domain)
        for name in (domain, f"www.{domain}"):
            self._web(name)
        self._dns(domain)
        return self.found

    def _email(self, d: str) -> None:
        status, mx, _ = self.dns.resolve(d, "MX")
        inbound: set[str] = set()
        by_name = status == DATA and not any(host in ("", ".") for _, host in mx)
        if by_name:
            for _, host in sorted(mx):
                facts = self._host("mx", host, "email")
                if facts:
                    self._facts(facts)
                    inbound |= {f.provider for f in facts}
                else:
                    by_name = False
                    inbound |= self._by_address("email", self.dns.addresses(host)[0], "hosting")
        before = dict(self.found)
        self.found = {}
        walk = {"lookups": 0, "path": [], "stop": False}
        self._spf(d, walk, 0)
        outbound = {p for c, p in self.found}
        for key, conf in before.items():
            self._add(key[0], key[1], conf)
        settled = by_name and not (inbound & self.gateways) and inbound == outbound
        for name in (f"selector1._domainkey.{d}", f"autodiscover.{d}"):  # tenant CNAMEs: always
            status, cname, _ = self.dns.resolve(name, "CNAME")
            if status == DATA:
                self._facts(self._host("cname", cname[0], "email"))
        if not settled or self.always_check_tenant:
            self._selectors(d)
        self.dns.resolve(d, "TXT")  # verification tokens: corroborating evidence only

    def _selectors(self, d: str) -> None:
        for selector, facts in self.selectors.items():
            status, _, chain = self.dns.resolve(f"{selector}._domainkey.{d}", "TXT")
            if status == DATA:
                self._facts(f for f in facts if f.category == "email")
                for host in chain:
                    self._facts(self._host("cname", host, "email"))

    def _spf(self, domain: str, walk: dict, depth: int) -> None:
        if domain in walk["path"]:  # a loop: the domain includes itself
            walk["stop"] = True
            return
        walk["path"].append(domain)
        try:
            self._spf_record(domain, walk, depth)
        finally:
            walk["path"].pop()

    def _spf_record(self, domain: str, walk: dict, depth: int) -> None:
        status, texts, _ = self.dns.resolve(domain, "TXT")
        if status != DATA:
            return
        records = [t for t in texts if t[:6].lower() == "v=spf1" and (len(t) == 6 or t[6] == " ")]
        if len(records) != 1:
            walk["stop"] = walk["stop"] or len(records) > 1
            return
        terms = records[0].split()[1:]
        has_all = any(t.lstrip("+-~?").lower() == "all" for t in terms)
        redirect = ""
        for term in terms:
            qualifier = term[0] if term[0] in "+-~?" else "+"
            body = term.lstrip("+-~?")
            name, sep, value = body.partition(":") if ":" in body.split("=")[0] else body.partition("=")
            name = name.lower().split("/")[0]
            if name in ("include", "a", "mx", "ptr", "exists"):  # a redirect counts when it applies
                walk["lookups"] += 1
                if walk["lookups"] > SPF_LOOKUP_LIMIT:
                    walk["stop"] = True
                    return
            if name in ("ip4", "ip6") and qualifier != "-":
                try:
                    first = str(ipaddress.ip_network(value, strict=False).network_address)
                except ValueError:
                    continue
                for provider in self.ranges.lookup(first):
                    self._add("email", provider, "indicated")
            elif name == "include" and qualifier != "-" and value and "%" not in value:
                self._follow(value.lower().rstrip("."), walk, depth)
            elif name == "redirect" and sep == "=" and value:
                redirect = value.lower().rstrip(".")
            if walk["stop"]:
                return
        if redirect and not has_all:
            walk["lookups"] += 1
            if walk["lookups"] > SPF_LOOKUP_LIMIT:
                walk["stop"] = True
            elif "%" not in redirect:
                self._follow(redirect, walk, depth)

    def _follow(self, target: str, walk: dict, depth: int) -> None:
        facts = self._host("spf", target, "email")
        self._facts(facts)
        if not facts and depth < SPF_LOOKUP_LIMIT:
            self._spf(target, walk, depth + 1)

    def _video(self, d: str) -> None:
        # lyncdiscover + _sipfederationtls first; sip + _sip._tls only when those found nothing
        for host, record in (("lyncdiscover", "_sipfederationtls._tcp"), ("sip", "_sip._tls")):
            facts = []
            status, cname, _ = self.dns.resolve(f"{host}.{d}", "CNAME")
            if status == DATA:
                facts += self._host("cname", cname[0], "video")
            status, srvs, _ = self.dns.resolve(f"{record}.{d}", "SRV")
            if status == DATA:
                for srv in srvs:
                    facts += self._host("srv", srv[3], "video")
            self._facts(facts)
            if facts:
                break
        status, texts, _ = self.dns.resolve(d, "TXT")
        if status == DATA:
            for text in texts:
                self._facts(self.catalog.match_txt(text, "video"))
        # Meet is inferred from Google Workspace mail only where no other meeting service left a record.
        if any(category == "video" for category, _ in self.found):
            return
        status, mx, _ = self.dns.resolve(d, "MX")
        if status == DATA:
            for _, host in mx:
                self._facts(self._host("mx", host, "video"))

    def _web(self, name: str) -> None:
        addresses, chain = self.dns.addresses(name)
        fronted = False
        for host in chain:
            cdn = self._host("cname", host, "cdn")
            self._facts(cdn)
            fronted = fronted or bool(cdn)
            if not fronted:  # past a CDN edge the chain is the CDN's own machinery
                self._facts(self._host("cname", host, "hosting"))
        self._by_address("cdn", addresses, "cdn")
        if fronted:
            return
        for address in addresses:
            if self.ranges.lookup(address):
                self._by_address("hosting", [address], "hosting")
                continue
            reverse = ipaddress.ip_address(address).reverse_pointer
            status, ptrs, _ = self.dns.resolve(reverse, "PTR")
            if status == DATA:
                for ptr in ptrs:
                    for f in self._host("ptr", ptr, "hosting"):
                        self._add("hosting", f.provider, "indicated")

    def _dns(self, d: str) -> None:
        status, hosts, _ = self.dns.resolve(d, "NS")
        if status != DATA:
            return
        for host in sorted(hosts):
            facts = self._host("ns", host, "dns")
            if facts:
                self._facts(facts)
            else:
                self._by_address("dns", self.dns.addresses(host)[0], "hosting", "indicated")


# ---------------------------------------------------------------------------------------------
# The synthetic population
# ---------------------------------------------------------------------------------------------

# Mail profiles and their shares (the M365 gateways also count as Microsoft 365 tenants).
MAIL = {"m365": 46, "proofpoint+m365": 7, "mimecast+m365": 4, "gateway": 3, "google": 12, "hoster": 13, "selfhosted": 11, "nomail": 4}

# Mail at hosters, by TLD: (MX hosts, SPF include or None). All MX hosts are known to the catalog.
HOSTER_MAIL = {
    "transip": (["mx.transip.email"], "_spf.transip.email"),
    "argeweb": (["mx1.mailshover.nl", "mx2.mailshover.nl"], "_spf.argewebhosting.nl"),
    "antagonist": (["mx1.webhostingserver.nl", "mx2.webhostingserver.nl"], "spf.webhostingserver.nl"),
    "hostnet": (["mailfilter.hostnet.nl"], "_spf.hostnet.nl"),
    "yourhosting": (["mx1.yourhosting.nl", "mx2.yourhosting.nl"], None),
    "mijndomein": (["mx1.mijndomein.nl", "mx2.mijndomein.nl"], "spf.mijndomein.nl"),
    "kpn": (["mx.kpnmail.nl"], "spf.kpnmail.nl"),
    "ovh": (["mx1.mail.ovh.net", "mx2.mail.ovh.net", "mx3.mail.ovh.net"], "mx.ovh.com"),
    "ionos": (["mx00.ionos.de", "mx01.ionos.de"], "_spf-eu.ionos.com"),
    "ionos-legacy": (["mx00.kundenserver.de", "mx01.kundenserver.de"], "_spf.perfora.net"),
    "strato": (["smtpin.rzone.de"], "spf.rzone.de"),
    "hetzner": (["www123.your-server.de"], "spf.your-server.de"),
    "mailbox-org": (["mxext1.mailbox.org", "mxext2.mailbox.org", "mxext3.mailbox.org"], "mailbox.org"),
    "proton": (["mail.protonmail.ch", "mailsec.protonmail.ch"], "_spf.protonmail.ch"),
    "zoho": (["mx.zoho.eu", "mx2.zoho.eu", "mx3.zoho.eu"], "zoho.eu"),
    "spamexperts": (["mx.spamexperts.com", "fallbackmx.spamexperts.eu", "lastmx.spamexperts.net"], None),
}
# The range file the hosters' mail servers are in (the others have none: unlisted addresses).
HOSTER_MAIL_RANGES = {"transip": "transip", "ovh": "ovh", "ionos": "ionos", "ionos-legacy": "ionos", "strato": "strato",
                      "hetzner": "hetzner", "kpn": "kpn", "mailbox-org": "hetzner", "proton": None, "zoho": None}
HOSTER_MAIL_BY_TLD = {
    "nl": {"transip": 30, "argeweb": 8, "antagonist": 8, "hostnet": 10, "yourhosting": 6, "mijndomein": 6, "kpn": 8, "ovh": 3,
           "mailbox-org": 3, "proton": 4, "zoho": 2, "spamexperts": 6, "hetzner": 2},
    "be": {"transip": 20, "ovh": 30, "ionos": 10, "proton": 5, "zoho": 5, "mailbox-org": 5, "spamexperts": 10},
    "de": {"ionos": 25, "ionos-legacy": 10, "strato": 25, "hetzner": 12, "mailbox-org": 12, "ovh": 4, "proton": 4, "zoho": 4},
    "at": {"ionos": 25, "hetzner": 20, "strato": 10, "ovh": 10, "mailbox-org": 10, "proton": 5, "zoho": 5},
}
# Where servers run: apex web, self-hosted mail, own nameservers (providers with range files).
HOSTERS = {"transip": 14, "leaseweb": 7, "hetzner": 9, "ovh": 6, "amazon": 9, "microsoft": 8, "google": 4,
           "digitalocean": 3, "bit": 3, "true": 3, "previder": 2, "kpn": 3, "strato": 4, "ionos": 5,
           "scaleway": 2, "linode": 1, "vultr": 1, "oracle": 1}
# Apex web when not behind Cloudflare: a hoster above, or an address no range file knows.
APEX = {"hoster": 85, "ptr-known": 5, "unlisted": 4, "none": 6}
PTR_SUFFIXES = ["webhostingserver.nl", "argewebhosting.nl", "stratoserver.net", "kundenserver.de"]
CDN = {"none": 75, "cloudflare": 12, "akamai": 4, "cloudfront": 4, "fastly": 2, "azurefd": 3}
PLATFORMS = {"none": 93, "azurewebsites": 3, "github": 2, "netlify": 1, "heroku": 1}  # www of sites without a CDN
NS = {"route53": 10, "azure": 7, "cloudflare": 5, "transip": 16, "ovh": 5, "hetzner": 4, "ionos": 5, "strato": 3,
      "hostnet": 3, "yourhosting": 2, "mijndomein": 2, "bit": 2, "googlecloud": 2, "akamai": 2, "ultradns": 1,
      "ns1": 1, "own": 8, "unlisted-hoster": 7}
UNLISTED_NS = {"previder": ("ns1.previder.nl", "ns2.previder.nl"), "true": ("ns1.true.nl", "ns2.true.nl"),
               "kpn": ("ns1.kpn-dns.nl", "ns2.kpn-dns.nl"), "leaseweb": ("ns1.leaseweb.net", "ns2.leaseweb.net"),
               "solvinity": ("ns1.solvinity.net", "ns2.solvinity.net")}  # not in the catalog
# Includes the catalog does not know (the detector walks them), with the range file of
# the networks they list (None: in no range file).
UNKNOWN_SPF_INCLUDES = {"antagonist": None, "mijndomein": None, "kpn": "kpn", "hetzner": "hetzner"}
SENDERS = {"servers.mcsv.net": 0.08, "sendgrid.net": 0.05, "amazonses.com": 0.04, "_spf.salesforce.com": 0.03,
           "spf.mandrillapp.com": 0.02, "spf.mailjet.com": 0.04}  # outbound senders, by share of domains with mail
VERIFICATION_TOKENS = {"facebook-domain-verification=": 0.1, "apple-domain-verification=": 0.05, "atlassian-domain-verification=": 0.05,
                       "docusign=": 0.05, "globalsign-domain-verification=": 0.03}
CLOUDFLARE_NS = ["ada", "bob", "carl", "dana", "elle", "fred", "gina", "hugo", "ines", "jack", "kate", "luke", "mona", "nick", "olga", "pete"]
FASTLY_SHARED = ["dualstack.n.sni.global.fastly.net", "j.sni.global.fastly.net", "k.sni.global.fastly.net"]
# Azure Front Door: endpoint -> Traffic Manager -> t-msedge.net edge (two hops) -> addresses.
AFD_CHAINS = [("star-azurefd-prod.trafficmanager.net", "shed.dual-low.s-part-0012.t-0009.t-msedge.net", "s-part-0012.t-0009.t-msedge.net"),
              ("azurefd-t-prod.trafficmanager.net", "shed.dual-low.s-part-0035.t-0009.t-msedge.net", "s-part-0035.t-0009.t-msedge.net")]


FIXED_NS = {"transip": (("ns0.transip.net", "ns1.transip.nl", "ns2.transip.eu"), "transip"),
            "hetzner": (("hydrogen.ns.hetzner.com", "oxygen.ns.hetzner.com", "helium.ns.hetzner.de"), "hetzner"),
            "hostnet": (("ns1.hostnet.nl", "ns2.hostnet.nl", "ns3.hostnet.nl"), "leaseweb"),
            "yourhosting": (("ns1.premiumdns-yourhosting.nl", "ns2.premiumdns-yourhosting.eu",
                             "ns3.premiumdns-yourhosting.net"), "leaseweb"),
            "mijndomein": (("ns1.mijndomein.nl", "ns2.mijndomein.nl", "ns3.mijndomein.nl"), "leaseweb"),
            "bit": (("ns1.bit.nl", "ns2.bit.nl", "ns3.bit.nl"), "bit"),
            "ultradns": (("pdns1.ultradns.net", "pdns2.ultradns.net", "pdns3.ultradns.org", "pdns4.ultradns.org"), "amazon")}
def ns_hosts(kind: str, rng: random.Random) -> tuple[list[str], str]:
    """Nameserver names of a DNS provider the catalog knows, and the range file of their addresses."""
    if kind == "route53":
        return [f"ns-{rng.randrange(0, 2048)}.awsdns-{rng.randrange(0, 64):02d}.{tld}" for tld in ("com", "net", "org", "co.uk")], "amazon"
    if kind == "azure":
        k = rng.randrange(1, 10)
        return [f"ns1-0{k}.azure-dns.com", f"ns2-0{k}.azure-dns.net", f"ns3-0{k}.azure-dns.org", f"ns4-0{k}.azure-dns.info"], "microsoft"
    if kind == "cloudflare":
        return [f"{n}.ns.cloudflare.com" for n in rng.sample(CLOUDFLARE_NS, 2)], "cloudflare"
    if kind == "ovh":
        n = rng.randrange(10, 200)
        return [f"dns{n}.ovh.net", f"ns{n}.ovh.net"], "ovh"
    if kind == "ionos":
        n = rng.randrange(1000, 1120)
        return [f"ns{n}.ui-dns.com", f"ns{n}.ui-dns.de", f"ns{n}.ui-dns.org", f"ns{n}.ui-dns.biz"], "ionos"
    if kind == "strato":
        return [f"docks{rng.randrange(1, 20):02d}.rzone.de", f"shades{rng.randrange(1, 20):02d}.rzone.de"], "strato"
    if kind == "googlecloud":
        letter = rng.choice("abcde")
        return [f"ns-cloud-{letter}{i}.googledomains.com" for i in (1, 2, 3, 4)], "google"
    if kind == "akamai":
        return [f"a{i}-{rng.randrange(1, 200)}.akam.net" for i in (1, 3, 7, 9)], "akamai"
    if kind == "ns1":
        p = rng.randrange(1, 80)
        return [f"dns{i}.p{p:02d}.nsone.net" for i in (1, 2, 3, 4)], "amazon"
    return list(FIXED_NS[kind][0]), FIXED_NS[kind][1]


class Site:
    """The state of one target while its records are made."""

    def __init__(self, domain: str) -> None:
        self.d = domain
        self.tld = domain.rsplit(".", 1)[1]
        self.dashed = domain.replace(".", "-")
        self.tags: list[str] = []  # the patterns used, for grouping misses
        self.txt: list[str] = []  # apex TXT strings
        self.spf: list[str] = []  # apex SPF terms


class Population:
    """Builds the records of every target and of the provider side."""

    def __init__(self, rng: random.Random, addrs: Addresses, records: Records) -> None:
        self.rng = rng
        self.addrs = addrs
        self.r = records
        self.provider_names: set[str] = set()  # provider-side names already made

    # -- helpers ------------------------------------------------------------------------
    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def provider_host(self, name: str, provider: str | None, v6: bool = False, count: int = 1) -> None:
        """A provider-side name (root zone) with addresses in `provider`'s ranges (None: in no
        range file, for providers that have none), made once however many targets use it."""
        if name in self.provider_names:
            return
        self.provider_names.add(name)
        for _ in range(count):
            self.r.add(name, "A", self.addrs.pick(provider) if provider else self.addrs.unlisted())
        if v6 and provider and self.addrs.has_v6(provider):
            self.r.add(name, "AAAA", self.addrs.pick(provider, v6=True))

    def provider_txt(self, name: str, text: str) -> None:
        if name not in self.provider_names:
            self.provider_names.add(name)
            self.r.add(name, "TXT", text)

    def servers(self, name: str, provider: str, v6: float = 0.3, count: int = 1) -> None:
        """Addresses of one name (a target's own, or a per-customer edge name)."""
        for _ in range(count):
            self.r.add(name, "A", self.addrs.pick(provider))
        if self.addrs.has_v6(provider) and self.chance(v6):
            self.r.add(name, "AAAA", self.addrs.pick(provider, v6=True))

    def net24(self, provider: str | None) -> str:
        address = self.addrs.pick(provider) if provider else self.addrs.unlisted()
        return str(ipaddress.ip_network(address + "/24", strict=False))

    def dkim(self) -> str:
        return f"v=DKIM1; k=rsa; p={token(self.rng, 392)}"

    # -- one target ---------------------------------------------------------------------
    def domain(self, d: str) -> list[str]:
        """Make one target's records; return the patterns it was made from."""
        site = Site(d)
        hoster = weighted(self.rng, HOSTERS)  # where its servers run
        mail = weighted(self.rng, MAIL)
        site.tags.append(f"mail:{mail}")
        m365 = getattr(self, f"_mail_{mail.replace('+', '_')}")(site)
        if m365:
            self._m365_tenant(site, mail)
        elif self.chance(0.08):
            site.txt.append(f"MS=ms{self.rng.randrange(10**7, 10**8)}")  # a lone token: no dependency
            site.tags.append("txt:lone-ms-token")
        if mail != "nomail":
            self._senders(site, mail)
        self._tokens(site, mail)
        for text in site.txt:
            self.r.add(d, "TXT", text)
        self._web(site, hoster)
        self._nameservers(site, hoster)
        return site.tags

    # -- mail: each returns whether the domain is a Microsoft 365 tenant ---------------------
    def _mail_m365(self, site: Site) -> bool:
        if self.chance(0.95):
            mx = f"{site.dashed}.mail.protection.outlook.com"
        else:
            mx = f"{site.dashed}.{token(self.rng, 4, string.ascii_lowercase)}-v1.mx.microsoft"
            site.tags.append("mail:m365-dane-mx")
        self.r.add(site.d, "MX", (0, mx))
        self.provider_host(mx, "microsoft", count=2)
        if self.chance(0.03):  # moved from Google Workspace; its DKIM key stayed
            self.r.add(f"google._domainkey.{site.d}", "TXT", self.dkim())
            site.tags.append("dkim:google-left-after-move")
        return True

    def _mail_proofpoint_m365(self, site: Site) -> bool:
        ident = f"00{self.rng.randrange(100000, 999999)}"
        for host in (f"mx0a-{ident}.pphosted.com", f"mx0b-{ident}.pphosted.com"):
            self.r.add(site.d, "MX", (10, host))
            self.provider_host(host, "proofpoint")
        site.spf.append(f"include:spf-{ident}.pphosted.com")
        return True

    def _mail_mimecast_m365(self, site: Site) -> bool:
        region = "de" if site.tld in ("de", "at") else "eu"
        for i in (1, 2):
            host = f"{region}-smtp-inbound-{i}.mimecast.com"
            self.r.add(site.d, "MX", (10, host))
            self.provider_host(host, "mimecast")
        site.spf.append(f"include:{region}._netblocks.mimecast.com")
        return True

    def _mail_gateway(self, site: Site) -> bool:
        """Another filtering gateway, mostly in front of Microsoft 365."""
        d, rng = site.d, self.rng
        kind = rng.choice(["hornetsecurity", "cisco", "barracuda", "spamexperts"] + (["seppmail"] * 3 if site.tld == "at" else []))
        site.tags.append(f"mail:gateway-{kind}")
        if kind == "hornetsecurity":
            hosts = ["mx01.hornetsecurity.com", "mx02.hornetsecurity.com"]
            site.spf.append("include:spf.hornetsecurity.com")
            for sel in ("hse1", "hse2"):
                self.r.add(f"{sel}._domainkey.{d}", "TXT", self.dkim())
        elif kind == "cisco":
            ident = f"hc{rng.randrange(1000, 9999)}-{rng.randrange(10, 99)}"
            hosts = [f"mx1.{ident}.iphmx.com", f"mx2.{ident}.iphmx.com"]
            site.spf.append(f"include:{ident}.iphmx.com")
        elif kind == "barracuda":
            hosts = [f"d{rng.randrange(100000, 999999)}a.ess.barracudanetworks.com"]
            site.spf.append("include:spf.ess.barracudanetworks.com")
        elif kind == "seppmail":  # Swiss, common in front of M365 at Austrian municipalities
            hosts = [f"{site.dashed}.mx.seppmail.cloud"]
            site.spf.append("include:spf.seppmail.cloud")
        else:
            hosts = HOSTER_MAIL["spamexperts"][0]
        for i, host in enumerate(hosts):
            self.r.add(d, "MX", (10 + 10 * i, host))
            self.provider_host(host, None)
        return self.chance(0.7)

    def _mail_google(self, site: Site) -> bool:
        if self.chance(0.7):
            hosts = [(1, "aspmx.l.google.com"), (5, "alt1.aspmx.l.google.com"), (5, "alt2.aspmx.l.google.com"),
                     (10, "alt3.aspmx.l.google.com"), (10, "alt4.aspmx.l.google.com")]
        else:
            hosts = [(1, "smtp.google.com")]
            site.tags.append("mail:google-smtp-mx")
        for prio, host in hosts:
            self.r.add(site.d, "MX", (prio, host))
            self.provider_host(host, "google", v6=True)
        if self.chance(0.9):
            site.spf.append("include:_spf.google.com")
        if self.chance(0.6):
            self.r.add(f"google._domainkey.{site.d}", "TXT", self.dkim())
            site.tags.append("dkim:google")
        return False

    def _mail_hoster(self, site: Site) -> bool:
        d, rng = site.d, self.rng
        which = weighted(rng, HOSTER_MAIL_BY_TLD[site.tld])
        site.tags.append(f"mail:hoster-{which}")
        hosts, include = HOSTER_MAIL[which]
        for i, host in enumerate(hosts):
            self.r.add(d, "MX", (10 * (i + 1), host))
            self.provider_host(host, HOSTER_MAIL_RANGES.get(which))
        if include and self.chance(0.85):
            site.spf.append(f"include:{include}")
            # An include the catalog does not know is walked: it needs a record.
            if which in UNKNOWN_SPF_INCLUDES:
                self.provider_txt(include, f"v=spf1 ip4:{self.net24(UNKNOWN_SPF_INCLUDES[which])} -all")
        if which == "mailbox-org" and self.chance(0.7):
            for sel in ("mbo0001", "mbo0002"):
                self.r.add(f"{sel}._domainkey.{d}", "CNAME", f"{sel}._domainkey.mailbox.org")
                self.provider_txt(f"{sel}._domainkey.mailbox.org", self.dkim())
            site.tags.append("dkim:mailbox-org-cname")
        if which == "proton" and self.chance(0.8):
            pid = token(rng, 20, string.ascii_lowercase + string.digits)
            for sel in ("protonmail", "protonmail2", "protonmail3"):
                target = f"{sel}.domainkey.{pid}.domains.proton.ch"
                self.r.add(f"{sel}._domainkey.{d}", "CNAME", target)
                self.provider_txt(target, self.dkim())
            site.txt.append(f"protonmail-verification={token(rng, 40, '0123456789abcdef')}")
            site.tags.append("dkim:proton-cname")
        if which == "strato" and self.chance(0.5):
            self.r.add(f"strato-dkim-0002._domainkey.{d}", "TXT", self.dkim())
            site.tags.append("dkim:strato")
        if self.chance(0.05):  # moving to Microsoft 365: tenant set up, MX not switched yet
            self.r.add(f"autodiscover.{d}", "CNAME", "autodiscover.outlook.com")
            self.r.add(f"selector1._domainkey.{d}", "CNAME", f"selector1-{site.dashed}._domainkey.{token(rng, 8, string.ascii_lowercase)}.onmicrosoft.com")
            site.tags.append("tenant:m365-before-mx-move")
        return False

    def _mail_selfhosted(self, site: Site) -> bool:
        host, server = f"mail.{site.d}", weighted(self.rng, HOSTERS)
        site.tags.append(f"mail:selfhosted-{server}")
        self.r.add(site.d, "MX", (10, host))
        self.servers(host, server)
        site.spf += ["mx", f"ip4:{self.r.data[host]['A'][0]}"] if self.chance(0.5) else ["a", "mx"]
        return False

    def _mail_nomail(self, site: Site) -> bool:
        self.r.add(site.d, "MX", (0, ""))  # RFC 7505 null MX
        site.txt.append("v=spf1 -all")
        return False

    def _m365_tenant(self, site: Site, mail: str) -> None:
        """SPF, autodiscover, DKIM CNAMEs, verification and (mostly) Teams of an M365 tenant."""
        d, direct = site.d, mail == "m365"
        site.spf.append("include:spf.protection.outlook.com")
        if self.chance(0.85 if direct else 0.7):
            self.r.add(f"autodiscover.{d}", "CNAME", "autodiscover.outlook.com")
            self.provider_host("autodiscover.outlook.com", "microsoft")
        if self.chance(0.65 if direct else 0.5):
            tenant = token(self.rng, 8, string.ascii_lowercase)
            for sel in ("selector1", "selector2"):
                self.r.add(f"{sel}._domainkey.{d}", "CNAME", f"{sel}-{site.dashed}._domainkey.{tenant}.onmicrosoft.com")
            site.tags.append("dkim:m365-cname")
        if self.chance(0.8):
            site.txt.append(f"MS=ms{self.rng.randrange(10**7, 10**8)}")
        if self.chance(0.8 if direct else 0.65):
            full = self.chance(0.9)
            site.tags.append("teams:full" if full else "teams:cname-only")
            self.r.add(f"lyncdiscover.{d}", "CNAME", "webdir.online.lync.com")
            self.r.add(f"sip.{d}", "CNAME", "sipdir.online.lync.com")
            for host in ("webdir.online.lync.com", "sipdir.online.lync.com", "sipfed.online.lync.com"):
                self.provider_host(host, "microsoft")
            if full:
                self.r.add(f"_sip._tls.{d}", "SRV", (100, 1, 443, "sipdir.online.lync.com"))
                self.r.add(f"_sipfederationtls._tcp.{d}", "SRV", (100, 1, 5061, "sipfed.online.lync.com"))

    def _senders(self, site: Site, mail: str) -> None:
        """Outbound senders besides the mailbox, sometimes in the domain's own _spf record;
        then the apex SPF record."""
        d = site.d
        extra = [include for include, p in SENDERS.items() if self.chance(p)]
        if "spf.mailjet.com" in extra:
            self.provider_txt("spf.mailjet.com", "v=spf1 ip4:87.253.232.0/21 ip4:185.189.236.0/22 ip4:185.211.120.0/22 ip4:185.250.236.0/22 ~all")
        if "spf.mandrillapp.com" in extra and self.chance(0.6):
            self.r.add(f"mte1._domainkey.{d}", "CNAME", "dkim.mandrillapp.com")
            self.r.add(f"mte2._domainkey.{d}", "CNAME", "dkim2.mandrillapp.com")
            self.provider_txt("dkim.mandrillapp.com", self.dkim())
            site.tags.append("dkim:mandrill-cname")
        if extra:
            site.tags.append("spf:extra-senders")
        if extra and self.chance(0.4):
            self.r.add(f"_spf.{d}", "TXT", "v=spf1 " + " ".join(f"include:{i}" for i in extra) + " ~all")
            site.spf.append(f"include:_spf.{d}")
            site.tags.append("spf:nested-own")
        else:
            site.spf += [f"include:{i}" for i in extra]
        if site.spf:
            site.txt.append("v=spf1 " + " ".join(site.spf) + (" ~all" if mail == "google" else " -all"))
        else:
            site.tags.append("spf:none")

    def _tokens(self, site: Site, mail: str) -> None:
        """Verification tokens (no dependency) and Zoom / Webex accounts (video, indicated)."""
        rng, txt = self.rng, site.txt
        if self.chance(0.9 if mail == "google" else 0.4):
            txt.append(f"google-site-verification={token(rng, 43, string.ascii_letters + string.digits + '-_')}")
        for prefix, p in VERIFICATION_TOKENS.items():
            if self.chance(p):
                txt.append(prefix + token(rng, 32, string.ascii_lowercase + string.digits))
        if self.chance(0.06):
            txt.append(f"ZOOM_verify_{token(rng, 22)}" if self.chance(0.7) else f"zoom-domain-verification={token(rng, 36)}")
            site.tags.append("video:zoom-token")
        if self.chance(0.03):
            txt.append(f"cisco-ci-domain-verification={token(rng, 64, '0123456789abcdef')}")
            if self.chance(0.5):
                txt.append(f"webexdomainverification.{token(rng, 5, string.ascii_uppercase)}={token(rng, 36)}")
            site.tags.append("video:webex-token")
        if self.chance(0.01):  # too many tokens for one UDP answer: c-ares asks again over TCP
            txt += [f"verification-token-{i}={token(rng, 60)}" for i in range(24)]
            site.tags.append("txt:tcp-sized")

    # -- web ------------------------------------------------------------------------------
    def _web(self, site: Site, hoster: str) -> None:
        """Apex addresses, then www: a CDN CNAME, a platform CNAME, the apex, or nothing."""
        d, rng = site.d, self.rng
        cdn = weighted(rng, CDN)
        site.tags.append(f"cdn:{cdn}")
        apex = "cloudflare" if cdn == "cloudflare" else weighted(rng, APEX)
        if apex == "cloudflare":
            self.servers(d, "cloudflare", v6=0.9, count=2)
        elif apex == "hoster":
            self.servers(d, hoster, v6=0.35, count=2 if self.chance(0.3) else 1)
            site.tags.append(f"web:{hoster}")
        elif apex == "ptr-known":
            address = self.addrs.unlisted()
            self.r.add(d, "A", address)
            suffix = rng.choice(PTR_SUFFIXES)
            self.r.add(ipaddress.ip_address(address).reverse_pointer, "PTR", f"srv{rng.randrange(1, 999)}.{suffix}")
            site.tags.append(f"web:ptr-{suffix}")
        elif apex == "unlisted":
            self.r.add(d, "A", self.addrs.unlisted())
            site.tags.append("web:unlisted")
        else:
            site.tags.append("web:no-apex")
        if cdn != "none":
            getattr(self, f"_cdn_{cdn}")(site)
            return
        platform = weighted(rng, PLATFORMS)
        if platform != "none":
            site.tags.append(f"www:{platform}")
            getattr(self, f"_platform_{platform}")(site)
        elif apex != "none":
            style = rng.random()
            if style < 0.55:
                self.r.add(f"www.{d}", "CNAME", d)
            elif style < 0.9:
                for rtype in ("A", "AAAA"):
                    for value in self.r.data[d].get(rtype, ()):
                        self.r.add(f"www.{d}", rtype, value)

    def _cdn_cloudflare(self, site: Site) -> None:
        edge = f"www.{site.d}.cdn.cloudflare.net"
        self.r.add(f"www.{site.d}", "CNAME", edge)
        self.servers(edge, "cloudflare", v6=0.9, count=2)

    def _cdn_akamai(self, site: Site) -> None:
        edge, leaf = f"www.{site.d}.edgekey.net", f"e{self.rng.randrange(1000, 99999)}.dscx.akamaiedge.net"
        self.r.add(f"www.{site.d}", "CNAME", edge)
        self.r.add(edge, "CNAME", leaf)
        self.servers(leaf, "akamai", v6=0.5)

    def _cdn_cloudfront(self, site: Site) -> None:
        edge = f"d{token(self.rng, 13, string.ascii_lowercase + string.digits)}.cloudfront.net"
        self.r.add(f"www.{site.d}", "CNAME", edge)
        self.servers(edge, "amazon", v6=0.5, count=4)

    def _cdn_fastly(self, site: Site) -> None:
        if self.chance(0.6):
            edge = self.rng.choice(FASTLY_SHARED)
            self.provider_host(edge, "fastly", v6=True, count=2)
        else:
            edge = f"{site.dashed}.map.fastly.net"
            self.servers(edge, "fastly", v6=0.5, count=2)
        self.r.add(f"www.{site.d}", "CNAME", edge)

    def _cdn_azurefd(self, site: Site) -> None:
        # A Front Door chain as seen in the wild: the endpoint, Traffic Manager, t-msedge edges.
        endpoint = f"{site.dashed}-{token(self.rng, 16, string.ascii_lowercase + string.digits)}.z01.azurefd.net"
        middle, outer, inner = self.rng.choice(AFD_CHAINS)
        self.r.add(f"www.{site.d}", "CNAME", endpoint)
        self.r.add(endpoint, "CNAME", middle)
        self.r.add(middle, "CNAME", outer)
        self.r.add(outer, "CNAME", inner)
        self.provider_host(inner, "microsoft", v6=True, count=2)

    def _platform_azurewebsites(self, site: Site) -> None:
        app = f"{site.dashed}.azurewebsites.net"
        stamp = f"waws-prod-am2-{self.rng.randrange(100, 999)}.sip.azurewebsites.windows.net"
        self.r.add(f"www.{site.d}", "CNAME", app)
        self.r.add(app, "CNAME", stamp)
        self.provider_host(stamp, "microsoft")

    def _platform_github(self, site: Site) -> None:
        pages = f"{site.dashed}.github.io"
        self.r.add(f"www.{site.d}", "CNAME", pages)
        for last in (108, 109, 110, 111):  # GitHub Pages' documented addresses
            self.r.add(pages, "A", f"185.199.{last}.153")

    def _platform_netlify(self, site: Site) -> None:
        app = f"{site.dashed}.netlify.app"
        self.r.add(f"www.{site.d}", "CNAME", app)
        self.servers(app, "digitalocean", v6=0)

    def _platform_heroku(self, site: Site) -> None:
        app = f"{site.dashed}.herokudns.com"
        self.r.add(f"www.{site.d}", "CNAME", app)
        self.servers(app, "amazon", v6=0, count=2)

    # -- nameservers --------------------------------------------------------------------
    def _nameservers(self, site: Site, hoster: str) -> None:
        rng, d = self.rng, site.d
        kind = weighted(rng, NS)
        if "cdn:cloudflare" in site.tags and self.chance(0.8):
            kind = "cloudflare"
        site.tags.append(f"dns:{kind}")
        if kind == "own":  # the organisation's own nameservers, at its hoster
            hosts = [f"ns1.{d}", f"ns2.{d}"]
            for host in hosts:
                self.servers(host, hoster, v6=0.3)
        elif kind == "unlisted-hoster":  # a hoster the catalog has no NS fact for
            which = rng.choice(list(UNLISTED_NS))
            hosts = list(UNLISTED_NS[which])
            for host in hosts:
                self.provider_host(host, None if which == "solvinity" else which)
        else:
            hosts, backing = ns_hosts(kind, rng)
            for host in hosts:
                self.provider_host(host, backing, v6=True)
        for host in hosts:
            self.r.add(d, "NS", host)


# ---------------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------------


def write_zones(out: Path, records: Records, targets: list[str], port: int) -> None:
    zones_dir = out / "zones"
    zones_dir.mkdir(parents=True, exist_ok=True)
    by_zone: dict[str, list[str]] = defaultdict(list)
    for name, types in records.data.items():
        zone = records.zone_of(name)
        for rtype, values in types.items():
            for value in values:
                by_zone[zone].append(f"{name}. {TTL} IN {rtype} {rdata(rtype, value)}")
    serial = 1
    root = [f". {TTL} IN SOA ns.bench.invalid. hostmaster.bench.invalid. {serial} 3600 600 604800 {TTL}",
            f". {TTL} IN NS ns.bench.invalid.", f"ns.bench.invalid. {TTL} IN A 127.0.0.1"]
    (zones_dir / "root.zone").write_text("\n".join(root + by_zone[""]) + "\n")
    for d in targets:
        first_ns = records.data[d]["NS"][0]
        head = f"{d}. {TTL} IN SOA {first_ns}. hostmaster.{d}. {serial} 3600 600 604800 {TTL}"
        (zones_dir / f"{d}.zone").write_text(head + "\n" + "\n".join(by_zone[d]) + "\n")
    out_abs = out.resolve()
    zone_list = "\n".join(f"  - domain: {d}.\n    file: {d}.zone" for d in targets)
    (out / "knot.conf").write_text(f"""# Generated by benchmarks/generate.py: {len(targets)} target zones and the root zone.
server:
    listen: 127.0.0.1@{port}
    rundir: {out_abs}
    user: root
database:
    storage: {out_abs}/db
# Query counters for the benchmark runner (`knotc -c knot.conf stats mod-stats`).
mod-stats:
  - id: bench
    request-protocol: on
    query-type: on
    response-code: on
template:
  - id: default
    storage: {out_abs}/zones
    semantic-checks: off
    journal-content: none
    zonefile-sync: -1
    global-module: mod-stats/bench
log:
  - target: {out_abs}/knot.log
    any: notice
zone:
  - domain: .
    file: root.zone
{zone_list}
""")


def query_label(name: str, qtype: str, private: bool, domain: str) -> str:
    """A short description of a query, for the per-domain query mix."""
    if not private:
        return f"(provider side) {qtype}"
    rel = "@" if name == domain else name[: -len(domain) - 1]
    if rel.endswith("._domainkey"):
        rel = "<selector>._domainkey" if rel.split(".")[0] not in ("selector1",) else rel
    elif rel.startswith(("ns1", "ns2")):
        rel = "ns1/ns2"
    return f"{rel} {qtype}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--domains", type=int, required=True, help="number of target domains")
    parser.add_argument("--seed", type=int, default=1, help="random seed (same seed, same data)")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port Knot listens on, on 127.0.0.1 (default {DEFAULT_PORT})")
    parser.add_argument("--ranges", type=Path, default=RANGES_DIR, help=f"IP range files (default {RANGES_DIR})")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    rng = random.Random(args.seed)
    catalog = load_catalog()
    addrs = Addresses(rng, args.ranges)
    records = Records()
    population = Population(rng, addrs, records)
    width = max(5, len(str(args.domains)))
    targets = [f"{weighted(rng, SECTORS)}-{i:0{width}d}.{weighted(rng, TLDS)}" for i in range(1, args.domains + 1)]
    records.zones.update(targets)
    patterns = {d: population.domain(d) for d in targets}
    server = Server(records)

    # What the data implies: every rule, tenant records always looked at.
    implied = Rules(catalog, addrs.ranges, Resolver(server), always_check_tenant=True)
    expected = {d: sorted([c, p, conf] for (c, p), conf in implied.evaluate(d).items()) for d in targets}
    # What the detectors look at today, and the queries that takes: one scan process ...
    resolver = Resolver(server)
    current = Rules(catalog, addrs.ranges, resolver)
    skipped = {}
    for d in targets:
        found = current.evaluate(d)
        left = [[c, p] for c, p, _ in expected[d] if (c, p) not in found]
        if left:
            skipped[d] = left
    # ... and n worker processes, each with its own shared cache (target i goes to worker i % n).
    by_workers = {1: (len(resolver.sent), resolver.tcp)}
    for n in (2, 3, 4):
        shards = [Rules(catalog, addrs.ranges, Resolver(server)) for _ in range(n)]
        for i, d in enumerate(targets):
            shards[i % n].evaluate(d)
        by_workers[n] = (sum(len(r.dns.sent) for r in shards), sum(r.dns.tcp for r in shards))

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    write_zones(out, records, targets, args.port)
    (out / "targets.txt").write_text("\n".join(targets) + "\n")
    (out / "queries.txt").write_text("".join(f"{name} {qtype}\n" for name, qtype, _, _ in resolver.sent))
    (out / "expected.json").write_text(json.dumps(expected, separators=(",", ":")) + "\n")
    (out / "not_looked_for.json").write_text(json.dumps(skipped, separators=(",", ":")) + "\n")
    (out / "patterns.json").write_text(json.dumps(patterns, separators=(",", ":")) + "\n")

    # The query mix per domain, by name and type (provider-side names are asked once per process).
    mix: Counter[str] = Counter()
    by_type: Counter[str] = Counter()
    for name, qtype, private, domain in resolver.sent:
        mix[query_label(name, qtype, private, domain)] += 1
        by_type[qtype] += 1
    n = len(targets)
    implied_count = Counter((c, p) for deps in expected.values() for c, p, _ in deps)
    meta = {
        "domains": n,
        "seed": args.seed,
        "port": args.port,
        "ttl": TTL,
        "generator_sha256": hashlib.sha256(Path(__file__).read_bytes()).hexdigest(),
        "catalog_sha256": hashlib.sha256(resources.files("dijkwacht.catalog").joinpath("providers.toml").read_bytes()).hexdigest(),
        "ranges_dir": str(args.ranges.resolve()),
        "zones": n + 1,
        "records": sum(len(v) for types in records.data.values() for v in types.values()),
        "queries": len(resolver.sent),
        "queries_private": sum(1 for _, _, private, _ in resolver.sent if private),
        "queries_tcp_retries": resolver.tcp,
        "queries_per_domain": round(len(resolver.sent) / n, 2),
        "queries_by_workers": {str(k): {"queries": q, "tcp_retries": t} for k, (q, t) in by_workers.items()},
        "query_types": dict(by_type.most_common()),
        "query_mix_per_domain": {k: round(v / n, 3) for k, v in mix.most_common()},
        "implied_dependencies": sum(implied_count.values()),
        "implied_not_looked_for": sum(len(v) for v in skipped.values()),
        "implied_by_provider": {f"{c}/{p}": v for (c, p), v in implied_count.most_common()},
        "patterns": dict(Counter(t for tags in patterns.values() for t in tags).most_common()),
        "seconds": round(time.perf_counter() - started, 1),
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"generated {n} domains in {meta['seconds']} s: {meta['records']} records, {meta['zones']} zones, "
          f"{meta['implied_dependencies']} implied dependencies ({meta['implied_not_looked_for']} not looked for by the current rules), "
          f"{meta['queries']} queries ({meta['queries_per_domain']} per domain, {resolver.tcp} answers over TCP) -> {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
