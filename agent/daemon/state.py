"""Confirmed dependencies and their change history, in SQLite.

A move is confirmed only after `confirmations` consecutive complete scans agree; a scan whose
detector failed for a category neither counts toward nor resets a pending move, so a SERVFAIL
period changes nothing. The first complete scan of a target is its baseline, never a change.
Every write is one transaction in WAL mode: a kill -9 loses at most the scan in progress.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from ..catalog import Catalog, is_foreign
from ..scanner import Dependency, TargetResult, counted

SCHEMA = """
CREATE TABLE IF NOT EXISTS dependencies (
    target TEXT NOT NULL, category TEXT NOT NULL, provider TEXT NOT NULL,
    name TEXT NOT NULL, jurisdiction TEXT NOT NULL, parent TEXT NOT NULL,
    confidence TEXT NOT NULL, evidence TEXT NOT NULL, since REAL NOT NULL,
    role TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (target, category, provider)
);
CREATE TABLE IF NOT EXISTS baselines (
    target TEXT NOT NULL, category TEXT NOT NULL, at REAL NOT NULL,
    PRIMARY KEY (target, category)
);
CREATE TABLE IF NOT EXISTS pending (
    target TEXT NOT NULL, category TEXT NOT NULL, providers TEXT NOT NULL,
    count INTEGER NOT NULL, first_seen REAL NOT NULL,
    PRIMARY KEY (target, category)
);
CREATE TABLE IF NOT EXISTS changes (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, target TEXT NOT NULL,
    category TEXT NOT NULL, reason TEXT NOT NULL,
    from_providers TEXT NOT NULL, to_providers TEXT NOT NULL,
    from_jurisdiction TEXT NOT NULL, to_jurisdiction TEXT NOT NULL,
    to_foreign INTEGER NOT NULL, evidence TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS changes_target ON changes (target, at);
CREATE TABLE IF NOT EXISTS scans (
    target TEXT PRIMARY KEY, last_attempt REAL NOT NULL, last_success REAL,
    errors TEXT NOT NULL, duration REAL NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class Change:
    at: float
    target: str
    category: str
    reason: str  # "dns" or "ownership"
    from_providers: tuple[str, ...]
    to_providers: tuple[str, ...]
    from_jurisdiction: str  # comma-joined, sorted
    to_jurisdiction: str
    to_foreign: bool
    evidence: tuple[str, ...]
    id: int = 0

    def to_json(self) -> dict:
        return {
            "at": dt.datetime.fromtimestamp(self.at, dt.UTC).isoformat(timespec="seconds"),
            "target": self.target,
            "category": self.category,
            "reason": self.reason,
            "from": list(self.from_providers),
            "to": list(self.to_providers),
            "from_jurisdiction": self.from_jurisdiction,
            "to_jurisdiction": self.to_jurisdiction,
            "to_foreign": self.to_foreign,
            "evidence": list(self.evidence),
        }


@dataclass(frozen=True, slots=True)
class ScanRecord:
    last_attempt: float
    last_success: float | None
    errors: Mapping[str, int]  # detector -> errors in the latest scan
    duration: float


def _jurisdictions(deps: Iterable[Dependency]) -> str:
    return ",".join(sorted({d.jurisdiction for d in deps if d.jurisdiction}))


def _ownership_change(target: str, category: str, before: list[Dependency], after: list[Dependency], home: frozenset[str], now: float) -> Change | None:
    """The "ownership" change between two sets of the same providers, or None if no parent moved."""
    was = {d.provider: d for d in before}
    moved = [d for d in after if d.provider in was and d.jurisdiction != was[d.provider].jurisdiction]
    if not moved:
        return None
    providers = tuple(sorted(was))
    return Change(
        now, target, category, "ownership", providers, providers, _jurisdictions(before), _jurisdictions(after),
        any(is_foreign(d.jurisdiction, home) and not is_foreign(was[d.provider].jurisdiction, home) for d in moved),
        tuple(f"{d.provider}: ultimate parent now {d.parent} ({d.jurisdiction or 'unknown'}), was {was[d.provider].parent} ({was[d.provider].jurisdiction or 'unknown'})" for d in moved),
    )


_DEPENDENCY_COLUMNS = "category, provider, name, jurisdiction, parent, confidence, evidence, role"


def _dependency(row: tuple) -> Dependency:
    category, provider, name, juris, parent, confidence, evidence, role = row
    return Dependency(category, provider, name, juris, False, tuple(json.loads(evidence)), confidence, parent, role)


class StateStore:
    """`count_inferred`: whether inferred dependencies take part in change detection. They are
    stored either way, so switching the setting never looks like a move."""

    def __init__(self, path: Path | str, confirmations: int = 2, count_inferred: bool = False) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self.confirmations = confirmations
        self.count_inferred = count_inferred
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)
        columns = {row[1] for row in self.db.execute("PRAGMA table_info(dependencies)")}
        if "role" not in columns:  # a database written before dependencies had roles
            self.db.execute("ALTER TABLE dependencies ADD COLUMN role TEXT NOT NULL DEFAULT ''")

    def close(self) -> None:
        self.db.close()

    # ---- reading ---------------------------------------------------------------------------

    def dependencies(self) -> dict[str, dict[str, list[Dependency]]]:
        """target -> category -> confirmed dependencies. `foreign` is recomputed by the reader."""
        out: dict[str, dict[str, list[Dependency]]] = {}
        for target, *row in self.db.execute(f"SELECT target, {_DEPENDENCY_COLUMNS} FROM dependencies ORDER BY target, category, provider"):
            dep = _dependency(tuple(row))
            out.setdefault(target, {}).setdefault(dep.category, []).append(dep)
        return out

    def baselined(self) -> dict[str, set[str]]:
        """target -> categories that have a baseline (were scanned completely at least once)."""
        out: dict[str, set[str]] = {}
        for target, category in self.db.execute("SELECT target, category FROM baselines"):
            out.setdefault(target, set()).add(category)
        return out

    def scans(self) -> dict[str, ScanRecord]:
        return {
            target: ScanRecord(attempt, success, json.loads(errors), duration)
            for target, attempt, success, errors, duration in self.db.execute("SELECT * FROM scans")
        }

    def changes(self, target: str | None = None, since: float | None = None) -> list[Change]:
        query = "SELECT id, at, target, category, reason, from_providers, to_providers, from_jurisdiction, to_jurisdiction, to_foreign, evidence FROM changes WHERE 1=1"
        args: list = []
        if target:
            query += " AND target = ?"
            args.append(target)
        if since is not None:
            query += " AND at >= ?"
            args.append(since)
        rows = self.db.execute(query + " ORDER BY at, id", args)
        return [
            Change(at, tgt, cat, reason, tuple(json.loads(fp)), tuple(json.loads(tp)), fj, tj, bool(tf), tuple(json.loads(ev)), cid)
            for cid, at, tgt, cat, reason, fp, tp, fj, tj, tf, ev in rows
        ]

    def last_changes(self) -> dict[tuple[str, str], Change]:
        """The latest change per (target, category)."""
        return {(c.target, c.category): c for c in self.changes()}

    # ---- writing ---------------------------------------------------------------------------

    def record(self, result: TargetResult, home: frozenset[str], now: float | None = None) -> list[Change]:
        """Fold one scan result into the state; return the changes it confirmed."""
        now = time.time() if now is None else now
        target = result.target.domain
        by_category: dict[str, list[Dependency]] = {c: [] for c in result.scanned}
        for dep in result.dependencies:
            by_category.setdefault(dep.category, []).append(dep)
        errors: dict[str, int] = {}
        for error in result.errors:
            errors[error.detector] = errors.get(error.detector, 0) + 1
        changes: list[Change] = []
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            stored = self.stored(target)
            baselined = {c for (c,) in db.execute("SELECT category FROM baselines WHERE target = ?", (target,))}
            for category, deps in by_category.items():
                if category in result.incomplete:
                    continue  # unknown is not absence: neither a move nor a vote for one
                all_deps, deps = deps, counted(deps, self.count_inferred)
                new = tuple(sorted(d.provider for d in deps))
                old_deps = counted(stored.get(category, []), self.count_inferred)
                old = tuple(sorted(d.provider for d in old_deps))
                if category not in baselined:
                    db.execute("INSERT INTO baselines VALUES (?, ?, ?)", (target, category, now))
                    self._replace(target, category, all_deps, now)
                    continue
                if new == old:
                    db.execute("DELETE FROM pending WHERE target = ? AND category = ?", (target, category))
                    # Same providers, other jurisdiction: an acquisition took effect since.
                    change = _ownership_change(target, category, old_deps, deps, home, now)
                    if change is not None:
                        changes.append(self._insert_change(change))
                    self._replace(target, category, all_deps, now)
                    continue
                row = db.execute("SELECT providers, count FROM pending WHERE target = ? AND category = ?", (target, category)).fetchone()
                count = row[1] + 1 if row and tuple(json.loads(row[0])) == new else 1
                if count < self.confirmations:
                    db.execute("INSERT OR REPLACE INTO pending VALUES (?, ?, ?, ?, ?)", (target, category, json.dumps(new), count, now))
                    continue
                db.execute("DELETE FROM pending WHERE target = ? AND category = ?", (target, category))
                added = [d for d in deps if d.provider not in old]
                change = Change(
                    now, target, category, "dns", old, new, _jurisdictions(old_deps), _jurisdictions(deps),
                    any(is_foreign(d.jurisdiction, home) for d in added),
                    tuple(e for d in deps for e in d.evidence[:3]) or (f"no {category} dependency found",),
                )
                changes.append(self._insert_change(change))
                self._replace(target, category, all_deps, now)
            ok = not result.errors
            db.execute(
                "INSERT INTO scans VALUES (?, ?, ?, ?, ?) ON CONFLICT(target) DO UPDATE SET last_attempt = excluded.last_attempt, "
                "last_success = COALESCE(excluded.last_success, scans.last_success), errors = excluded.errors, duration = excluded.duration",
                (target, now, now if ok else None, json.dumps(errors), result.duration),
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return changes

    def apply_ownership(self, catalog: Catalog, home: frozenset[str], day: dt.date | None = None, now: float | None = None) -> list[Change]:
        """Record an "ownership" change for every stored dependency whose provider's ultimate
        parent moved to another jurisdiction in the catalog, although no DNS record changed."""
        now = time.time() if now is None else now
        day = day or dt.date.today()
        moved: dict[str, tuple[str, str]] = {}
        for provider_id, juris in self.db.execute("SELECT DISTINCT provider, jurisdiction FROM dependencies"):
            owner = catalog.owner(provider_id, day)
            if owner is not None and owner.jurisdiction != juris:
                moved.setdefault(provider_id, (owner.jurisdiction, owner.parent))
        if not moved:
            return []
        changes = []
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            rows = db.execute(
                f"SELECT DISTINCT target, category FROM dependencies WHERE provider IN ({','.join('?' * len(moved))})", list(moved)
            ).fetchall()
            for target, category in rows:
                before = counted(self.stored(target).get(category, []), self.count_inferred)
                after = [replace(d, jurisdiction=moved[d.provider][0], parent=moved[d.provider][1]) if d.provider in moved else d for d in before]
                change = _ownership_change(target, category, before, after, home, now)
                if change is not None:
                    changes.append(self._insert_change(change))
            for provider_id, (juris, parent) in moved.items():
                db.execute("UPDATE dependencies SET jurisdiction = ?, parent = ? WHERE provider = ?", (juris, parent, provider_id))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return changes

    def forget(self, targets: Iterable[str]) -> None:
        """Drop current state (not history) of targets no longer configured."""
        targets = list(targets)
        if not targets:
            return
        marks = ",".join("?" * len(targets))
        with self.db:
            for table in ("dependencies", "baselines", "pending", "scans"):
                self.db.execute(f"DELETE FROM {table} WHERE target IN ({marks})", targets)

    # ---- helpers -------------------------------------------------------------------------

    def stored(self, target: str) -> dict[str, list[Dependency]]:
        out: dict[str, list[Dependency]] = {}
        for row in self.db.execute(f"SELECT {_DEPENDENCY_COLUMNS} FROM dependencies WHERE target = ?", (target,)):
            dep = _dependency(row)
            out.setdefault(dep.category, []).append(dep)
        return out

    def _replace(self, target: str, category: str, deps: list[Dependency], now: float) -> None:
        """Store `deps` as the current set, keeping `since` for providers already present."""
        since = {p: s for p, s in self.db.execute("SELECT provider, since FROM dependencies WHERE target = ? AND category = ?", (target, category))}
        self.db.execute("DELETE FROM dependencies WHERE target = ? AND category = ?", (target, category))
        self.db.executemany(
            f"INSERT INTO dependencies (target, since, {_DEPENDENCY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (target, since.get(d.provider, now), category, d.provider, d.name, d.jurisdiction, d.parent, d.confidence, json.dumps(list(d.evidence)), d.role)
                for d in deps
            ],
        )

    def _insert_change(self, change: Change) -> Change:
        cursor = self.db.execute(
            "INSERT INTO changes (at, target, category, reason, from_providers, to_providers, from_jurisdiction, to_jurisdiction, to_foreign, evidence) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                change.at, change.target, change.category, change.reason, json.dumps(list(change.from_providers)),
                json.dumps(list(change.to_providers)), change.from_jurisdiction, change.to_jurisdiction, int(change.to_foreign),
                json.dumps(list(change.evidence)),
            ),
        )
        return Change(**{**{f: getattr(change, f) for f in change.__slots__}, "id": cursor.lastrowid})
