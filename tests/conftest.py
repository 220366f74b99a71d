"""Shared fixtures: the shared test data. (`dns_server` and `plugin_host` come from the shipped
test kit's pytest plugin, dijkwacht.testing.pytest_plugin.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from dijkwacht.ipranges import load_ranges

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
IP_RANGES = SHARED / "ip-ranges"
REAL_WORLD = SHARED / "real-world"


def shared(path: Path) -> Path:
    """A path under ../shared/data, or a clear failure: tests read it there, never a copy."""
    if not path.exists():
        pytest.fail(f"shared test data missing: {path} (see README: tests read ../shared/data)")
    return path


@pytest.fixture(scope="session")
def shared_ranges():
    return load_ranges(shared(IP_RANGES))
