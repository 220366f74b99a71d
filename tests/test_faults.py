"""Disk faults against the real state store, each in a private mount namespace with a small
tmpfs (`unshare -rm`): a disk that fills up while the agent runs, a read-only file system, a
full disk at start. Each ends in a clear error or a documented recovery, with 0 changes lost
or duplicated in the history. (A corrupt database: tests/test_state.py.)"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[1]


def scenario(tmp_path, name: str, size: str, logs: list | None = None) -> dict:
    if shutil.which("unshare") is None:
        pytest.fail("unshare (util-linux) is needed for the fault tests")
    disk = tmp_path / "disk"
    disk.mkdir()
    script = f"mount -t tmpfs -o size={size},mode=0755 tmpfs {disk} && exec {sys.executable} -m tests.faults {name} {disk}"
    done = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    if logs is not None:  # the agent's log: one JSON event per line, nothing else
        logs.extend(json.loads(line) for line in done.stderr.splitlines())
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_disk_full_while_running_loses_and_duplicates_nothing(tmp_path):
    logs: list[dict] = []
    seen = scenario(tmp_path, "full_disk", "8m", logs)
    print(f"\nfull disk while running: {seen['phases']['before']} changes before, {seen['write_errors']} failed writes, {seen['changes']} changes after; "
          f"contiguous ids {seen['ids_contiguous']}, duplicates {seen['duplicates']}")
    assert seen["phases"]["before"] > 0, seen  # a history existed before the disk filled up
    assert seen["phases"]["full_errors"] > 0 and seen["write_errors"] >= seen["phases"]["full_errors"], seen
    assert seen["changes"] > seen["phases"]["before"], seen  # and grew again once space was back
    assert seen["ids_contiguous"] and seen["duplicates"] == 0 and seen["announced_equals_recorded"], seen
    events = [e["event"] for e in logs if e["event"].startswith("state.")]
    assert events and events[0] == "state.write_failed" and events[-1] == "state.write_recovered", events
    # One line per run of failures, not one per failed scan (there were hundreds).
    assert events.count("state.write_failed") == events.count("state.write_recovered") <= 5, events


def test_read_only_state_is_refused_clearly_and_still_readable(tmp_path):
    seen = scenario(tmp_path, "read_only", "1m")
    assert "read-only" in seen["start"].lower() and "\n" not in seen["start"], seen
    assert seen["written"] == 3 and seen["readable"] and seen["history_cli"] == [0, 3], seen


def test_full_disk_at_start_is_a_clear_error(tmp_path):
    seen = scenario(tmp_path, "full_at_start", "256k")
    assert seen["status"] == 2, seen
    lines = seen["stderr"].strip().splitlines()
    assert lines[-1].startswith("dijkwacht: cannot use state database") and "No space left" in lines[-1], seen
    assert "Traceback" not in seen["stderr"]
    assert "state.db" not in seen["leftovers"], seen  # nothing that could pass for a history
