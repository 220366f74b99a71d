"""End to end: the generated rules and dashboards on a real Prometheus scraping a real agent that
scans 201 domains on a real DNS server (Knot). Durations are shortened through the mixin's
configuration, never by editing the generated files.

One story, in order: the first pass; one target's mail moves to Microsoft 365 (exactly one move
alert; `promtool check metrics` accepts the agent's page); every dashboard query returns data and the changes panels show the move; a second
Prometheus that also scrapes /probe shows the same figures; the resolver fails for every target
(at most two alerts, no move); the agent dies (the down alert).
"""

from __future__ import annotations

import gzip
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from .conftest import IP_RANGES, ROOT, shared
from .knot import Knot, free_port

pytestmark = pytest.mark.e2e

TARGETS = [f"t{i:03d}.nl" for i in range(200)]
PROVIDERS = """
mailfilter.hostnet.nl A 195.230.171.201
_spf.hostnet.nl TXT "v=spf1 ip4:195.230.171.0/24 -all"
gemeente-nl.mail.protection.outlook.com A 52.101.68.1
spf.protection.outlook.com TXT "v=spf1 ip4:40.92.0.0/15 -all"
"""
BEFORE = PROVIDERS + "".join(f'{d} 0 MX 10 mailfilter.hostnet.nl.\n{d} 0 TXT "v=spf1 include:_spf.hostnet.nl -all"\n' for d in ["gemeente.nl", *TARGETS])
AFTER = BEFORE.replace("gemeente.nl 0 MX 10 mailfilter.hostnet.nl.", "gemeente.nl 0 MX 0 gemeente-nl.mail.protection.outlook.com.").replace(
    'gemeente.nl 0 TXT "v=spf1 include:_spf.hostnet.nl -all"', 'gemeente.nl 0 TXT "v=spf1 include:spf.protection.outlook.com -all"'
)
# The mixin's settings for a 10-second scan interval and 1-second scrapes.
MIXIN = """
rule_interval: 1s
overview_interval: 1s
dns_window: 15s
dns_for: 3s
failing_for: 10s
widespread_for: 20s
down_for: 5s
data_age_for: 5s
reload_failed_for: 5s
"""
MOVES = {"DijkwachtDependencyMovedForeign", "DijkwachtDependencyMovedBetweenForeign", "DijkwachtOwnershipMadeForeign"}
# Grafana's variables as a user fills them in; $__range covers the whole test.
VARIABLES = {"datasource": "prometheus", "target": "gemeente.nl", "category": ".+", "sector": ".*",
             "__range": "10m", "__range_s": "600", "__rate_interval": "16s", "__interval": "15s"}


def wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def http(url: str, data: dict | None = None) -> tuple[int, str]:
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    try:
        with urllib.request.urlopen(url, data=body, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


class Prometheus:
    def __init__(self, workdir: Path, rules: Path, scrape: list[str]) -> None:
        workdir.mkdir(parents=True)
        self.port = free_port()
        (workdir / "prometheus.yml").write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            f"rule_files: ['{rules / 'rules.yml'}', '{rules / 'alerts.yml'}']\n"
            "scrape_configs:\n" + "".join(scrape)
        )
        self.process = subprocess.Popen(
            ["prometheus", f"--config.file={workdir / 'prometheus.yml'}", f"--storage.tsdb.path={workdir / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=subprocess.DEVNULL, stderr=open(workdir / "prometheus.log", "w"),
        )
        self.api = f"http://127.0.0.1:{self.port}/api/v1"

    def query(self, expr: str) -> list[dict]:
        status, body = http(f"{self.api}/query", {"query": expr})
        assert status == 200, f"{expr}: {body}"
        return json.loads(body)["data"]["result"]

    def value(self, expr: str) -> float | None:
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None

    def firing(self) -> list[dict]:
        status, body = http(f"{self.api}/alerts")
        return [a for a in json.loads(body)["data"]["alerts"] if a["state"] == "firing"] if status == 200 else []

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=20)


def scrape_job(name: str, address: str, path: str = "/metrics", probe: list[str] | None = None) -> str:
    job = f"  - job_name: {name}\n    metrics_path: {path}\n    static_configs:\n      - targets: [{', '.join(repr(t) for t in (probe or [address]))}]\n"
    if probe:
        job += ("    relabel_configs:\n      - {source_labels: [__address__], target_label: __param_target}\n"
                "      - {source_labels: [__param_target], target_label: instance}\n"
                f"      - {{target_label: __address__, replacement: '{address}'}}\n")
    return job


def dashboard_queries(directory: Path) -> list[tuple[str, str, str]]:
    """(dashboard, panel title, expression with the variables filled in) of every query."""
    out = []
    for path in sorted(directory.glob("*.json")):
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            for p in [panel, *panel.get("panels", [])]:
                for t in p.get("targets", []):
                    out.append((path.stem, p["title"], t["expr"]))
        for a in board["annotations"].get("list", []):
            out.append((path.stem, "annotation " + a["name"], a["expr"]))
        for v in board["templating"]["list"]:
            if v["type"] == "query":
                out.append((path.stem, "variable " + v["name"], re.fullmatch(r"label_values\((.*),\s*\w+\)", v["query"]["query"]).group(1)))
    fill = lambda e: re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", lambda m: VARIABLES[m.group(1) or m.group(2)], e)  # noqa: E731
    return [(d, title, fill(e)) for d, title, e in out]


@pytest.fixture
def world(tmp_path):
    generated = tmp_path / "mixin"
    (tmp_path / "mixin.yml").write_text(MIXIN)
    subprocess.run([sys.executable, "-m", "mixin", "--config", str(tmp_path / "mixin.yml"), "--out", str(generated)], cwd=ROOT, check=True)
    knot = Knot(tmp_path / "knot", BEFORE, ["gemeente.nl"]).start()
    port = free_port()
    # The shared range files plus an IP-to-AS table (one range no test address is in): with
    # every feed present, the stale-data alert stays quiet.
    data = tmp_path / "ip-ranges"
    data.mkdir()
    for path in shared(IP_RANGES).glob("*.txt"):
        (data / path.name).symlink_to(path)
    (data / "ip2asn-combined.tsv.gz").write_bytes(gzip.compress(b"192.0.0.0\t192.0.0.255\t64512\tNL\tTEST-AS\n"))
    (tmp_path / "targets.txt").write_text("gemeente.nl sector=municipality\n" + "".join(f"{d} sector={'water' if i % 4 else 'health'}\n" for i, d in enumerate(TARGETS)))
    config = tmp_path / "dijkwacht.toml"
    config.write_text(f"""
[agent]
nameservers = ["{knot.address}"]
data_dir = "{data}"
targets_file = "targets.txt"
dns_timeout = 0.5
dns_tries = 1
[daemon]
listen = "127.0.0.1:{port}"
interval = "10s"
confirmations = 2
state_path = "{tmp_path / 'state.db'}"
""")
    agent = subprocess.Popen(
        [sys.executable, "-m", "dijkwacht.cli", "run", "--config", str(config)],
        stdout=subprocess.DEVNULL, stderr=open(tmp_path / "agent.log", "w"), env={**os.environ, "DIJKWACHT_DISABLE_PLUGIN_AUTOLOAD": "1"},
    )
    address = f"127.0.0.1:{port}"
    rules = generated / "deploy" / "prometheus"
    plain = Prometheus(tmp_path / "prom-a", rules, [scrape_job("dijkwacht", address)])
    with_probe = Prometheus(tmp_path / "prom-b", rules, [scrape_job("dijkwacht", address), scrape_job("dijkwacht-probe", address, "/probe", ["gemeente.nl", "t001.nl"])])
    yield knot, agent, address, plain, with_probe, generated
    for prometheus in (plain, with_probe):
        prometheus.stop()
    if agent.poll() is None:
        agent.kill()
        agent.wait()
    knot.stop()


def test_alerts_and_dashboards_on_a_real_prometheus(world):
    knot, agent, address, prom, prom_probe, generated = world
    wait(lambda: http(f"http://{address}/-/ready")[0] == 200, 90, "the agent's first pass")
    wait(lambda: prom.value("dijkwacht:targets_scanned:count") == 201, 60, "201 targets scanned in Prometheus")
    assert prom.value("dijkwacht:targets_foreign:ratio") == 0
    # Prometheus started scraping before the agent listened: that down alert resolves.
    wait(lambda: not prom.firing(), 30, "no alert firing after the start")

    # The move: exactly one move alert, for gemeente.nl's mail.
    knot.replace(AFTER)
    [alert] = wait(lambda: [a for a in prom.firing() if a["labels"]["alertname"] in MOVES], 90, "the move alert")
    assert alert["labels"]["alertname"] == "DijkwachtDependencyMovedForeign"
    assert (alert["labels"]["target"], alert["labels"]["category"], alert["labels"]["severity"]) == ("gemeente.nl", "email", "critical")
    assert (alert["labels"]["from_provider"], alert["labels"]["to_provider"]) == ("hostnet", "microsoft")
    assert alert["annotations"]["runbook_url"].endswith("docs/runbooks.md#dijkwachtdependencymovedforeign")
    time.sleep(12)  # another scan pass: still one alert, nothing else fires
    assert [(a["labels"]["alertname"], a["labels"].get("target")) for a in prom.firing()] == [("DijkwachtDependencyMovedForeign", "gemeente.nl")]
    lint = subprocess.run(["promtool", "check", "metrics"], input=http(f"http://{address}/metrics")[1], capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert prom.value("dijkwacht:targets_foreign:ratio") == pytest.approx(1 / 201)
    assert prom.value('sector:dijkwacht_targets_foreign:count{sector="municipality"}') == 1

    # Every dashboard query returns data; the changes panels show the move.
    queries = dashboard_queries(generated / "grafana" / "dashboards")
    assert len(queries) > 50
    empty = [(d, title, e) for d, title, e in queries if not prom.query(e)]
    assert not empty, empty
    changes = {title: e for d, title, e in queries if d == "dijkwacht-changes"}
    assert prom.value(changes["Moves out of home"]) >= 1
    assert prom.value(changes["Moves between foreign providers"]) == 0
    [row] = prom.query(changes["Changes in the time range"])
    assert (row["metric"]["target"], row["metric"]["kind"]) == ("gemeente.nl", "home_to_foreign")
    assert any(s["metric"].get("target") == "gemeente.nl" for s in prom.query(changes["annotation Confirmed changes"]))
    assert sum(float(v[1]) for s in json.loads(http(f"{prom.api}/query_range", {"query": changes["Confirmed changes over time"], "start": time.time() - 300, "end": time.time(), "step": 15})[1])["data"]["result"] for v in s["values"]) >= 1

    # A Prometheus that also scrapes /probe: the same series and, where no clock or rate is involved, the same values.
    assert prom_probe.value('count(dijkwacht_probe_success{job="dijkwacht-probe"})') == 2
    def same(expr: str) -> bool:
        a, b = prom.query(expr), prom_probe.query(expr)
        if sorted(json.dumps(s["metric"], sort_keys=True) for s in a) != sorted(json.dumps(s["metric"], sort_keys=True) for s in b):
            return False
        if re.search(r"time\(\)|rate\(|increase\(|process_|quantile|_stale|_seconds", expr):
            return True
        return {json.dumps(s["metric"], sort_keys=True): s["value"][1] for s in a} == {json.dumps(s["metric"], sort_keys=True): s["value"][1] for s in b}

    # The two servers scrape at different moments: a scan between their scrapes may differ for a while.
    for dashboard, title, expr in queries:
        wait(lambda: same(expr), 30, f"the same {dashboard} / {title} from both servers")

    # Resolver outage over all 201 targets: at most two alerts, and no move.
    before = {(a["labels"]["alertname"], a["labels"].get("target")) for a in prom.firing()}
    knot.stop()
    seen: set[tuple[str, str | None]] = set()
    deadline = time.monotonic() + 50
    while time.monotonic() < deadline:
        seen |= {(a["labels"]["alertname"], a["labels"].get("target")) for a in prom.firing()} - before
        time.sleep(1)
    assert ("DijkwachtResolverFailing", None) in seen, seen
    assert len(seen) <= 2 and not {name for name, _ in seen} & MOVES, seen
    assert prom.value("count(max by (target) (dijkwacht_scan_errors) > 0)") == 201  # every target failed, yet one alert

    # The agent is gone: the down alert fires.
    agent.send_signal(signal.SIGKILL)
    agent.wait()
    wait(lambda: [a for a in prom.firing() if a["labels"]["alertname"] == "DijkwachtDown"], 30, "DijkwachtDown")
