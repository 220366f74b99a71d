"""The state store: baselines, confirmation of moves, failures that change nothing, ownership."""

from __future__ import annotations

import datetime as dt

from dijkwacht.catalog import Catalog, Ownership, Provider
from dijkwacht.state import StateStore
from dijkwacht.scanner import Dependency, ScanError, TargetResult
from dijkwacht.targets import Target

EU = frozenset({"NL", "DE", "BE"})


def dep(provider, juris, category="email", evidence="MX x"):
    return Dependency(category, provider, provider.title(), juris, juris not in EU, (evidence,), "confirmed", f"{provider} parent")


def result(domain="gemeente.nl", deps=(), errors=(), incomplete=(), scanned=("email", "dns")):
    return TargetResult(
        Target(domain), list(deps), [ScanError(d, "MX gemeente.nl: SERVFAIL") for d in errors], frozenset(incomplete), frozenset(scanned), duration=0.01
    )


def providers(store, domain="gemeente.nl", category="email"):
    return sorted(d.provider for d in store.stored(domain).get(category, []))


def test_first_scan_is_a_baseline_not_a_change(tmp_path):
    store = StateStore(tmp_path / "state.db")
    assert store.record(result(deps=[dep("transip", "NL")]), EU, now=1) == []
    assert providers(store) == ["transip"]
    assert store.baselined() == {"gemeente.nl": {"email", "dns"}}
    assert store.changes() == []


def test_move_is_confirmed_after_n_agreeing_scans(tmp_path):
    store = StateStore(tmp_path / "state.db", confirmations=2)
    store.record(result(deps=[dep("transip", "NL")]), EU, now=1)
    assert store.record(result(deps=[dep("microsoft", "US")]), EU, now=2) == []
    assert providers(store) == ["transip"]  # one scan is not enough
    [change] = store.record(result(deps=[dep("microsoft", "US", evidence="MX x.mail.protection.outlook.com")]), EU, now=3)
    assert (change.from_providers, change.to_providers) == (("transip",), ("microsoft",))
    assert (change.from_jurisdiction, change.to_jurisdiction, change.to_foreign, change.reason) == ("NL", "US", True, "dns")
    assert change.evidence == ("MX x.mail.protection.outlook.com",)
    assert change.at == 3
    assert providers(store) == ["microsoft"]
    assert store.changes() == [change]


def test_failed_scans_neither_count_nor_reset(tmp_path):
    store = StateStore(tmp_path / "state.db", confirmations=2)
    store.record(result(deps=[dep("transip", "NL")]), EU, now=1)
    # a SERVFAIL period: email incomplete and (as a failing scan sees it) empty
    for t in range(2, 6):
        assert store.record(result(deps=[], errors=["email"], incomplete=["email"]), EU, now=t) == []
    assert providers(store) == ["transip"]
    assert store.changes() == []
    scans = store.scans()["gemeente.nl"]
    assert scans.last_success == 1 and scans.last_attempt == 5 and scans.errors == {"email": 1}


def test_failures_between_two_agreeing_scans_do_not_break_the_count(tmp_path):
    store = StateStore(tmp_path / "state.db", confirmations=2)
    store.record(result(deps=[dep("transip", "NL")]), EU, now=1)
    store.record(result(deps=[dep("microsoft", "US")]), EU, now=2)
    store.record(result(errors=["email"], incomplete=["email"]), EU, now=3)
    assert len(store.record(result(deps=[dep("microsoft", "US")]), EU, now=4)) == 1


def test_flapping_answers_are_not_a_move(tmp_path):
    store = StateStore(tmp_path / "state.db", confirmations=2)
    store.record(result(deps=[dep("transip", "NL")]), EU, now=1)
    for t, deps in enumerate([[dep("microsoft", "US")], [dep("transip", "NL")], [dep("microsoft", "US")], [dep("transip", "NL")]], start=2):
        assert store.record(result(deps=deps), EU, now=t) == []
    assert providers(store) == ["transip"]


def test_adding_a_gateway_and_losing_a_provider_are_changes(tmp_path):
    store = StateStore(tmp_path / "state.db", confirmations=1)
    store.record(result(deps=[dep("microsoft", "US")]), EU, now=1)
    [added] = store.record(result(deps=[dep("microsoft", "US"), dep("proofpoint", "US")]), EU, now=2)
    assert added.to_providers == ("microsoft", "proofpoint") and added.to_foreign
    [gone] = store.record(result(deps=[]), EU, now=3)
    assert gone.to_providers == () and not gone.to_foreign and gone.to_jurisdiction == ""


def test_state_survives_reopening(tmp_path):
    path = tmp_path / "state.db"
    store = StateStore(path, confirmations=1)
    store.record(result(deps=[dep("transip", "NL")]), EU, now=1)
    store.record(result(deps=[dep("microsoft", "US")]), EU, now=2)
    store.close()
    again = StateStore(path, confirmations=1)
    assert providers(again) == ["microsoft"]
    assert [c.to_providers for c in again.changes()] == [("microsoft",)]
    assert again.record(result(deps=[dep("microsoft", "US")]), EU, now=3) == []


def _catalog(ownership=()):
    zivver = Provider("zivver", "Zivver", "Zivver B.V.", "Zivver B.V.", "NL", "https://example.test", ownership=tuple(ownership))
    return Catalog({"zivver": zivver})


def test_acquisition_in_the_catalog_is_an_ownership_change(tmp_path):
    store = StateStore(tmp_path / "state.db")
    store.record(result(deps=[dep("zivver", "NL")]), EU, now=1)
    store.record(result(domain="ziekenhuis.nl", deps=[dep("zivver", "NL")]), EU, now=1)
    assert store.apply_ownership(_catalog(), EU, day=dt.date(2026, 1, 1), now=2) == []
    bought = _catalog([Ownership("Kiteworks", "US", "completed", dt.date(2025, 6, 1), "https://example.test")])
    changes = store.apply_ownership(bought, EU, day=dt.date(2026, 1, 1), now=3)
    assert sorted(c.target for c in changes) == ["gemeente.nl", "ziekenhuis.nl"]
    for change in changes:
        assert (change.reason, change.from_providers, change.to_providers) == ("ownership", ("zivver",), ("zivver",))
        assert (change.from_jurisdiction, change.to_jurisdiction, change.to_foreign) == ("NL", "US", True)
        assert "Kiteworks" in change.evidence[0]
    assert store.apply_ownership(bought, EU, day=dt.date(2026, 1, 1), now=4) == []  # only once


def test_prohibited_or_announced_deals_change_nothing(tmp_path):
    store = StateStore(tmp_path / "state.db")
    store.record(result(deps=[dep("zivver", "NL")]), EU, now=1)
    records = [
        Ownership("Kyndryl", "US", "announced", dt.date(2025, 11, 1), "https://example.test"),
        Ownership("Kyndryl", "US", "prohibited", dt.date(2026, 3, 1), "https://example.test"),
    ]
    assert store.apply_ownership(_catalog(records), EU, day=dt.date(2026, 6, 1), now=2) == []


def test_ownership_noticed_by_a_scan_is_recorded_too(tmp_path):
    store = StateStore(tmp_path / "state.db")
    store.record(result(deps=[dep("zivver", "NL")]), EU, now=1)
    [change] = store.record(result(deps=[dep("zivver", "US")]), EU, now=2)
    assert change.reason == "ownership" and change.to_foreign
    assert store.stored("gemeente.nl")["email"][0].jurisdiction == "US"


# ---- opening: damaged, foreign, locked, read-only ------------------------------------------

import os
import sqlite3
import stat

import pytest

from dijkwacht.state import StateError


def _history(path):
    """A state with three recorded changes; returns them."""
    store = StateStore(path, confirmations=1)
    store.record(result(deps=[dep("transip", "NL")]), EU, now=1)
    for t, provider in enumerate(["microsoft", "google", "transip"], start=2):
        store.record(result(deps=[dep(provider, "US" if provider != "transip" else "NL")]), EU, now=t)
    changes = store.changes()
    store.close()
    assert len(changes) == 3
    return changes


def test_new_state_is_private(tmp_path):
    StateStore(tmp_path / "state.db").close()
    assert stat.S_IMODE((tmp_path / "state.db").stat().st_mode) == 0o600
    assert not (tmp_path / "state.db.new").exists()


def test_a_second_agent_on_one_state_is_refused(tmp_path):
    first = StateStore(tmp_path / "state.db")
    with pytest.raises(StateError, match=rf"in use by another dijkwacht agent \(pid {os.getpid()}"):
        StateStore(tmp_path / "state.db")
    reader = StateStore(tmp_path / "state.db", readonly=True)  # `history` may read meanwhile
    assert reader.changes() == []
    reader.close()
    first.close()
    StateStore(tmp_path / "state.db").close()  # the lock goes with its holder


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda p: p.write_bytes(b""), "the file is empty"),
        (lambda p: p.write_bytes(b"this is not a database at all" * 100), "not a database"),
        (lambda p: p.write_bytes(p.read_bytes()[:3000]), "corrupt"),
        (lambda p: _scribble(p), "corrupt"),
    ],
    ids=["zero-bytes", "not-sqlite", "truncated", "damaged-page"],
)
def test_a_damaged_state_is_refused_untouched_or_moved_aside(tmp_path, damage, message):
    path = tmp_path / "state.db"
    _history(path)
    damage(path)
    before = path.read_bytes()
    with pytest.raises(StateError, match=message) as info:
        StateStore(path)
    assert 'on_corrupt_state = "move-aside"' in str(info.value) and "\n" not in str(info.value)
    assert path.read_bytes() == before  # refused: not one byte changed
    store = StateStore(path, on_corrupt="move-aside")
    assert store.moved_aside.startswith(f"{path}.corrupt-")
    assert open(store.moved_aside, "rb").read() == before
    assert store.changes() == []  # a new history
    store.close()


def _scribble(path):
    """Overwrite one page in the middle of the changes table, as a failing disk would."""
    data = bytearray(path.read_bytes())
    page = 4096
    assert len(data) >= 3 * page
    data[2 * page : 3 * page] = b"\xa5" * page
    path.write_bytes(bytes(data))


def test_an_intact_history_survives_reopening_byte_for_byte(tmp_path):
    path = tmp_path / "state.db"
    changes = _history(path)
    store = StateStore(path)
    assert store.changes() == changes
    store.close()


def test_someone_elses_database_is_refused_not_moved(tmp_path):
    path = tmp_path / "other.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE invoices (id INTEGER)")
    db.commit()
    db.close()
    with pytest.raises(StateError, match="not a dijkwacht state"):
        StateStore(path, on_corrupt="move-aside")
    assert path.exists()


def test_a_directory_is_refused(tmp_path):
    with pytest.raises(StateError, match="is a directory"):
        StateStore(tmp_path)


def test_a_failed_write_is_rolled_back_and_reported_as_itself(tmp_path, monkeypatch):
    """SQLite rolls back by itself on a full disk; the store's own ROLLBACK must not then
    replace the real error with "no transaction is active"."""
    store = StateStore(tmp_path / "state.db", confirmations=1)
    store.record(result(deps=[dep("transip", "NL")]), EU, now=1)
    real_insert = store._insert_change

    def full(change):
        store.db.execute("ROLLBACK")  # what SQLITE_FULL does
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(store, "_insert_change", full)
    with pytest.raises(sqlite3.OperationalError, match="disk is full"):
        store.record(result(deps=[dep("microsoft", "US")]), EU, now=2)
    monkeypatch.setattr(store, "_insert_change", real_insert)
    assert store.changes() == [] and providers(store) == ["transip"]
    [change] = store.record(result(deps=[dep("microsoft", "US")]), EU, now=3)
    assert change.at == 3 and store.changes() == [change]


def test_the_report_reads_the_state_beside_a_running_agent(tmp_path):
    from dijkwacht.report.inputs import read_state

    changes = _history(tmp_path / "state.db")
    agent = StateStore(tmp_path / "state.db")  # holds the lock, as `dijkwacht run` does
    try:
        loaded = read_state(str(tmp_path / "state.db"), targets=None, since=0)
    finally:
        agent.close()
    assert [c["at"] for c in loaded.changes] == [c.to_json()["at"] for c in changes]
