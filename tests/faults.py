"""Fault scenarios run inside a private mount namespace (see tests/test_faults.py), where a
small tmpfs can be filled up or remounted read-only without touching the machine.

`python -m tests.faults SCENARIO DIR` prints one JSON object with what it saw.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from dijkwacht.daemon.agent import Daemon
from dijkwacht.state import StateError, StateStore
from dijkwacht.testing import FakeDNSServer, parse_zone

TARGETS = [f"gemeente{i}.nl" for i in range(40)]
ZONES = [
    "".join(f"{t} 0 MX 10 mx.transip.email.\n" for t in TARGETS),
    "".join(f"{t} 0 MX 10 {t.replace('.', '-')}.mail.protection.outlook.com.\n" for t in TARGETS),
]


def fill(directory: Path) -> Path:
    """Fill the file system until it is full; returns the filler file."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC, exc
    finally:
        os.close(fd)
    return filler


def history(path: Path) -> list[tuple]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    rows = db.execute("SELECT id, at, target, category, to_providers FROM changes ORDER BY id").fetchall()
    db.close()
    return rows


async def full_disk(directory: Path) -> dict:
    """The agent runs while its disk fills up and frees again; zones flap all the while."""
    dns = await FakeDNSServer(ZONES[0]).start()
    config = directory.parent / "dijkwacht.toml"  # outside the small file system
    state = directory / "state.db"
    config.write_text(
        f'[agent]\nnameservers = ["{dns.address}"]\ndns_timeout = 0.5\ndns_tries = 1\n'
        f'[daemon]\ninterval = "1s"\nconfirmations = 1\nstate_path = "{state}"\n'
        + "".join(f'[[targets]]\ndomain = "{t}"\n' for t in TARGETS)
    )
    daemon = Daemon(config)
    announced: list[tuple[str, str, float]] = []
    original = daemon._changed
    daemon._changed = lambda change: (announced.append((change.target, change.category, change.at)), original(change))[1]
    phases = {}
    await daemon.start()  # the agent logs JSON lines to stderr; the test reads them

    async def flap(seconds: float) -> None:
        end = time.monotonic() + seconds
        i = 0
        while time.monotonic() < end:
            i += 1
            dns.load(parse_zone(ZONES[i % 2]))
            await asyncio.sleep(0.7)

    await flap(4)
    phases["before"] = len(history(state))
    filler = fill(directory)
    await flap(5)
    phases["full_errors"] = daemon.faults.state_writes
    filler.unlink()
    await flap(4)
    await daemon.stop()
    await dns.stop()
    rows = history(state)
    return {
        "phases": phases,
        "write_errors": daemon.faults.state_writes,
        "changes": len(rows),
        "ids_contiguous": [r[0] for r in rows] == list(range(1, len(rows) + 1)),
        "duplicates": len(rows) - len({(r[1], r[2], r[3]) for r in rows}),
        "announced_equals_recorded": sorted(announced) == sorted((r[2], r[3], r[1]) for r in rows),
    }


def read_only(directory: Path) -> dict:
    """History written, then the file system remounted read-only."""
    state = directory / "state.db"
    store = StateStore(state, confirmations=1)
    from tests.test_state import EU, dep, result

    for t, provider in enumerate(["transip", "microsoft", "google", "transip"], start=1):
        store.record(result(deps=[dep(provider, "NL" if provider == "transip" else "US")]), EU, now=t)
    written = store.changes()
    store.close()
    subprocess.run(["mount", "-o", "remount,ro", str(directory)], check=True)
    out: dict = {"written": len(written)}
    try:
        StateStore(state)
    except StateError as exc:
        out["start"] = str(exc)
    reader = StateStore(state, readonly=True)
    out["readable"] = reader.changes() == written
    reader.close()
    cli = subprocess.run([sys.executable, "-m", "dijkwacht.cli", "history", "--state", str(state), "--format", "json"], capture_output=True, text=True)
    out["history_cli"] = (cli.returncode, len(json.loads(cli.stdout or "[]")))
    return out


def full_at_start(directory: Path) -> dict:
    """A new agent on a full disk: a clear refusal, nothing half-created."""
    fill(directory)
    config = directory.parent / "start.toml"
    config.write_text(f'[agent]\nnameservers = ["127.0.0.1:9"]\n[daemon]\nstate_path = "{directory / "new" / "state.db"}"\nlisten = "127.0.0.1:0"\n')
    run = subprocess.run([sys.executable, "-m", "dijkwacht.cli", "run", "--config", str(config)], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "DIJKWACHT_DISABLE_PLUGIN_AUTOLOAD": "1"})
    return {"status": run.returncode, "stderr": run.stderr, "leftovers": sorted(p.name for p in (directory / "new").glob("*")) if (directory / "new").exists() else []}


if __name__ == "__main__":
    scenario, where = sys.argv[1], Path(sys.argv[2])
    if scenario == "full_disk":
        print(json.dumps(asyncio.run(full_disk(where))))
    elif scenario == "read_only":
        print(json.dumps(read_only(where)))
    else:
        print(json.dumps(full_at_start(where)))
