"""End to end: `dijkwacht scan` as a user runs it, against a real DNS server (Knot DNS) serving
the detector corpus, with the shared IP range snapshot. Only 127.0.0.1 is contacted."""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys

import pytest

from .conftest import IP_RANGES, shared
from .corpus import CASES
from .knot import Knot
from .scanhelpers import corpus_zone

pytestmark = pytest.mark.e2e
# Per-query failures need the fake server; Knot fails whole zones (tested below).
KNOT_CASES = [c for c in CASES if not c.failures]
DIJKWACHT = [sys.executable, "-m", "dijkwacht.cli"]


@pytest.fixture(scope="module")
def knot(tmp_path_factory):
    server = Knot(tmp_path_factory.mktemp("knot"), corpus_zone(KNOT_CASES), [c.domain for c in KNOT_CASES if c.zone] + ["servfail.nl"]).start()
    yield server
    server.stop()


def scan(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DIJKWACHT_DISABLE_PLUGIN_AUTOLOAD": "1"}
    return subprocess.run([*DIJKWACHT, "scan", *args], capture_output=True, text=True, timeout=120, env=env)


def test_scan_of_the_corpus_matches_exactly(knot):
    names = [c.query or c.domain for c in KNOT_CASES]
    done = scan("--nameserver", knot.address, "--data-dir", str(shared(IP_RANGES)), "--timeout", "1", "--format", "json", *names)
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)
    assert [r["target"] for r in results] == [c.domain for c in KNOT_CASES]  # input order, normalised
    problems = []
    for case, result in zip(KNOT_CASES, results):
        got = {(d["category"], d["provider"], d["confidence"]) for d in result["dependencies"]}
        if got != set(case.expect):
            problems.append(f"{case.domain}: got {sorted(got)}, expected {sorted(case.expect)}")
        errors = {e["detector"] for e in result["errors"]}
        if errors != set(case.errors):
            problems.append(f"{case.domain}: errors {result['errors']}")
        for dep in result["dependencies"]:
            assert set(dep) >= {"category", "provider", "name", "jurisdiction", "foreign", "evidence"}
    assert problems == []


def test_an_address_no_range_file_claims_is_attributed_through_its_as(knot, tmp_path):
    """With an ip2asn table in the data dir, stad-o.nl's self-hosted mail server (an address no
    range file claims) is attributed to the AS that routes it, as indicated."""
    data = tmp_path / "data"
    data.mkdir()
    for path in IP_RANGES.glob("*.txt"):
        (data / path.name).symlink_to(path)
    rows = "195.230.171.0\t195.230.171.255\t64496\tNL\tEXAMPLE-HOSTING Example Hosting B.V.\n"
    (data / "ip2asn-combined.tsv.gz").write_bytes(gzip.compress(rows.encode()))
    done = scan("--nameserver", knot.address, "--data-dir", str(data), "--timeout", "1", "--detector", "email", "stad-o.nl", "gemeente-a.nl")
    assert done.returncode == 0, done.stderr
    stad, gemeente = json.loads(done.stdout)
    [dep] = stad["dependencies"]
    assert (dep["provider"], dep["name"], dep["jurisdiction"], dep["foreign"]) == ("as64496", "AS64496 EXAMPLE-HOSTING Example Hosting B.V.", "NL", False)
    assert (dep["role"], dep["confidence"], dep["evidence"]) == ("mailbox", "indicated", ["MX 10 mail.stad-o.nl 195.230.171.116 (AS64496 EXAMPLE-HOSTING Example Hosting B.V., NL)"])
    assert [(d["provider"], d["confidence"]) for d in gemeente["dependencies"]] == [("microsoft", "confirmed")]  # by name: the table is not asked


def test_servfail_zone_is_an_error_for_every_detector(knot):
    knot.servfail("servfail.nl")
    try:
        done = scan("--nameserver", knot.address, "--timeout", "1", "servfail.nl")
    finally:
        knot.reload()
    [result] = json.loads(done.stdout)
    assert result["dependencies"] == []
    assert {e["detector"] for e in result["errors"]} == {"email", "video", "cdn", "hosting", "dns"}
    assert all("SERVFAIL" in e["message"] for e in result["errors"])


def test_table_output_and_invalid_names(knot):
    done = scan("--nameserver", knot.address, "--data-dir", str(shared(IP_RANGES)), "--format", "table", "gemeente-a.nl", "not_a..domain", "ziekenhuis-g.nl")
    assert done.returncode == 0
    out = done.stdout
    assert "gemeente-a.nl  (1 dependencies, 1 foreign)" in out
    assert re.search(r"email +mailbox +microsoft +US +yes +confirmed", out)
    assert re.search(r"email +gateway +proofpoint .* MX 10 mx0a-001\.pphosted\.com", out)
    assert "! input: invalid domain name 'not_a..domain'" in out
    assert "not_a..domain" in done.stderr


def test_usage_errors_exit_non_zero_with_one_line(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[agent]\nhome = [\"XX1\"]\n")
    done = scan("--config", str(bad), "example.nl")
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "bad.toml:2: agent.home" in done.stderr
    assert scan().returncode == 2
    assert scan("--nameserver", "dns.example", "x.nl").returncode == 2


def test_http_probe_reads_headers_only_when_switched_on(tmp_path):
    """`--http-probe` against a real HTTP server on 127.0.0.1:80, names served by Knot."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    requests: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's naming)
            requests.append(f"{self.headers['Host']}{self.path}")
            self.send_response(200)
            self.send_header("CF-RAY", "8f00deadbeef-AMS")
            self.send_header("Server", "cloudflare")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    try:
        http = ThreadingHTTPServer(("127.0.0.1", 80), Handler)
    except PermissionError:
        pytest.skip("binding 127.0.0.1:80 needs root or a private user+network namespace (the README's test command runs in one)")
    threading.Thread(target=http.serve_forever, daemon=True).start()
    knot = Knot(tmp_path / "knot", "probe-site.nl A 127.0.0.1\nwww.probe-site.nl A 127.0.0.1\n", ["probe-site.nl"]).start()
    try:
        off = json.loads(scan("--nameserver", knot.address, "probe-site.nl").stdout)
        assert requests == []  # DNS only: no connection to the target without --http-probe
        assert off[0]["dependencies"] == []
        refused = json.loads(scan("--nameserver", knot.address, "--http-probe", "probe-site.nl").stdout)
        assert requests == [] and refused[0]["dependencies"] == []  # 127.0.0.1 is not public
        on = json.loads(scan("--nameserver", knot.address, "--http-probe", "--http-probe-allow-private", "probe-site.nl").stdout)
        cdn = [d for d in on[0]["dependencies"] if d["category"] == "cdn"]
        assert [(d["provider"], d["confidence"]) for d in cdn] == [("cloudflare", "confirmed")]
        assert any("cf-ray: 8f00deadbeef-AMS" in e for e in cdn[0]["evidence"])
        assert requests and all(r.split("/")[0].split(":")[0] in ("probe-site.nl", "www.probe-site.nl") for r in requests)
    finally:
        http.shutdown()
        knot.stop()


def test_demo_scan_of_the_readme_works_offline():
    done = scan("--demo", "--format", "json")
    assert done.returncode == 0, done.stderr
    results = {r["target"]: r for r in json.loads(done.stdout)}
    deps = {t: {(d["category"], d["provider"]) for d in r["dependencies"]} for t, r in results.items()}
    assert deps["gemeente.example"] == {("email", "microsoft"), ("video", "microsoft"), ("cdn", "cloudflare"), ("dns", "amazon")}
    assert deps["ziekenhuis.example"] == {("email", "microsoft"), ("email", "proofpoint"), ("dns", "transip")}
    assert deps["waterschap.example"] == {("email", "hostnet")}
    assert not any(d["foreign"] for d in results["waterschap.example"]["dependencies"])  # the demo's home case
    assert {e["detector"] for e in results["ministerie.example"]["errors"]} == {"email", "video"}


def test_history_without_a_state_database_says_so(tmp_path):
    done = subprocess.run([*DIJKWACHT, "history", "--state", str(tmp_path / "none.db")], capture_output=True, text=True)
    assert done.returncode == 2 and "no state database at" in done.stderr
    assert not (tmp_path / "none.db").exists()


def test_run_with_a_taken_port_is_a_one_line_error(tmp_path):
    import socket

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    config = tmp_path / "d.toml"
    config.write_text(f'[agent]\nnameservers = ["127.0.0.1:9"]\n[daemon]\nlisten = "127.0.0.1:{taken.getsockname()[1]}"\nstate_path = "{tmp_path / "s.db"}"\n')
    try:
        done = subprocess.run([*DIJKWACHT, "run", "--config", str(config)], capture_output=True, text=True, timeout=30)
    finally:
        taken.close()
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith("dijkwacht: ") and "Traceback" not in done.stderr
