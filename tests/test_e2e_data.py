"""End to end: a real agent on an empty data directory exports the missing-data signal; an
offline `dijkwacht data update --from DIR` with one provider's list missing writes the others,
says so in its exit status, and the running agent loads them without a signal or restart."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from dijkwacht.asn import FEED as ASN_FEED
from dijkwacht.rangefeeds import FEEDS

from .knot import free_port
from .test_e2e_daemon import get, wait
from .test_rangefeeds import COUNTS, official_files

pytestmark = pytest.mark.e2e


def prefixes(text: str) -> dict[str, tuple[float, float]]:
    """provider -> (prefixes, updated timestamp) from /metrics."""
    count = dict(re.findall(r'^dijkwacht_ip_ranges_prefixes\{provider="(\w+)"\} (\S+)$', text, re.M))
    updated = dict(re.findall(r'^dijkwacht_ip_ranges_updated_timestamp_seconds\{provider="(\w+)"\} (\S+)$', text, re.M))
    return {p: (float(count[p]), float(updated[p])) for p in count}


def test_partial_offline_update_is_loaded_by_a_running_agent(tmp_path):
    data = tmp_path / "ip-ranges"
    data.mkdir()
    port = free_port()
    config = tmp_path / "dijkwacht.toml"
    config.write_text(f'[agent]\ndata_dir = "{data}"\n[daemon]\nlisten = "127.0.0.1:{port}"\nstate_path = "{tmp_path / "state.db"}"\n')
    env = {**os.environ, "DIJKWACHT_DISABLE_PLUGIN_AUTOLOAD": "1"}
    log = open(tmp_path / "agent.log", "w")
    agent = subprocess.Popen([sys.executable, "-m", "dijkwacht.cli", "run", "--config", str(config), "--config.reload-interval", "0.2s"], stdout=log, stderr=log, env=env)
    try:
        base = f"http://127.0.0.1:{port}"
        wait(lambda: get(f"{base}/-/ready")[0] == 200, what="agent ready")
        # Nothing on disk: every known provider is exported as never updated, with 0 prefixes.
        assert prefixes(get(f"{base}/metrics")[1]) == {p: (0.0, 0.0) for p in (*FEEDS, ASN_FEED)}
        assert "ip_ranges.missing" in (tmp_path / "agent.log").read_text()

        source = official_files(tmp_path / "official")
        (source / "ips-v6").unlink()
        update = subprocess.run([sys.executable, "-m", "dijkwacht.cli", "data", "update", "--data-dir", str(data), "--from", str(source)],
                                capture_output=True, text=True, timeout=60, env=env)
        assert update.returncode == 3, update.stdout + update.stderr
        assert "cloudflare  FAILED" in update.stdout

        def loaded():
            seen = prefixes(get(f"{base}/metrics")[1])
            return seen if seen["amazon"][0] else None

        seen = wait(loaded, what="the agent to load the new files")
        for provider in FEEDS:
            if provider == "cloudflare":
                assert seen[provider] == (0.0, 0.0)
            else:
                assert seen[provider] == (float(sum(COUNTS[provider])), 1_780_000_000.0), provider
    finally:
        agent.terminate()
        assert agent.wait(timeout=10) == 0
        log.close()
