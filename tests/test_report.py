"""`dijkwacht report`: its figures against an independent count, every format, hostile input,
bad input, the agent's state and history, and /report of the agent in-process.

The browser end of it (no request leaves the page, the filter, 16,500 domains, /report of a
real agent behind TLS and basic auth) is tests/test_e2e_report.py."""

from __future__ import annotations

import asyncio
import base64
import csv
import gzip
import io
import json
import re
import time
from html.parser import HTMLParser
from pathlib import Path

import aiohttp
import pytest

from dijkwacht.catalog import EU, load_catalog
from dijkwacht.cli import main
from dijkwacht.daemon.agent import Daemon
from dijkwacht.daemon.server import serve
from dijkwacht.state import StateStore
from dijkwacht.daemon.webconfig import WebConfig
from dijkwacht.figures import change_figures, figures, share, shares, with_groups
from dijkwacht.daemon import report_page as live
from dijkwacht.scanner import Dependency, ScanError, TargetResult
from dijkwacht.targets import Target

HOSTILE = "</script><script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(2)>'


class Tables(HTMLParser):
    """The page's tables by caption (cell texts), and every element's data-figure text."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.figures: dict[str, str] = {}
        self._caption = self._figure = None
        self._rows: list[list[str]] | None = None
        self._text: list[str] | None = None
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "data-figure" in attrs:
            self._figure, self._text = attrs["data-figure"], []
        elif tag == "table":
            self._rows = []
        elif tag == "caption":
            self._caption, self._text = "", []
        elif tag == "tr" and self._rows is not None:
            self._rows.append([])
        elif tag in ("td", "th") and self._rows is not None:
            self._text = []

    def handle_endtag(self, tag):
        if self._figure and tag in ("strong", "span"):
            self.figures[self._figure] = "".join(self._text or [])
            self._figure = self._text = None
        elif tag == "caption":
            self._caption = "".join(self._text or [])
            self._text = None
        elif tag in ("td", "th") and self._rows is not None and self._text is not None:
            self._rows[-1].append("".join(self._text).strip())
            self._text = None
        elif tag == "table" and self._rows is not None:
            self.tables[self._caption or ""] = self._rows
            self._rows = None

    def handle_data(self, data):
        if self._text is not None:
            self._text.append(data)


def number(text: str) -> float:
    return float(text.replace(",", "").replace("\u00a0", "").rstrip("%").strip())


def independent(results: list[dict]) -> dict:
    """The headline counted here from the scan JSON, without agent/figures.py: a target is
    foreign if a dependency that is not inferred is foreign; per category the same."""
    n = len(results)
    foreign = sum(any(d["foreign"] and d["confidence"] != "inferred" for d in r["dependencies"]) for r in results)
    per = {}
    for category in {d["category"] for r in results for d in r["dependencies"]}:
        per[category] = sum(any(d["foreign"] and d["confidence"] != "inferred" and d["category"] == category for d in r["dependencies"]) for r in results)
    return {"targets": n, "foreign": foreign, "share": round(100 * foreign / n, 1), "categories": {c: round(100 * k / n, 1) for c, k in per.items() if k}}


def check_against_independent(results: list[dict], report_json: dict, page: str) -> None:
    """The json report and the figures in the HTML agree with the independent count."""
    expected = independent(results)
    assert report_json["figures"]["targets"] == expected["targets"]
    assert report_json["figures"]["foreign"] == expected["foreign"]
    assert report_json["shares"]["foreign"] == expected["share"]
    for category, value in expected["categories"].items():
        assert report_json["shares"]["categories"][category]["foreign"] == value
    html = Tables(page)
    assert number(html.figures["foreign"]) == expected["foreign"]
    assert number(html.figures["targets"]) == expected["targets"]
    assert number(html.figures["share"]) == number(html.figures["share-foreign"]) == expected["share"]
    [table] = [rows for caption, rows in html.tables.items() if caption.startswith("Per category")]
    shown = {row[0]: number(row[3]) for row in table[1:]}
    assert shown == {c: report_json["shares"]["categories"][c]["foreign"] for c in shown}
    assert {c: v for c, v in shown.items() if v} == expected["categories"]


def run(*argv: str) -> int:
    return main(["--log-level", "error", *argv])


@pytest.fixture
def demo(tmp_path) -> Path:
    path = tmp_path / "demo.json"
    assert run("scan", "--demo", "--quiet", "--format", "json", "--output", str(path)) == 0
    return path


def domain_data(page: str) -> dict:
    block = re.search(r'<script type="application/octet-stream" id="domain-data">(.*?)</script>', page, re.S).group(1)
    return json.loads(gzip.decompress(base64.b64decode("".join(block.split()))))


def test_headline_figures_match_an_independent_count_in_json_and_html(demo, tmp_path):
    results = json.loads(demo.read_text())
    assert run("report", str(demo), "--format", "json", "--output", str(tmp_path / "r.json")) == 0
    assert run("report", str(demo), "--output", str(tmp_path / "r.html")) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    page = (tmp_path / "r.html").read_text()
    check_against_independent(results, report, page)
    # The demo: the ministry's MX lookup fails (incomplete), Meet is only inferred (not counted).
    assert report["figures"]["incomplete"] == 1 and "video" in report["figures"]["categories"]
    data = domain_data(page)
    ministry = next(d for d in data["d"] if d[0] == "ministerie.example")
    assert ministry[2] == 1 and "SERVFAIL" in " ".join(ministry[5])
    # An inferred dependency is listed with its domain but not counted.
    results[2]["dependencies"].append({"category": "video", "role": "meeting", "provider": "google", "name": "Google Meet", "jurisdiction": "US",
                                       "foreign": True, "evidence": ["inferred from mail"], "confidence": "inferred", "parent": "Alphabet Inc."})
    inferred = tmp_path / "inferred.json"
    inferred.write_text(json.dumps(results))
    assert run("report", str(inferred), "--output", str(tmp_path / "i.html")) == 0
    page = (tmp_path / "i.html").read_text()
    check_against_independent(results, json.loads((tmp_path / "r.json").read_text()), page)
    data = domain_data(page)
    meet = next(x for d in data["d"] for x in d[4] if data["p"][x[2]][1] == "Google Meet")
    assert meet[3] == "inferred" and meet[4] == 0


def test_jsonl_input_gives_the_same_report_as_the_array(demo, tmp_path):
    results = json.loads(demo.read_text())
    lines = tmp_path / "demo.jsonl"
    lines.write_text("".join(json.dumps(r) + "\n" for r in results))
    outputs = []
    for source in (demo, lines):
        assert run("report", str(source), "--format", "json", "--output", str(tmp_path / "out.json")) == 0
        report = json.loads((tmp_path / "out.json").read_text())
        outputs.append({k: report[k] for k in ("figures", "shares", "groups")})
    assert outputs[0] == outputs[1]


def hostile_results() -> list[dict]:
    dep = {"category": "email", "role": "mailbox", "provider": "evil<b>", "name": f"Mail {IMG}", "jurisdiction": "US", "foreign": True,
           "evidence": [f"TXT {HOSTILE}", "=HYPERLINK(\"http://x\")"], "confidence": "confirmed", "parent": "<i>Evil</i> & Co"}
    return [
        {"target": "evil.example", "dependencies": [dep], "errors": [{"detector": "dns", "message": "<svg onload=alert(3)>"}],
         "labels": {"sector": "<u>x</u>"}},
        {"target": "fine.example", "dependencies": [], "errors": []},
    ]


def test_values_from_dns_are_escaped_in_every_format(tmp_path):
    source = tmp_path / "hostile.json"
    source.write_text(json.dumps(hostile_results()))
    for fmt in ("html", "md", "csv", "json"):
        assert run("report", str(source), "--format", fmt, "--output", str(tmp_path / f"r.{fmt}")) == 0
    page = (tmp_path / "r.html").read_text()
    for raw in ("<script>alert", "<img", "<svg onload", "<b>", "<i>Evil", "<u>x"):
        assert raw not in page
    assert "evil&lt;b&gt;" in page and "&lt;i&gt;Evil&lt;/i&gt; &amp; Co" in page and "&lt;u&gt;x&lt;/u&gt;" in page
    assert page.count("<script>") == 1  # the page's own, allowed by its hash
    # The domain table's data holds the values as data; the page's script shows them with textContent only.
    data = domain_data(page)
    assert data["d"][0][4][0][5][0] == f"TXT {HOSTILE}" and "innerHTML" not in page
    markdown = (tmp_path / "r.md").read_text()
    assert "<" not in markdown.replace("\\<", "")
    rows = list(csv.DictReader(io.StringIO((tmp_path / "r.csv").read_text())))
    assert rows[0]["evidence"].startswith("TXT </script>") and rows[0]["label_sector"] == "<u>x</u>"
    assert json.loads((tmp_path / "r.json").read_text())["figures"]["providers"]["evil<b>"]["parent"] == "<i>Evil</i> & Co"


def test_a_formula_in_a_csv_cell_is_shown_as_text(tmp_path):
    results = hostile_results()
    results[0]["dependencies"][0]["evidence"] = ["=cmd|' /C calc'!A0"]
    source = tmp_path / "formula.json"
    source.write_text(json.dumps(results))
    assert run("report", str(source), "--format", "csv", "--output", str(tmp_path / "r.csv")) == 0
    rows = list(csv.DictReader(io.StringIO((tmp_path / "r.csv").read_text())))
    assert rows[0]["evidence"] == "'=cmd|' /C calc'!A0"


def test_csv_has_a_row_per_dependency_and_every_domain(demo, tmp_path):
    results = json.loads(demo.read_text())
    assert run("report", str(demo), "--format", "csv", "--output", str(tmp_path / "r.csv")) == 0
    rows = list(csv.DictReader(io.StringIO((tmp_path / "r.csv").read_text())))
    assert len(rows) == sum(max(1, len(r["dependencies"])) for r in results)
    assert {r["domain"] for r in rows} == {r["target"] for r in results}
    mail = next(r for r in rows if r["domain"] == "ziekenhuis.example" and r["provider"] == "proofpoint")
    assert (mail["role"], mail["jurisdiction"], mail["foreign"], mail["counted"], mail["label_sector"]) == ("gateway", "US", "true", "true", "demo")
    assert next(r for r in rows if r["domain"] == "ministerie.example")["incomplete"] == "true"


def test_markdown_has_the_sections_and_the_domains_on_request(demo, tmp_path):
    assert run("report", str(demo), "--format", "md", "--output", str(tmp_path / "r.md")) == 0
    text = (tmp_path / "r.md").read_text()
    assert "**4 of 5 domains (80.0 %) depend on at least one provider whose ultimate parent falls outside the EU.**" in text
    for heading in ("## 1. The headline", "## 2. Providers and jurisdictions", "## 3. Per group", "## 4. Changes", "## 6. Method and limits"):
        assert heading in text
    assert "## 5." not in text
    assert run("report", str(demo), "--format", "md", "--domains", "--output", str(tmp_path / "d.md")) == 0
    assert "ziekenhuis.example" in (tmp_path / "d.md").read_text()


@pytest.mark.parametrize(("content", "message"), [
    ('[\n{"target": "a.nl", "dependencies": []},\n{"target": "b.nl", "dependencies": [}\n]', "bad.json:3: invalid JSON"),
    ('[\n{"target": "a.nl", "dependencies": []},\n\n{"target": "b.nl", "dependencies": [{"category": "email"}]}\n]',
     "bad.json:4: dependencies[0].provider: must be a non-empty string"),
    ('[{"target": "a.nl", "dependencies": [{"category": "email", "provider": "x", "evidence": "MX"}]}]', "bad.json:1: dependencies[0].evidence: must be a list of strings"),
    ('[{"target": "a.nl", "dependencies": [], "labels": {"sector": 3}}]', "bad.json:1: labels: must be an object of strings"),
    ('{"target": "a.nl", "dependencies": []}\n{"target": 5}\n', "bad.json:2: target: must be a non-empty string"),
    ('[\n{"target": "a.nl", "dependencies": []},\n', "the array is not closed"),
    ("target,provider\n", "bad.json:1: not scan results"),
])
def test_bad_input_is_one_line_naming_file_line_and_key(tmp_path, capsys, monkeypatch, content, message):
    monkeypatch.chdir(tmp_path)
    Path("bad.json").write_text(content)
    assert run("report", "bad.json") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


def test_an_empty_results_file_is_zero_domains_but_empty_stdin_an_error(tmp_path, capsys, monkeypatch):
    """A campaign stopped before its first result leaves an empty .jsonl: zero JSON lines."""
    monkeypatch.chdir(tmp_path)
    Path("none.jsonl").write_text("")
    assert run("report", "none.jsonl", "--format", "json", "--output", "r.json") == 0
    assert json.loads(Path("r.json").read_text())["figures"]["targets"] == 0
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"")))
    assert run("report", "-") == 2
    assert "<stdin>: empty" in capsys.readouterr().err


def test_a_domain_with_only_inferred_dependencies_is_not_reported_as_having_none(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    meet = {"category": "video", "role": "meeting", "provider": "google", "jurisdiction": "US", "foreign": True,
            "confidence": "inferred", "evidence": ["MX aspmx.l.google.com (Workspace mail)"]}
    Path("x.jsonl").write_text(json.dumps({"target": "a.nl", "dependencies": [meet], "errors": []}) + "\n")
    for fmt in ("md", "html"):
        assert run("report", "x.jsonl", "--format", fmt, "--output", f"r.{fmt}") == 0
        text = Path(f"r.{fmt}").read_text()
        assert "No dependency was found" not in text
        assert "No dependency that counts was found: 1 inferred one is listed per domain but not counted" in text


@pytest.mark.parametrize(("argv", "message"), [
    (["x.json", "--state", "s.db"], "not both"),
    ([], "give scan RESULTS"),
    (["DEMO", "--since", "2026-01-01"], "--since needs the agent's history"),
    (["DEMO", "--group-by", "owner"], "--group-by owner: no target has that label (labels found: sector)"),
    (["DEMO", "--home", "XYZ"], "--home:"),
    (["--state", "missing.db"], "no state database at missing.db"),
])
def test_usage_errors(demo, tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    assert run("report", *[str(demo) if a == "DEMO" else a for a in argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_home_decides_foreign_and_a_scan_for_another_home_is_recomputed(demo, tmp_path):
    assert run("report", str(demo), "--home", "US", "--format", "json", "--output", str(tmp_path / "r.json")) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    # Seen from the US, only the British parent of TransIP and the Dutch Hostnet are foreign.
    assert report["home"] == ["US"] and report["figures"]["foreign"] == 2
    assert report["figures"]["providers"]["transip"]["foreign"] == 1 and report["figures"]["providers"]["hostnet"]["foreign"] == 1
    assert report["figures"]["providers"]["microsoft"]["foreign"] == 0
    assert any("recomputed" in note for note in report["source"]["notes"])


def test_groups_have_the_figures_of_their_targets(tmp_path):
    def result(domain, sector, foreign, errors=()):
        dep = {"category": "email", "role": "mailbox", "provider": "microsoft" if foreign else "hostnet", "name": "", "jurisdiction": "US" if foreign else "NL",
               "foreign": foreign, "evidence": [], "confidence": "confirmed", "parent": ""}
        return {"target": domain, "dependencies": [dep], "errors": [{"detector": "dns", "message": m} for m in errors], "labels": {"sector": sector}}

    results = [result("a.nl", "gemeente", True), result("b.nl", "gemeente", False), result("c.nl", "zorg", False, ["NS c.nl: TIMEOUT"]),
               {"target": "d.nl", "dependencies": [], "errors": []}]
    whole, groups = with_groups(results, ["sector"])
    assert whole == figures(results)
    assert groups["sector"]["gemeente"] == figures(results[:2])
    assert groups["sector"]["zorg"]["unknown"] == 1 and groups["sector"][""]["clean"] == 1
    source = tmp_path / "g.json"
    source.write_text(json.dumps(results))
    assert run("report", str(source), "--group-by", "sector", "--format", "json", "--output", str(tmp_path / "r.json")) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["groups"]["sector"]["gemeente"]["shares"]["foreign"] == 50.0
    assert report["groups"]["sector"]["zorg"]["figures"]["incomplete"] == 1
    assert run("report", str(source), "--group-by", "sector", "--output", str(tmp_path / "r.html")) == 0
    [rows] = [t for c, t in Tables((tmp_path / "r.html").read_text()).tables.items() if c.startswith("Per sector")]
    assert [r[:4] for r in rows[1:]] == [["(no sector)", "1", "0", "0.0\u00a0%"], ["gemeente", "2", "1", "50.0\u00a0%"], ["zorg", "1", "0", "0.0\u00a0%"]]


def test_shares_are_rounded_once_and_none_of_nothing():
    assert share(2, 3) == 66.7 and share(0, 0) is None
    fig = figures([{"target": "a.nl", "dependencies": [{"category": "cdn", "provider": "cloudflare", "foreign": True, "jurisdiction": "US", "role": "cdn"}]},
                   {"target": "b.nl", "dependencies": [], "errors": [{"detector": "cdn", "message": "x"}]},
                   {"target": "c.nl", "dependencies": []}])
    sh = shares(fig)
    assert (sh["foreign"], sh["clean"], sh["unknown"], sh["incomplete"]) == (33.3, 33.3, 33.3, 33.3)
    assert sh["categories"]["cdn"] == {"any": 33.3, "foreign": 33.3, "foreign_of_any": 100.0}
    assert sh["providers"]["cloudflare"] == {"any": 33.3}


def dep(category, provider, juris, role="mailbox", confidence="confirmed"):
    return Dependency(category, provider, provider.title(), juris, juris not in EU, (f"{category} evidence for {provider}",), confidence, f"{provider} parent", role)


def state_with_history(path: Path) -> None:
    """gemeente.nl moves mail from Hostnet to Microsoft, ziekenhuis.nl back from Microsoft to
    Hostnet, school.nl's Zivver changes owner (Kiteworks, US), storing.nl's last scan fails."""
    store = StateStore(path, confirmations=1)
    scanned = frozenset({"email", "dns"})
    t = time.time() - 3600
    timeline = [
        ("gemeente.nl", [dep("email", "hostnet", "NL")], [dep("email", "microsoft", "US")]),
        ("ziekenhuis.nl", [dep("email", "microsoft", "US")], [dep("email", "hostnet", "NL")]),
        ("school.nl", [dep("email", "zivver", "NL", "gateway"), dep("dns", "hostnet", "NL", "dns")], None),
        ("storing.nl", [dep("dns", "amazon", "US", "dns")], None),
    ]
    for domain, first, second in timeline:
        store.record(TargetResult(Target(domain), first, [], frozenset(), scanned), EU, now=t)
        if second is not None:
            store.record(TargetResult(Target(domain), second, [], frozenset(), scanned), EU, now=t + 60)
    store.record(TargetResult(Target("storing.nl"), [], [ScanError("dns", "NS storing.nl: SERVFAIL")], frozenset({"dns"}), scanned), EU, now=t + 120)
    assert len(store.apply_ownership(load_catalog(), EU, now=t + 180)) == 1
    store.close()


def test_report_of_the_state_counts_changes_and_incomplete_targets(tmp_path):
    db = tmp_path / "state.db"
    state_with_history(db)
    assert run("report", "--state", str(db), "--format", "json", "--output", str(tmp_path / "r.json")) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    fig = report["figures"]
    assert (fig["targets"], fig["foreign"], fig["clean"], fig["incomplete"]) == (4, 3, 1, 1)
    changes = report["changes"]["figures"]
    assert changes["kinds"] == {"home_to_foreign": 2, "foreign_to_foreign": 0, "foreign_to_home": 1, "other": 0}
    assert changes["reasons"] == {"dns": 2, "ownership": 1} and changes["targets"] == 3
    assert [c["target"] for c in report["changes"]["list"]] == ["gemeente.nl", "ziekenhuis.nl", "school.nl"]
    assert report["source"]["kind"] == "state" and report["source"]["scanned_from"] is not None
    # --since: only what happened at or after it (the ownership change is the newest).
    assert run("report", "--state", str(db), "--since", "2999-01-01", "--format", "json", "--output", str(tmp_path / "later.json")) == 0
    assert json.loads((tmp_path / "later.json").read_text())["changes"]["figures"]["changes"] == 0
    assert run("report", "--state", str(db), "--output", str(tmp_path / "r.html")) == 0
    html = Tables((tmp_path / "r.html").read_text())
    assert (html.figures["home_to_foreign"], html.figures["foreign_to_home"], html.figures["ownership"]) == ("2", "1", "1")
    [listed] = [rows for caption, rows in html.tables.items() if caption.startswith("The changes")]
    assert [row[0] for row in listed[1:]] == ["school.nl", "ziekenhuis.nl", "gemeente.nl"]


def test_config_gives_the_state_the_labels_and_the_targets(tmp_path):
    db = tmp_path / "state.db"
    state_with_history(db)
    config = tmp_path / "dijkwacht.toml"
    config.write_text(f"""
[agent]
home = ["NL"]
[daemon]
state_path = "{db}"
[[targets]]
domain = "gemeente.nl"
labels = {{ sector = "municipality" }}
[[targets]]
domain = "school.nl"
labels = {{ sector = "education" }}
[[targets]]
domain = "nieuw.nl"
labels = {{ sector = "education" }}
""")
    assert run("report", "--config", str(config), "--format", "json", "--output", str(tmp_path / "r.json")) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["home"] == ["NL"] and report["figures"]["targets"] == 3
    # A configured target the agent has not scanned yet is incomplete, never clean.
    assert report["groups"]["sector"]["education"]["figures"]["unknown"] == 1
    assert [c["target"] for c in report["changes"]["list"]] == ["gemeente.nl", "school.nl"]


async def test_agent_serves_the_report_and_keeps_it(dns_server, tmp_path, monkeypatch):
    server = await dns_server("""
gemeente.nl MX 10 mailfilter.hostnet.nl.
ziekenhuis.nl MX 0 ziekenhuis-nl.mail.protection.outlook.com.
""")
    config = tmp_path / "dijkwacht.toml"
    config.write_text(f"""
[agent]
nameservers = ["{server.address}"]
dns_timeout = 0.3
dns_tries = 1
[daemon]
interval = "1h"
state_path = "{tmp_path / 'state.db'}"
[[targets]]
domain = "gemeente.nl"
labels = {{ sector = "municipality" }}
[[targets]]
domain = "ziekenhuis.nl"
labels = {{ sector = "hospital" }}
""")
    daemon = Daemon(config)
    await daemon.start()
    runner = await serve(daemon, WebConfig(), "127.0.0.1:0")
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        deadline = time.monotonic() + 10
        while not daemon.ready and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/") as response:
                assert 'href="report"' in await response.text()
            async with http.get(f"{base}/report") as response:
                assert response.status == 200 and response.content_type == "text/html"
                assert "default-src 'none'" in response.headers["Content-Security-Policy"]
                first = await response.text()
            html = Tables(first)
            assert (html.figures["foreign"], html.figures["targets"]) == ("1", "2")
            assert any(c.startswith("Per sector") for c in html.tables)
            async with http.get(f"{base}/report") as response:
                assert await response.text() == first  # kept, not rendered again
            monkeypatch.setattr(live, "MAX_AGE", 0.0)
            async with http.get(f"{base}/report") as response:
                assert await response.text() == first  # the old page at once; a new one is being rendered
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                async with http.get(f"{base}/report") as response:
                    if await response.text() != first:
                        break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("the kept page was never renewed")
            renewed = await response.text()

            def broken(*_):
                raise RuntimeError("a bug in a renderer")

            monkeypatch.setattr(live, "_render", broken)  # a failed render keeps the last page and the agent
            for _ in range(3):
                async with http.get(f"{base}/report") as response:
                    assert response.status == 200 and await response.text() == renewed
                await asyncio.sleep(0.1)
            async with http.get(f"{base}/-/healthy") as response:
                assert response.status == 200
    finally:
        await runner.cleanup()
        await daemon.stop(grace=0)


async def test_agent_page_and_report_of_its_state_list_the_same_dependencies(dns_server, tmp_path):
    """/report is made from the stored dependencies as `report --state` is: an inferred one
    (Meet from Google mail), which the metrics leave out, is listed and not counted in both."""
    server = await dns_server("""
school.nl MX 1 aspmx.l.google.com.
gemeente.nl MX 10 mailfilter.hostnet.nl.
""")
    state = tmp_path / "state.db"
    config = tmp_path / "dijkwacht.toml"
    config.write_text(f"""
[agent]
nameservers = ["{server.address}"]
dns_timeout = 0.3
dns_tries = 1
[daemon]
interval = "1h"
state_path = "{state}"
[[targets]]
domain = "school.nl"
[[targets]]
domain = "gemeente.nl"
""")
    daemon = Daemon(config)
    await daemon.start()
    runner = await serve(daemon, WebConfig(), "127.0.0.1:0")
    try:
        deadline = time.monotonic() + 10
        while not daemon.ready and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert daemon.snapshot.views["school.nl"].deps.get("video") == []  # the metrics leave the inferred Meet out
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{runner.addresses[0][1]}/report") as response:
                live_page = await response.text()
        # beside the running agent, as an operator would
        assert await asyncio.to_thread(run, "report", "--state", str(state), "--output", str(tmp_path / "state.html")) == 0
    finally:
        await runner.cleanup()
        await daemon.stop(grace=0)

    def listed(page: str) -> dict[str, list[tuple]]:
        """domain -> its dependencies: category, role, provider (id, name), confidence, counted."""
        data = domain_data(page)
        return {d[0]: [(x[0], x[1], *data["p"][x[2]][:2], x[3], x[4]) for x in d[4]] for d in data["d"]}

    shown = listed(live_page)
    assert shown == listed((tmp_path / "state.html").read_text())
    assert ("video", "meeting", "google", "Google Meet", "inferred", 0) in shown["school.nl"]
    assert Tables(live_page).figures["foreign"] == Tables((tmp_path / "state.html").read_text()).figures["foreign"] == "1"


def test_method_describes_as_attribution_and_unverified_ownership(demo, tmp_path):
    """Section 6 says how an address no range file claims is attributed (its AS, indicated,
    the registration country, which can be foreign) and which providers' owners are not verified."""
    results = json.loads(demo.read_text())
    # an AS holder registered outside home, as the scan attributes it, counts as foreign
    clean = next(r for r in results if not any(d["foreign"] for d in r["dependencies"]) and not r["errors"])
    clean["dependencies"].append({"category": "hosting", "role": "hosting", "provider": "as64500", "name": "EXAMPLE-AS Example Hosting Inc.",
                                  "jurisdiction": "US", "foreign": True, "evidence": ["A 192.0.2.1 AS64500 (US)"], "confidence": "indicated", "parent": ""})
    path = tmp_path / "as.json"
    path.write_text(json.dumps(results))
    for fmt in ("md", "json", "html"):
        assert run("report", str(path), "--format", fmt, "--output", str(tmp_path / f"r.{fmt}")) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["figures"]["providers"]["as64500"]["foreign"] == 1
    check_against_independent(results, report, (tmp_path / "r.html").read_text())
    method = (tmp_path / "r.md").read_text().split("## 6. Method and limits")[1]
    assert "does not know has no jurisdiction" not in method
    for words in ("autonomous system (AS)", "IP-to-AS table", "registered in as its jurisdiction", "at most indicated, never confirmed",
                  "registered outside home therefore counts as foreign"):
        assert words in method, words
    catalog = load_catalog()
    unverified = sorted((p for p in catalog.providers.values() if not p.verified), key=lambda p: p.id)
    assert report["catalog"]["unverified"] == [{"id": p.id, "name": p.name} for p in unverified]
    assert f"The ownership of {len(unverified)} of the catalog's {len(catalog.providers)} providers is not verified: " in method
    assert "Of these, this report counts Hostnet (1 domain)." in method  # the demo's Dutch hoster
    page = (tmp_path / "r.html").read_text()
    assert "<h3>Ownership not verified</h3>" in page and "Of these, this report counts Hostnet (1 domain).</p>" in page


def test_change_figures_of_nothing_are_zero():
    assert change_figures([], EU) == {"changes": 0, "targets": 0, "kinds": dict.fromkeys(("home_to_foreign", "foreign_to_foreign", "foreign_to_home", "other"), 0),
                                      "reasons": {"dns": 0, "ownership": 0}, "categories": {}}
