"""End to end: the report in a real browser (Debian's chromium, driven by Playwright).

The demo scan's report, a 16,500-domain report of the benchmark generator's population, and
/report of a real agent (`dijkwacht run` against Knot, behind TLS and basic auth): no console
error, no request but the page itself, the filter narrows the domain table, hostile values
stay text, a screenshot is taken."""

from __future__ import annotations

import base64
import json
import os
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import bcrypt
import pytest
from playwright.sync_api import Browser, sync_playwright

from benchmarks.report import synthetic_results

from .conftest import IP_RANGES
from .knot import Knot, free_port
from .test_report import check_against_independent, hostile_results

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
MAX_HTML_BYTES = 15_000_000
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} not installed: .ci/run installs Debian's chromium")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


class Opened:
    """A page opened in a fresh context, with every request, console problem and dialog recorded."""

    def __init__(self, browser: Browser, url: str, **context) -> None:
        self.context = browser.new_context(viewport={"width": 1200, "height": 900}, **context)
        self.requests: list[str] = []
        self.problems: list[str] = []
        self.dialogs: list[str] = []
        self.context.on("request", lambda r: self.requests.append(r.url))
        self.page = page = self.context.new_page()
        page.on("console", lambda m: self.problems.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: self.problems.append(f"pageerror: {e}"))
        page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        response = page.goto(url)
        assert response is not None and response.ok
        page.wait_for_selector("#domains tbody", timeout=60_000)

    def shown(self) -> list[str]:
        return self.page.eval_on_selector_all("#domains tbody .dn", "els => els.map(e => e.textContent)")

    def count(self) -> str:
        return self.page.inner_text("#count")

    def filter(self, text: str, expect: str) -> None:
        self.page.fill("#q", text)
        self.page.wait_for_function("t => document.getElementById('count').textContent.includes(t)", arg=expect, timeout=30_000)

    def close(self, screenshot: Path) -> None:
        self.page.screenshot(path=str(screenshot), full_page=False)
        assert screenshot.stat().st_size > 10_000
        self.context.close()


def dijkwacht(*argv: str) -> None:
    subprocess.run([sys.executable, "-m", "dijkwacht.cli", "--log-level", "error", *argv], check=True, timeout=300)


def readme_commands() -> str:
    """The README's two commands: scan to JSON, report to HTML."""
    text = (ROOT / "README.md").read_text().split("## The report", 1)[1]
    return text.split("```sh\n", 1)[1].split("```", 1)[0]


def test_demo_report_in_a_browser(browser, tmp_path):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    subprocess.run(["bash", "-ec", readme_commands()], cwd=tmp_path, env=env, check=True, timeout=120, capture_output=True)
    url = (tmp_path / "report.html").as_uri()
    opened = Opened(browser, url)
    assert opened.requests == [url] and opened.problems == []
    assert opened.count() == "Showing 5 of 5 matching domains (5 in all)."
    opened.filter("proofpoint", "Showing 1 of 1")
    assert opened.shown() == ["ziekenhuis.example"]
    opened.filter("", "Showing 5 of 5")
    opened.page.select_option("#st", "i")
    assert opened.shown() == ["ministerie.example"]
    assert "Incomplete: email: MX ministerie.example: SERVFAIL" in opened.page.inner_text("#domains tbody")
    opened.page.select_option("#st", "f")
    opened.page.select_option("#cat", "cdn")
    assert opened.shown() == ["gemeente.example", "universiteit.example"]
    assert opened.requests == [url] and opened.problems == [] and opened.dialogs == []
    opened.close(tmp_path / "demo.png")


def test_hostile_values_stay_text_in_the_browser(browser, tmp_path):
    source = tmp_path / "hostile.json"
    source.write_text(json.dumps(hostile_results()))
    dijkwacht("report", str(source), "--output", str(tmp_path / "hostile.html"))
    url = (tmp_path / "hostile.html").as_uri()
    opened = Opened(browser, url)
    table = opened.page.inner_text("#domains")
    assert "TXT </script><script>alert(1)</script>" in table and 'Mail "><img src=x onerror=alert(2)>' in table
    assert "<svg onload=alert(3)>" in table and opened.page.locator("#domains img, #domains script").count() == 0
    assert opened.dialogs == [] and opened.problems == [] and opened.requests == [url]
    opened.close(tmp_path / "hostile.png")


def test_a_16500_domain_report_in_a_browser(browser, tmp_path):
    results = synthetic_results(16_500)
    source = tmp_path / "results.json"
    source.write_text(json.dumps(results))
    dijkwacht("report", str(source), "--output", str(tmp_path / "big.html"), "--group-by", "sector")
    dijkwacht("report", str(source), "--format", "json", "--output", str(tmp_path / "big.json"))
    page = (tmp_path / "big.html").read_text()
    assert len(page.encode()) < MAX_HTML_BYTES
    report = json.loads((tmp_path / "big.json").read_text())
    check_against_independent(results, report, page)
    url = (tmp_path / "big.html").as_uri()
    opened = Opened(browser, url)
    assert opened.count() == "Showing 100 of 16,500 matching domains (16,500 in all)."
    gemeenten = sum(r["labels"]["sector"] == "gemeente" for r in results)
    opened.filter("sector=gemeente", f"of {gemeenten:,} matching")
    assert len(opened.shown()) == 100 and all(d.startswith("gemeente-") for d in opened.shown())
    opened.filter("", "of 16,500 matching")
    opened.page.select_option("#st", "i")
    opened.page.wait_for_function("n => document.getElementById('count').textContent.includes(' of ' + n + ' matching')",
                                  arg=f"{report['figures']['incomplete']:,}")
    opened.page.click("#all")
    assert len(opened.shown()) == report["figures"]["incomplete"]
    assert opened.requests == [url] and opened.problems == []
    opened.close(tmp_path / "big.png")


def _certificate(directory: Path) -> None:
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-days", "1",
         "-keyout", str(directory / "key.pem"), "-out", str(directory / "cert.pem")],
        check=True, capture_output=True,
    )


def _get(url: str, auth: str | None) -> int:
    insecure = ssl.create_default_context()
    insecure.check_hostname = False
    insecure.verify_mode = ssl.CERT_NONE
    request = urllib.request.Request(url, headers={"Authorization": auth} if auth else {})
    try:
        with urllib.request.urlopen(request, timeout=5, context=insecure) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def test_report_of_a_running_agent_behind_tls_and_basic_auth(browser, tmp_path):
    knot = Knot(tmp_path / "knot", """
gemeente.nl MX 0 gemeente-nl.mail.protection.outlook.com.
gemeente.nl TXT "v=spf1 include:spf.protection.outlook.com -all"
gemeente.nl NS ns0.transip.net.
waterschap.nl MX 10 mailfilter.hostnet.nl.
gemeente-nl.mail.protection.outlook.com A 52.101.68.1
mailfilter.hostnet.nl A 37.97.1.1
""", ["gemeente.nl", "waterschap.nl"]).start()
    _certificate(tmp_path)
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()
    (tmp_path / "web.yml").write_text(f"tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\nbasic_auth_users:\n  council: '{hashed}'\n")
    port = free_port()
    config = tmp_path / "dijkwacht.toml"
    config.write_text(f"""
[agent]
nameservers = ["{knot.address}"]
data_dir = "{IP_RANGES}"
dns_timeout = 0.5
dns_tries = 1
[daemon]
listen = "127.0.0.1:{port}"
interval = "1h"
state_path = "{tmp_path / 'state.db'}"
web_config = "{tmp_path / 'web.yml'}"
[[targets]]
domain = "gemeente.nl"
labels = {{ sector = "municipality" }}
[[targets]]
domain = "waterschap.nl"
labels = {{ sector = "water board" }}
""")
    agent = subprocess.Popen([sys.executable, "-m", "dijkwacht.cli", "run", "--config", str(config)], stdout=subprocess.DEVNULL,
                             stderr=open(tmp_path / "agent.log", "w"), env={**os.environ, "DIJKWACHT_DISABLE_PLUGIN_AUTOLOAD": "1"})
    base = f"https://127.0.0.1:{port}"
    auth = "Basic " + base64.b64encode(b"council:s3cret").decode()
    try:
        deadline = time.monotonic() + 30
        while _get(f"{base}/-/ready", auth) != 200:
            assert time.monotonic() < deadline and agent.poll() is None, (tmp_path / "agent.log").read_text()[-2000:]
            time.sleep(0.1)
        assert _get(f"{base}/report", None) == 401
        assert _get(f"{base}/report", "Basic " + base64.b64encode(b"council:wrong").decode()) == 401
        opened = Opened(browser, f"{base}/report", http_credentials={"username": "council", "password": "s3cret"}, ignore_https_errors=True)
        assert set(opened.requests) == {f"{base}/report"} and opened.problems == []
        headline = opened.page.inner_text("#headline .lead")
        assert "1 of 2 domains (50.0\u00a0%) depend on at least one provider whose ultimate parent falls outside the EU" in headline
        assert opened.page.inner_text("#groups").count("municipality") >= 1
        opened.filter("nl", "Showing 2 of 2")
        opened.filter("outlook", "Showing 1 of 1")
        assert opened.shown() == ["gemeente.nl"]
        opened.filter("", "Showing 2 of 2")
        opened.filter("hostnet", "Showing 1 of 1")  # waterschap's mail, at a Dutch provider
        assert opened.shown() == ["waterschap.nl"]
        assert set(opened.requests) == {f"{base}/report"} and opened.problems == []
        opened.close(tmp_path / "agent.png")
    finally:
        agent.terminate()
        agent.wait(timeout=10)
        knot.stop()
