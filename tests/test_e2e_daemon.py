"""End to end: `dijkwacht run` against a real DNS server (Knot), scraped over real HTTP.

The story from the issue: a municipality's mail moves from a Dutch provider to Microsoft 365.
A SERVFAIL period before the move changes nothing; the move is confirmed after two scans and
shows in /metrics and `dijkwacht history` with evidence; kill -9 and a restart keep the
history intact and add no new events.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from .conftest import IP_RANGES, shared
from .knot import Knot, free_port

pytestmark = pytest.mark.e2e

PROVIDERS = """
mailfilter.hostnet.nl A 195.230.171.201
_spf.hostnet.nl TXT "v=spf1 ip4:195.230.171.0/24 -all"
gemeente-nl.mail.protection.outlook.com A 52.101.68.1
spf.protection.outlook.com TXT "v=spf1 ip4:40.92.0.0/15 -all"
"""
BEFORE = PROVIDERS + """
gemeente.nl 0 MX 10 mailfilter.hostnet.nl.
gemeente.nl 0 TXT "v=spf1 include:_spf.hostnet.nl -all"
ziekenhuis.nl 0 MX 0 ziekenhuis-nl.mail.protection.outlook.com.
"""
AFTER = BEFORE.replace("10 mailfilter.hostnet.nl.", "0 gemeente-nl.mail.protection.outlook.com.").replace(
    "include:_spf.hostnet.nl", "include:spf.protection.outlook.com"
)


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""
    except OSError:
        return 0, ""


def wait(predicate, timeout=20.0, what=""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class Agent:
    def __init__(self, config, port):
        self.config, self.base = config, f"http://127.0.0.1:{port}"
        self.process = None

    def start(self):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "dijkwacht.cli", "run", "--config", str(self.config)],
            stdout=subprocess.DEVNULL, stderr=open(self.config.parent / "agent.log", "a"),
            env={**os.environ, "DIJKWACHT_DISABLE_PLUGIN_AUTOLOAD": "1"},
        )
        wait(lambda: get(f"{self.base}/-/ready")[0] == 200, what="agent ready")
        return self

    def metrics(self) -> str:
        return get(f"{self.base}/metrics")[1]

    def history(self) -> list[dict]:
        done = subprocess.run([sys.executable, "-m", "dijkwacht.cli", "history", "--config", str(self.config), "--format", "json"], capture_output=True, text=True, check=True)
        return json.loads(done.stdout)


@pytest.fixture
def setup(tmp_path):
    knot = Knot(tmp_path / "knot", BEFORE, ["gemeente.nl", "ziekenhuis.nl"]).start()
    port = free_port()
    config = tmp_path / "dijkwacht.toml"
    config.write_text(f"""
[agent]
nameservers = ["{knot.address}"]
data_dir = "{shared(IP_RANGES)}"
dns_timeout = 0.5
dns_tries = 1
[daemon]
listen = "127.0.0.1:{port}"
interval = "1s"
confirmations = 2
state_path = "{tmp_path / 'state.db'}"
[[targets]]
domain = "gemeente.nl"
labels = {{ sector = "municipality" }}
[[targets]]
domain = "ziekenhuis.nl"
labels = {{ sector = "hospital" }}
""")
    agent = Agent(config, port)
    yield knot, agent
    if agent.process and agent.process.poll() is None:
        agent.process.kill()
        agent.process.wait()
    knot.stop()


DUTCH = 'dijkwacht_dependency_info{category="email",confidence="indicated",foreign="false",jurisdiction="NL",provider="hostnet",role="mailbox",target="gemeente.nl"} 1.0'
MICROSOFT = 'dijkwacht_dependency_info{category="email",confidence="confirmed",foreign="true",jurisdiction="US",provider="microsoft",role="mailbox",target="gemeente.nl"} 1.0'


def test_move_to_microsoft_is_confirmed_and_survives_kill_9(setup):
    knot, agent = setup
    agent.start()
    assert DUTCH in agent.metrics()

    # A SERVFAIL period: errors are reported, nothing moves.
    knot.servfail("gemeente.nl")
    email_errors = re.compile(r'dijkwacht_scan_errors\{detector="email",target="gemeente.nl"\} ([0-9.]+)')
    wait(lambda: float(email_errors.search(agent.metrics()).group(1)) > 0, what="SERVFAIL seen")
    time.sleep(3)  # several more scans in the failure
    text = agent.metrics()
    assert DUTCH in text and MICROSOFT not in text
    assert agent.history() == []
    knot.reload()

    # The move: two agreeing scans, then metrics and history show it.
    knot.replace(AFTER)
    wait(lambda: agent.history(), what="change in history")
    [change] = agent.history()
    assert (change["target"], change["category"], change["reason"]) == ("gemeente.nl", "email", "dns")
    assert (change["from"], change["to"]) == (["hostnet"], ["microsoft"])
    assert (change["from_jurisdiction"], change["to_jurisdiction"], change["to_foreign"]) == ("NL", "US", True)
    assert "MX 0 gemeente-nl.mail.protection.outlook.com" in change["evidence"]
    text = agent.metrics()
    assert MICROSOFT in text and DUTCH not in text
    assert 'dijkwacht_dependency_last_change_timestamp_seconds{category="email",from_jurisdiction="NL",from_provider="hostnet",kind="home_to_foreign",reason="dns",target="gemeente.nl",to_foreign="true",to_jurisdiction="US",to_provider="microsoft"}' in text
    table = subprocess.run([sys.executable, "-m", "dijkwacht.cli", "history", "--config", str(agent.config)], capture_output=True, text=True).stdout
    assert "gemeente.nl  email  dns  hostnet (NL) -> microsoft (US)  FOREIGN" in table

    # kill -9 and restart: the last known state is served at once, and no spurious events.
    agent.process.send_signal(signal.SIGKILL)
    agent.process.wait()
    agent.start()
    text = agent.metrics()
    assert MICROSOFT in text
    assert 'to_provider="microsoft"' in text
    time.sleep(3)
    assert len(agent.history()) == 1
    # The counters start again from 0 (no new event), every series still present.
    counts = re.findall(r"^dijkwacht_dependency_changes_total\{.*\} (\S+)$", agent.metrics(), re.M)
    assert counts and {float(c) for c in counts} == {0.0}

    # SIGTERM: a clean exit within a few seconds.
    started = time.monotonic()
    agent.process.send_signal(signal.SIGTERM)
    assert agent.process.wait(timeout=10) == 0
    assert time.monotonic() - started < 6


def test_sighup_reload_keeps_old_config_when_new_is_broken(setup):
    _, agent = setup
    agent.start()
    good = agent.config.read_text()
    agent.config.write_text(good + "\n[daemon]\nlisten = 'x'\n")
    agent.process.send_signal(signal.SIGHUP)
    wait(lambda: "dijkwacht_config_last_reload_successful 0.0" in agent.metrics(), what="failed reload visible")
    assert "dijkwacht_targets 2.0" in agent.metrics()
    agent.config.write_text(good.replace('domain = "ziekenhuis.nl"', 'domain = "school.nl"'))
    agent.process.send_signal(signal.SIGHUP)
    wait(lambda: "dijkwacht_config_last_reload_successful 1.0" in agent.metrics(), what="reload ok")
    assert 'target="school.nl"' in agent.metrics()
    assert "config.reload_failed" in (agent.config.parent / "agent.log").read_text()
