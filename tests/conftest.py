"""Shared fixtures: the shared test data. (`dns_server` and `plugin_host` come from the shipped
test kit's pytest plugin, dijkwacht.testing.pytest_plugin.)"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dijkwacht.ipranges import load_ranges

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
IP_RANGES = SHARED / "ip-ranges"
REAL_WORLD = SHARED / "real-world"


def shared(path: Path) -> Path:
    """A path under ../shared/data (tests read it there, never a copy). Without it the test is
    skipped with a message saying so; where it must be there (.ci/run sets
    DIJKWACHT_REQUIRE_SHARED=1), the test fails instead."""
    if not path.exists():
        message = f"needs the shared test data {path} (the directory ../shared/data next to the repository; see README)"
        if os.environ.get("DIJKWACHT_REQUIRE_SHARED"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def shared_ranges():
    return load_ranges(shared(IP_RANGES))


@pytest.fixture(autouse=True)
def _logging_as_found():
    """Tests that run the CLI in-process configure logging (structlog and the stdlib root
    logger) for the whole process; put it back, so that later tests see the defaults."""
    import logging

    import structlog

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)
