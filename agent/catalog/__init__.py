"""The provider catalog: who runs a service, who owns them, and the facts that identify them.

The catalog is data (TOML), loaded once and shared read-only. Ownership is dated, so the
jurisdiction of a provider is a function of the day: an acquisition that completed moves a
provider to its new parent's jurisdiction without any DNS record changing.
"""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..tomlpos import find_line, read_toml

FACT_KINDS = frozenset({"mx", "cname", "srv", "ns", "spf", "txt", "dkim", "http_header", "ptr", "asn"})
HOST_KINDS = frozenset({"mx", "cname", "srv", "ns", "spf", "ptr"})
CONFIDENCES = ("confirmed", "indicated", "inferred")
STATUSES = frozenset({"announced", "completed", "prohibited"})
# What part a provider plays for a domain. Email has three; a merged dependency keeps the first
# of EMAIL_ROLES it was found in (a mailbox provider also sends; a gateway also relays).
EMAIL_ROLES = ("mailbox", "gateway", "sending")
_CATEGORY_ROLE = {"video": "meeting", "cdn": "cdn", "hosting": "hosting", "dns": "dns"}
_DEFAULT_CONFIDENCE = {"spf": "indicated", "txt": "indicated", "dkim": "indicated"}
_ID = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_ISO = re.compile(r"^[A-Z]{2}$")
_AS_ID = re.compile(r"^as\d+$")

EU = frozenset(
    "AT BE BG HR CY CZ DK EE FI FR DE GR HU IE IT LV LT LU MT NL PL PT RO SK SI ES SE".split()
)
EEA = EU | {"IS", "LI", "NO"}


@dataclass(frozen=True, slots=True)
class Fact:
    provider: str
    kind: str
    category: str
    value: str
    source: str
    service: str = ""
    confidence: str = "confirmed"
    role: str = ""  # empty: the provider's default role in the category (Catalog.default_role)


@dataclass(frozen=True, slots=True)
class Ownership:
    parent: str
    jurisdiction: str
    status: str
    effective: dt.date
    source: str
    note: str = ""


@dataclass(frozen=True, slots=True)
class Owner:
    """Who owns a provider on a given day, and which record (if any) made it so."""

    parent: str
    jurisdiction: str
    since: dt.date | None = None


@dataclass(frozen=True)
class Provider:
    id: str
    name: str
    operator: str
    parent: str
    jurisdiction: str
    source: str
    control: str = ""  # how the parent controls the operator (docs/catalog.md, the ownership rule)
    group: str = ""  # the group between the operator and the ultimate parent, if any (team.blue)
    ip_role: str = "hosting"
    mail_gateway: bool = False  # a filtering service in front of someone's mailbox provider
    # False: the owners above the operator (or group) could not be verified from public
    # sources, so that company is taken as the top of the chain (docs/catalog.md).
    verified: bool = True
    note: str = ""
    facts: tuple[Fact, ...] = ()
    ownership: tuple[Ownership, ...] = ()

    def owner_on(self, day: dt.date) -> Owner:
        """Ultimate parent on `day`: the latest completed acquisition in effect, else the base."""
        current = Owner(self.parent, self.jurisdiction)
        for record in sorted(self.ownership, key=lambda r: r.effective):
            if record.status == "completed" and record.effective <= day:
                current = Owner(record.parent, record.jurisdiction, record.effective)
        return current


class HostMatcher:
    """Suffix matching on label boundaries, plus `*` (one label) and `re:` patterns.

    Suffix facts sit in a dict keyed by suffix, so a lookup costs one dict probe per label of
    the hostname however large the catalog grows.
    """

    def __init__(self, facts: Iterable[Fact]) -> None:
        self._suffix: dict[str, list[Fact]] = {}
        self._patterns: list[tuple[re.Pattern[str], Fact]] = []
        for fact in facts:
            value = fact.value
            if value.startswith("re:"):
                self._patterns.append((re.compile(value[3:]), fact))
            elif "*" in value:
                labels = [r"[^.]+" if label == "*" else re.escape(label) for label in value.split(".")]
                self._patterns.append((re.compile(r"(^|\.)" + r"\.".join(labels) + "$"), fact))
            else:
                self._suffix.setdefault(value, []).append(fact)

    def match(self, hostname: str) -> list[Fact]:
        host = hostname.lower().rstrip(".")
        found: list[Fact] = []
        suffix = host
        while True:
            hit = self._suffix.get(suffix)
            if hit:
                found.extend(hit)
            dot = suffix.find(".")
            if dot < 0:
                break
            suffix = suffix[dot + 1 :]
        for pattern, fact in self._patterns:
            if pattern.search(host):
                found.append(fact)
        return found


class Catalog:
    """All providers, with matchers per fact kind. Read-only once built."""

    def __init__(self, providers: Mapping[str, Provider], sources: Sequence[str] = ()) -> None:
        self.providers: dict[str, Provider] = dict(providers)
        self.sources = tuple(sources)
        facts = [fact for p in self.providers.values() for fact in p.facts]
        self._hosts = {
            kind: HostMatcher(f for f in facts if f.kind == kind) for kind in HOST_KINDS
        }
        self._txt = [(re.compile(f.value), f) for f in facts if f.kind == "txt"]
        self._headers: list[tuple[str, re.Pattern[str] | None, Fact]] = []
        for f in facts:
            if f.kind == "http_header":
                name, _, pattern = f.value.partition(":")
                regex = re.compile(pattern.strip(), re.IGNORECASE) if pattern.strip() else None
                self._headers.append((name.strip().lower(), regex, f))
        # AS number -> provider, for addresses attributed through the IP-to-AS table.
        self.asn_providers: dict[int, str] = {}
        for f in facts:
            if f.kind == "asn":
                self.asn_providers.setdefault(int(f.value), f.provider)
        self.dkim_selectors: dict[str, list[Fact]] = {}
        for f in facts:
            if f.kind == "dkim":
                self.dkim_selectors.setdefault(f.value, []).append(f)
        # One selector per provider is enough to see it (they come in pairs: hse1/hse2...),
        # and each selector asked costs a query per target.
        self.dkim_probe_selectors: dict[str, list[Fact]] = {}
        covered: set[str] = set()
        for selector, found in self.dkim_selectors.items():
            owners = {f.provider for f in found}
            if not owners <= covered:
                self.dkim_probe_selectors[selector] = found
                covered |= owners

    def match_host(self, kind: str, hostname: str, category: str | None = None) -> list[Fact]:
        """Facts of `kind` whose hostname pattern matches, optionally of one category."""
        found = self._hosts[kind].match(hostname)
        return [f for f in found if f.category == category] if category else found

    def match_txt(self, text: str, category: str | None = None) -> list[Fact]:
        return [f for regex, f in self._txt if (category is None or f.category == category) and regex.match(text)]

    def match_headers(self, headers: Mapping[str, str]) -> list[tuple[Fact, str]]:
        """Facts matched by HTTP response headers (names compared case-insensitively)."""
        lowered = {k.lower(): v for k, v in headers.items()}
        found = []
        for name, regex, fact in self._headers:
            value = lowered.get(name)
            if value is not None and (regex is None or regex.search(value)):
                found.append((fact, f"{name}: {value}"))
        return found

    def default_role(self, category: str, provider_id: str) -> str:
        """The role of a finding that names none: email by the provider's kind (a gateway,
        else a mailbox), video `meeting`, any other category its own name (cdn, hosting, dns)."""
        if category == "email":
            provider = self.providers.get(provider_id)
            return "gateway" if provider is not None and provider.mail_gateway else "mailbox"
        return _CATEGORY_ROLE.get(category, category)

    def owner(self, provider_id: str, day: dt.date | None = None) -> Owner | None:
        provider = self.providers.get(provider_id)
        return provider.owner_on(day or dt.date.today()) if provider else None


@dataclass
class _Raw:
    """One provider as read from one or more files, before validation."""

    data: dict[str, Any] = field(default_factory=dict)
    facts: list[tuple[str, str, int, dict[str, Any]]] = field(default_factory=list)
    ownership: list[tuple[str, str, int, dict[str, Any]]] = field(default_factory=list)
    origin: dict[str, tuple[str, str]] = field(default_factory=dict)
    first: tuple[str, str] = ("<catalog>", "")  # (path, text) of the file that first named it


_PROVIDER_KEYS = {"name", "operator", "group", "parent", "jurisdiction", "control", "source", "ip_role", "mail_gateway", "verified", "note", "facts", "ownership"}
_BOOLEAN_KEYS = frozenset({"mail_gateway", "verified"})
_FACT_KEYS = {"kind", "category", "value", "service", "confidence", "source", "role"}
_OWNERSHIP_KEYS = {"parent", "jurisdiction", "status", "effective", "source", "note"}


def _error(path: str, text: str, table: str, key: str, message: str, index: int | None = None) -> ConfigError:
    dotted = f"{table}.{key}" if key else table
    return ConfigError(path, message, key=dotted, line=find_line(text, table, key, index))


def _merge(raws: dict[str, _Raw], path: str, text: str, doc: dict[str, Any]) -> None:
    unknown = set(doc) - {"providers"}
    if unknown:
        key = sorted(unknown)[0]
        raise ConfigError(path, "unknown top-level key (expected [providers.<id>])", key=key, line=find_line(text, "", key))
    providers = doc.get("providers", {})
    if not isinstance(providers, dict):
        raise ConfigError(path, "must be a table of providers", key="providers")
    for pid, body in providers.items():
        table = f"providers.{pid}"
        if not _ID.match(pid):
            raise _error(path, text, table, "", "provider id must be a lowercase slug ([a-z0-9-])")
        if _AS_ID.match(pid):
            raise _error(path, text, table, "", "ids as<number> are reserved for AS organisations found through the IP-to-AS table")
        if not isinstance(body, dict):
            raise _error(path, text, "providers", pid, "must be a table")
        extra = set(body) - _PROVIDER_KEYS
        if extra:
            raise _error(path, text, table, sorted(extra)[0], "unknown key")
        raw = raws.get(pid)
        if raw is None:
            raw = raws[pid] = _Raw(first=(path, text))
        for key, value in body.items():
            if key in ("facts", "ownership"):
                continue
            raw.data[key] = value
            raw.origin[key] = (path, text)
        for key, bucket in (("facts", raw.facts), ("ownership", raw.ownership)):
            entries = body.get(key, [])
            if not isinstance(entries, list):
                raise _error(path, text, table, key, "must be an array of tables ([[...]])")
            for i, entry in enumerate(entries):
                bucket.append((path, text, i, entry))


def _str(value: Any) -> bool:
    return isinstance(value, str) and value.strip() != ""


def _entries(entries: list[tuple[str, str, int, Any]], table: str, known: set[str], required: tuple[str, ...]) -> Iterator[tuple[str, str, int, dict[str, Any]]]:
    """Entries of an array of tables, checked for shape, unknown keys and required strings."""
    for path, text, i, entry in entries:
        if not isinstance(entry, dict):
            raise _error(path, text, table, "", "each entry must be a table", i)
        extra = set(entry) - known
        if extra:
            raise _error(path, text, table, sorted(extra)[0], "unknown key", i)
        for key in required:
            if not _str(entry.get(key)):
                raise _error(path, text, table, key, "is required and must be a non-empty string", i)
        yield path, text, i, entry


def _build(pid: str, raw: _Raw) -> Provider:
    table = f"providers.{pid}"
    for key in ("name", "jurisdiction", "source"):
        if key not in raw.data:
            path, text = raw.first
            raise _error(path, text, table, "", f"provider '{pid}' lacks required key '{key}'")
    for key, value in raw.data.items():
        path, text = raw.origin[key]
        boolean = key in _BOOLEAN_KEYS
        if not isinstance(value, bool if boolean else str):
            raise _error(path, text, table, key, "must be true or false" if boolean else "must be a string")
    path, text = raw.origin["jurisdiction"]
    jurisdiction = raw.data["jurisdiction"]
    if jurisdiction and not _ISO.match(jurisdiction):
        raise _error(path, text, table, "jurisdiction", f"'{jurisdiction}' is not an ISO 3166-1 alpha-2 code")
    ip_role = raw.data.get("ip_role", "hosting")
    if ip_role not in ("hosting", "cdn"):
        path, text = raw.origin["ip_role"]
        raise _error(path, text, table, "ip_role", "must be 'hosting' or 'cdn'")

    facts = []
    ftable = f"{table}.facts"
    for path, text, i, entry in _entries(raw.facts, ftable, _FACT_KEYS, ("kind", "category", "value", "source")):
        kind = entry["kind"]
        if kind not in FACT_KINDS:
            raise _error(path, text, ftable, "kind", f"'{kind}' is not one of {sorted(FACT_KINDS)}", i)
        confidence = entry.get("confidence", _DEFAULT_CONFIDENCE.get(kind, "confirmed"))
        if confidence not in CONFIDENCES:
            raise _error(path, text, ftable, "confidence", f"must be one of {list(CONFIDENCES)}", i)
        role = entry.get("role", "")
        if role != "" and not (isinstance(role, str) and _ID.match(role)):
            raise _error(path, text, ftable, "role", "must be a lowercase slug such as mailbox, gateway or sending", i)
        value = entry["value"] if kind in ("txt", "http_header") else entry["value"].lower().rstrip(".")
        if kind == "asn" and not (value.isascii() and value.isdigit()):
            raise _error(path, text, ftable, "value", f"'{value}' is not an AS number (digits only)", i)
        pattern = value[3:] if value.startswith("re:") else value if kind == "txt" else None
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise _error(path, text, ftable, "value", f"invalid regular expression: {exc}", i) from exc
        facts.append(
            Fact(pid, kind, entry["category"], value, entry["source"], entry.get("service", ""), confidence, role)
        )

    ownership = []
    otable = f"{table}.ownership"
    for path, text, i, entry in _entries(raw.ownership, otable, _OWNERSHIP_KEYS, ("parent", "jurisdiction", "status", "source")):
        if not _ISO.match(entry["jurisdiction"]):
            raise _error(path, text, otable, "jurisdiction", "must be an ISO 3166-1 alpha-2 code", i)
        if entry["status"] not in STATUSES:
            raise _error(path, text, otable, "status", f"must be one of {sorted(STATUSES)}", i)
        effective = entry.get("effective")
        if not isinstance(effective, dt.date) or isinstance(effective, dt.datetime):
            raise _error(path, text, otable, "effective", "must be a TOML date such as 2025-06-24", i)
        ownership.append(
            Ownership(entry["parent"], entry["jurisdiction"], entry["status"], effective, entry["source"], entry.get("note", ""))
        )

    data = raw.data
    return Provider(
        id=pid,
        name=data["name"],
        operator=data.get("operator", data["name"]),
        parent=data.get("parent", data.get("operator", data["name"])),
        jurisdiction=jurisdiction,
        source=data["source"],
        control=data.get("control", ""),
        group=data.get("group", ""),
        ip_role=ip_role,
        mail_gateway=data.get("mail_gateway", False),
        verified=data.get("verified", True),
        note=data.get("note", ""),
        facts=tuple(facts),
        ownership=tuple(ownership),
    )


BUILTIN = "providers.toml"


def load_catalog(extra: Iterable[Path] = (), *, builtin: bool = True) -> Catalog:
    """Load the built-in catalog, then each extra file in order (later files extend/override)."""
    raws: dict[str, _Raw] = {}
    sources = []
    if builtin:
        ref = resources.files(__package__).joinpath(BUILTIN)
        text = ref.read_text(encoding="utf-8")
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(str(ref), f"invalid TOML: {exc}") from exc
        _merge(raws, str(ref), text, doc)
        sources.append(str(ref))
    for path in extra:
        text, doc = read_toml(Path(path), "catalog")
        _merge(raws, str(path), text, doc)
        sources.append(str(path))
    return Catalog({pid: _build(pid, raw) for pid, raw in raws.items()}, sources)


def is_foreign(jurisdiction: str, home: frozenset[str]) -> bool:
    """Known and outside home. An unknown jurisdiction ("") is never foreign."""
    return bool(jurisdiction) and jurisdiction not in home


def expand_home(entries: Iterable[str]) -> frozenset[str]:
    """Turn the `home` setting ("EU", "EEA" or alpha-2 codes) into a set of country codes."""
    home: set[str] = set()
    for entry in entries:
        code = entry.upper()
        if code == "EU":
            home |= EU
        elif code == "EEA":
            home |= EEA
        elif _ISO.match(code):
            home.add(code)
        else:
            raise ValueError(f"'{entry}' is neither EU, EEA nor an ISO 3166-1 alpha-2 code")
    return frozenset(home)
