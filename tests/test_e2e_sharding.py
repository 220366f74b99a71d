"""End to end: real agents sharing 1,000 targets served by Knot DNS.

Four agents with `shard = "i/4"` scan disjoint shares whose union is every target, and the
sum of their dijkwacht_dependency_info series is what one unsharded agent exports. Going from
4 shards to 3 (configs edited, the agents reload by themselves) moves targets between agents:
a target new to an agent starts there with a baseline, so no change and no move is recorded.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from dijkwacht.shard import Shard

from .conftest import IP_RANGES
from .knot import Knot, free_port
from .test_e2e_daemon import get, wait

pytestmark = pytest.mark.e2e

DOMAINS = [f"gemeente-{i:04d}.nl" for i in range(1000)]
PROVIDERS = """
gemeente-mail.mail.protection.outlook.com A 52.101.68.1
aspmx.l.google.com A 142.250.27.26
mx.transip.email A 37.97.1.1
mx0a-001.pphosted.com A 148.163.129.1
d111111abcdef8.cloudfront.net A 13.32.0.1
"""


def records() -> str:
    lines = [PROVIDERS]
    for i, domain in enumerate(DOMAINS):
        mx = ["gemeente-mail.mail.protection.outlook.com.", "aspmx.l.google.com.", "mx.transip.email.", "mx0a-001.pphosted.com."][i % 4]
        lines.append(f"{domain} MX 10 {mx}")
        if i % 3 == 0:
            lines.append(f"www.{domain} CNAME d111111abcdef8.cloudfront.net.")
    return "\n".join(lines) + "\n"


def samples(text: str, family: str) -> Counter[str]:
    return Counter(re.findall(rf"^({family}\{{.*\}} \S+)$", text, re.M))


def targets_of(text: str, family: str) -> set[str]:
    return set(re.findall(rf'^{family}\{{.*?target="([^"]+)"', text, re.M))


class Agent:
    def __init__(self, directory: Path, knot: Knot, targets_file: Path, shard: str | None) -> None:
        directory.mkdir()
        self.dir, self.port = directory, free_port()
        self.config = directory / "dijkwacht.toml"
        self.knot, self.targets_file = knot, targets_file
        self.write(shard)
        self.log = open(directory / "agent.log", "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "dijkwacht.cli", "run", "--config", str(self.config), "--config.reload-interval", "0.2s"],
            stdout=self.log, stderr=self.log, env={**os.environ, "DIJKWACHT_DISABLE_PLUGIN_AUTOLOAD": "1"})

    def write(self, shard: str | None) -> None:
        self.config.write_text(f"""
[agent]
nameservers = ["{self.knot.address}"]
data_dir = "{IP_RANGES}"
targets_file = "{self.targets_file}"
# Generous: a lookup that times out on a busy machine would make one agent's view differ.
dns_timeout = 3.0
dns_tries = 3
[daemon]
listen = "127.0.0.1:{self.port}"
interval = "1h"
state_path = "{self.dir / 'state.db'}"
{f'shard = "{shard}"' if shard else ''}
""")

    def metrics(self) -> str:
        status, text = get(f"http://127.0.0.1:{self.port}/metrics")
        assert status == 200
        return text

    def scanned(self) -> set[str]:
        return targets_of(self.metrics(), "dijkwacht_scan_errors")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=20)
        self.log.close()


@pytest.fixture
def cluster(tmp_path):
    knot = Knot(tmp_path / "knot", records(), []).start()
    targets_file = tmp_path / "targets.txt"
    targets_file.write_text("".join(f"{d} sector={'water' if i % 2 else 'municipality'} owner=team-{i % 7}\n" for i, d in enumerate(DOMAINS)))
    agents = {"all": Agent(tmp_path / "all", knot, targets_file, None)}
    for i in range(4):
        agents[i] = Agent(tmp_path / f"shard-{i}", knot, targets_file, f"{i}/4")
    yield agents
    for agent in agents.values():
        agent.stop()
    knot.stop()


def test_shards_split_the_targets_and_resharding_raises_no_change(cluster):
    for agent in cluster.values():
        wait(lambda agent=agent: get(f"http://127.0.0.1:{agent.port}/-/ready")[0] == 200, timeout=180, what="first pass")
    pages = {name: agent.metrics() for name, agent in cluster.items()}
    shares = [targets_of(pages[i], "dijkwacht_target_info") for i in range(4)]
    assert sum(map(len, shares)) == len(DOMAINS) and set().union(*shares) == set(DOMAINS)
    assert all(share == {d for d in DOMAINS if Shard(i, 4).owns(d)} for i, share in enumerate(shares))
    assert all(150 < len(share) < 350 for share in shares), list(map(len, shares))
    assert all(f'dijkwacht_shards{{shard="{i}"}} 4.0' in pages[i] for i in range(4)) and 'dijkwacht_shards{shard="0"} 1.0' in pages["all"]
    # Prometheus' sum over the shards is the unsharded agent's view.
    whole = samples(pages["all"], "dijkwacht_dependency_info")
    assert sum(whole.values()) >= len(DOMAINS), "the test data should give every target a dependency"
    assert sum((samples(pages[i], "dijkwacht_dependency_info") for i in range(4)), Counter()) == whole
    assert sum((samples(pages[i], "dijkwacht_foreign_dependencies") for i in range(4)), Counter()) == samples(pages["all"], "dijkwacht_foreign_dependencies")

    # 4 -> 3 shards: the fourth agent goes, the others take their new share on reload.
    cluster.pop(3).stop()
    for i in range(3):
        cluster[i].write(f"{i}/3")
    for i in range(3):
        share = {d for d in DOMAINS if Shard(i, 3).owns(d)}
        wait(lambda i=i, share=share: cluster[i].scanned() == share, timeout=180, what=f"shard {i}/3 scanned")
    pages = {name: agent.metrics() for name, agent in cluster.items()}
    for i in range(3):
        assert f'dijkwacht_shards{{shard="{i}"}} 3.0' in pages[i]  # the reload took the new count
        counters = samples(pages[i], "dijkwacht_dependency_changes_total")
        assert counters and all(line.endswith(" 0.0") for line in counters), counters  # exported from the start, never raised
        assert not samples(pages[i], "dijkwacht_dependency_last_change_timestamp_seconds")
        history = subprocess.run([sys.executable, "-m", "dijkwacht.cli", "history", "--state", str(cluster[i].dir / "state.db"), "--format", "json"],
                                 capture_output=True, text=True, timeout=60, check=True)
        assert history.stdout.strip() == "[]"
    assert sum((samples(pages[i], "dijkwacht_dependency_info") for i in range(3)), Counter()) == whole
