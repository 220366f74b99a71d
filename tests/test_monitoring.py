"""The generated monitoring files (mixin/): up to date, valid, tested with promtool and amtool,
and dashboards that pass a lint. The same files against a real Prometheus scraping a real
agent: tests/test_e2e_alerting.py."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from mixin.__main__ import main as mixin_main
from mixin.__main__ import render
from mixin.config import Config, load, seconds
from mixin.dashboards import uids
from mixin.grafana import alerting
from mixin.rules import alert_rules, recording_rules

from .test_deploy_artifacts import CHART, METRICS_DOC, ROOT, check_promql, load_yaml, promtool, run  # noqa: F401

PROM_DIR = ROOT / "deploy" / "prometheus"
DASHBOARDS = ROOT / "grafana" / "dashboards"
RUNBOOKS = ROOT / "docs" / "runbooks.md"
ALERTMANAGER = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"

# Grafana's variables, filled in as a user would (one target, every category and group).
VARIABLES = {
    "datasource": "prometheus", "target": "gemeente.nl", "category": ".+", "sector": ".*",
    "__range": "1h", "__range_s": "3600", "__rate_interval": "1m", "__interval": "1m",
}


def fill(expr: str, values: dict[str, str] = VARIABLES) -> str:
    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", lambda m: values[m.group(1) or m.group(2)], expr)


def alerts() -> list[dict]:
    return [r for g in load_yaml(PROM_DIR / "alerts.yml")["groups"] for r in g["rules"]]


def dashboards() -> dict[str, dict]:
    return {p.name: json.loads(p.read_text(encoding="utf-8")) for p in sorted(DASHBOARDS.glob("*.json"))}


def panels(board: dict) -> list[dict]:
    out = []
    for p in board["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))  # collapsed rows
    return out


def exprs(board: dict) -> list[str]:
    out = [t["expr"] for p in panels(board) for t in p.get("targets", [])]
    out += [a["expr"] for a in board.get("annotations", {}).get("list", []) if a.get("expr")]
    return out


def variable_selectors(board: dict) -> list[str]:
    """The series selectors inside the query variables' label_values(SELECTOR, label)."""
    out = []
    for v in board["templating"]["list"]:
        if v["type"] == "query":
            m = re.fullmatch(r"label_values\((.*),\s*\w+\)", v["query"]["query"])
            assert m, v["query"]
            out.append(m.group(1))
    return out


def metric_names(expr: str) -> set[str]:
    """The series names an expression reads (label values and strings left out)."""
    bare = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    names = set(re.findall(r"(?<![\w:$])([a-zA-Z_:][\w:]*)\s*(?=[{\[)\s]|$)", bare))
    return {n for n in names if "dijkwacht" in n or n.startswith(("process_", "python_")) or n == "up"}


def documented(name: str, text: str) -> bool:
    for suffix in ("_bucket", "_sum", "_count", "_total"):
        if name.endswith(suffix) and f"`{name[: -len(suffix)]}`" in text:
            return True
    return f"`{name}`" in text


# --------------------------------------------------------------------------
# The generator
# --------------------------------------------------------------------------

def test_committed_files_are_what_the_generator_writes():
    stale = [str(path) for path, text in render(Config()).items() if (ROOT / path).read_text(encoding="utf-8") != text]
    assert not stale, f"out of date, run `python -m mixin`: {stale}"


def test_generator_check_mode_and_overrides(tmp_path):
    overrides = tmp_path / "mixin.yml"
    overrides.write_text('selector: job="dw-prod"\ngroup_label: owner\nstale_intervals: 5\n')
    assert mixin_main(["--config", str(overrides), "--out", str(tmp_path / "out")]) == 0
    assert mixin_main(["--config", str(overrides), "--out", str(tmp_path / "out"), "--check"]) == 0
    assert mixin_main(["--out", str(tmp_path / "out"), "--check"]) == 1
    text = "".join(p.read_text() for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert 'job=\\"dw-prod\\"' in text and 'job="dw-prod"' in text
    assert 'job="dijkwacht"' not in text and "sector" not in text
    assert "owner:dijkwacht_targets_foreign:ratio" in text and "5 * dijkwacht_scan_interval_seconds" in text


def test_generator_config_errors_name_the_key(tmp_path):
    bad = tmp_path / "mixin.yml"
    bad.write_text("selectr: x\n")
    with pytest.raises(SystemExit, match="selectr"):
        load(bad)
    with pytest.raises(ValueError, match="unit missing"):
        seconds("15")


def test_aggregations_name_their_labels():
    """An extra label on a metric (e.g. a dependency's `role`) must not split or break a figure:
    no `without`, and dependency_info is always reduced `by` the labels a query means."""
    cfg = Config()
    texts = [r["expr"] for g in recording_rules(cfg) + alert_rules(cfg) for r in g["rules"]]
    texts += [e for board in dashboards().values() for e in exprs(board)]
    for text in texts:
        assert " without " not in text and "without(" not in text, text
        assert not re.search(r"\b(sum|count|avg|max|min)\s*\(\s*dijkwacht_dependency_info", text), text


# --------------------------------------------------------------------------
# Prometheus rules
# --------------------------------------------------------------------------

EXPECTED_ALERTS = {
    "DijkwachtDependencyMovedForeign": "critical", "DijkwachtDependencyMovedBetweenForeign": "info",
    "DijkwachtOwnershipMadeForeign": "warning", "DijkwachtResolverFailing": "critical",
    "DijkwachtDetectorFailing": "warning", "DijkwachtTargetScanFailing": "warning",
    "DijkwachtScansStalled": "warning", "DijkwachtTargetNotScanned": "warning", "DijkwachtDown": "critical",
    "DijkwachtIPDataStale": "warning", "DijkwachtCatalogStale": "warning", "DijkwachtConfigReloadFailed": "warning",
    "DijkwachtShardMissing": "critical", "DijkwachtStateWriteFailing": "warning", "DijkwachtInternalErrors": "warning",
}


@pytest.mark.parametrize("path", [PROM_DIR / "rules.yml", PROM_DIR / "alerts.yml", CHART / "files" / "rules.yml"], ids=lambda p: str(p.relative_to(ROOT)))
def test_promtool_check_rules(promtool, path):
    res = run([promtool, "check", "rules", str(path)])
    assert res.returncode == 0 and "SUCCESS" in res.stdout, res.stdout + res.stderr


@pytest.mark.parametrize("tests", ["alerts_test.yml", "rules_test.yml"])
def test_promtool_unit_tests(promtool, tests):
    res = run([promtool, "test", "rules", tests], cwd=PROM_DIR)
    assert res.returncode == 0 and "SUCCESS" in res.stdout, res.stdout + res.stderr


def test_example_prometheus_config(promtool):
    res = run([promtool, "check", "config", "prometheus.yml"], cwd=PROM_DIR)
    assert res.returncode == 0, res.stdout + res.stderr
    config = load_yaml(PROM_DIR / "prometheus.yml")
    assert config["rule_files"] == ["rules.yml", "alerts.yml"]


def test_the_alerts_and_their_severities():
    assert {r["alert"]: r["labels"]["severity"] for r in alerts()} == EXPECTED_ALERTS


def test_every_alert_explains_itself_and_links_its_runbook():
    headings = set(re.findall(r"^## (Dijkwacht\w+)$", RUNBOOKS.read_text(encoding="utf-8"), re.M))
    for rule in alerts():
        notes = rule["annotations"]
        assert notes["summary"] and notes["description"], rule["alert"]
        assert notes["runbook_url"].endswith("docs/runbooks.md#" + rule["alert"].lower()), rule["alert"]
        assert rule["alert"] in headings, f"docs/runbooks.md has no section for {rule['alert']}"
    assert headings == set(EXPECTED_ALERTS), headings ^ set(EXPECTED_ALERTS)


def test_every_alert_fires_and_stays_quiet_in_the_unit_tests():
    tests = load_yaml(PROM_DIR / "alerts_test.yml")
    assert tests["rule_files"] == ["rules.yml", "alerts.yml"]
    firing, quiet = set(), set()
    for t in tests["tests"]:
        for case in t.get("alert_rule_test", []):
            (firing if case.get("exp_alerts") else quiet).add(case["alertname"])
    assert firing == set(EXPECTED_ALERTS), set(EXPECTED_ALERTS) - firing
    assert quiet == set(EXPECTED_ALERTS), set(EXPECTED_ALERTS) - quiet
    names = " ".join(t["name"] for t in tests["tests"])
    for scenario in ("resolver outage", "flapping", "restart"):
        assert scenario in names, scenario


def test_per_target_scan_alerts_wait_two_intervals():
    rules = {r["alert"]: r for r in alerts()}
    for name in ("DijkwachtTargetScanFailing", "DijkwachtTargetNotScanned"):
        assert seconds(rules[name]["for"]) >= 2 * 900, name
        assert "dijkwacht_scan_interval_seconds" in rules[name]["expr"], "threshold not derived from the interval"
    # The move alerts describe one target and category each, and fire on the kind of change.
    for name, matcher in [("DijkwachtDependencyMovedForeign", 'kind="home_to_foreign"'),
                          ("DijkwachtDependencyMovedBetweenForeign", 'kind="foreign_to_foreign"'),
                          ("DijkwachtOwnershipMadeForeign", 'reason="ownership"')]:
        assert "dijkwacht_dependency_last_change_timestamp_seconds" in rules[name]["expr"] and matcher in rules[name]["expr"]


def test_rules_use_only_documented_metrics():
    text = METRICS_DOC.read_text(encoding="utf-8")
    used = {n for g in load_yaml(CHART / "files" / "rules.yml")["groups"] for r in g["rules"] for n in metric_names(r["expr"])}
    assert used
    assert not {n for n in used if not documented(n, text)}


# --------------------------------------------------------------------------
# Alertmanager example
# --------------------------------------------------------------------------

AMTOOL = shutil.which("amtool")


@pytest.fixture(scope="session")
def amtool() -> str:
    if AMTOOL is None:
        pytest.fail("amtool not found: install the Debian package 'prometheus-alertmanager' (.ci/run does)")
    return AMTOOL


def test_alertmanager_example_is_valid(amtool):
    res = run([amtool, "check-config", str(ALERTMANAGER)])
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.parametrize("labels, receiver", [
    (["alertname=DijkwachtDependencyMovedForeign", "category=email", "to_provider=microsoft"], "sovereignty"),
    (["alertname=DijkwachtOwnershipMadeForeign", "category=video", "to_provider=zoom"], "sovereignty"),
    (["alertname=DijkwachtTargetScanFailing", "target=gemeente.nl"], "ops"),
    (["alertname=DijkwachtShardMissing", "job=dijkwacht"], "ops"),
    (["alertname=DijkwachtStateWriteFailing", "job=dijkwacht", "instance=a:9849"], "ops"),
    (["alertname=DijkwachtInternalErrors", "job=dijkwacht", "instance=a:9849", "where=http"], "ops"),
])
def test_alertmanager_routes(amtool, labels, receiver):
    res = run([amtool, "config", "routes", "test", f"--config.file={ALERTMANAGER}", *labels])
    assert res.returncode == 0 and res.stdout.strip() == receiver, res.stdout + res.stderr


def test_alertmanager_groups_moves_by_category_and_provider_and_inhibits_per_target_alerts():
    config = load_yaml(ALERTMANAGER)
    moves = config["route"]["routes"][0]
    assert {"category", "to_provider"} <= set(moves["group_by"])
    inhibited = {}
    for rule in config["inhibit_rules"]:
        (source,) = re.findall(r'alertname="(\w+)"', rule["source_matchers"][0])
        target = re.search(r'alertname=~?"([^"]+)"', rule["target_matchers"][0]).group(1)
        inhibited.setdefault(source, set()).update(target.split("|"))
        assert rule["equal"] == list(Config().agent_labels)  # one agent: job, namespace (Kubernetes), instance
    assert {"DijkwachtTargetScanFailing", "DijkwachtTargetNotScanned"} <= inhibited["DijkwachtResolverFailing"]
    # Dropped scan results leave their targets stale: not a problem of the targets.
    assert {"DijkwachtScansStalled", "DijkwachtTargetNotScanned"} <= inhibited["DijkwachtStateWriteFailing"]
    for names in inhibited.values():
        assert names <= set(EXPECTED_ALERTS), names - set(EXPECTED_ALERTS)


# --------------------------------------------------------------------------
# Dashboards (lint)
# --------------------------------------------------------------------------

@pytest.fixture(params=sorted(p.name for p in DASHBOARDS.glob("*.json")))
def board(request) -> dict:
    return json.loads((DASHBOARDS / request.param).read_text(encoding="utf-8"))


def test_the_four_dashboards_with_fixed_uids():
    assert sorted(b["uid"] for b in dashboards().values()) == sorted(uids(Config()).values())


def test_dashboard_lint(board):
    assert board["title"] and 36 <= board["schemaVersion"] <= 41
    ids = [p["id"] for p in panels(board)]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    for name, v in variables.items():
        if v["type"] == "query":
            assert v["datasource"]["uid"] == "${datasource}", name
        if name == "target":
            assert not v.get("includeAll") and not v.get("multi"), "no All over target names"
    for p in panels(board):
        if p["type"] == "row":
            continue
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert p.get("description"), p["title"]
        assert p["fieldConfig"]["defaults"].get("unit"), p["title"]
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert t["datasource"]["uid"] == "${datasource}" and t["expr"].strip() and t["refId"], p["title"]
    defined = set(variables) | {k for k in VARIABLES if k.startswith("__")}
    used = {m[0] or m[1] for e in exprs(board) + variable_selectors(board) for m in re.findall(r"\$\{(\w+)[^}]*\}|\$(\w+)", e)}
    assert used <= defined, used - defined


def test_dashboard_layout_does_not_overlap(board):
    cells: dict[tuple[int, int], str] = {}
    for p in panels(board):
        g = p["gridPos"]
        assert g["x"] >= 0 and g["w"] > 0 and g["x"] + g["w"] <= 24, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = p["title"]


def test_dashboard_expressions_parse(promtool, tmp_path, board):
    check_promql(promtool, [fill(e) for e in exprs(board) + variable_selectors(board)], tmp_path)


def test_dashboard_metrics_are_documented(board):
    text = METRICS_DOC.read_text(encoding="utf-8")
    used = {n for e in exprs(board) + variable_selectors(board) for n in metric_names(e)}
    assert used
    assert not {n for n in used if not documented(n, text)}


def test_moves_out_of_home_count_dns_changes_alike_on_every_dashboard():
    """An ownership change (catalog, no DNS record) is of kind home_to_foreign too; "moves" are DNS changes."""
    found = {name: [t["expr"] for p in panels(board) if p["title"] == "Moves out of home" for t in p["targets"]] for name, board in dashboards().items()}
    found = {name: exprs for name, exprs in found.items() if exprs}
    assert set(found) == {"dijkwacht-overview.json", "dijkwacht-changes.json"}
    for name, (expr,) in found.items():
        assert 'kind="home_to_foreign"' in expr and 'reason="dns"' in expr, (name, expr)
    assert len({expr for (expr,) in found.values()}) == 1, found


def test_tables_listing_targets_link_to_the_target_dashboard():
    target_uid = uids(Config())["target"]
    linked = 0
    for board in dashboards().values():
        for p in panels(board):
            columns = {c for t in p.get("transformations", []) if t["id"] == "organize" for c in t["options"]["indexByName"]}
            if p["type"] == "table" and "target" in columns:
                links = [link for o in p["fieldConfig"]["overrides"] if o["matcher"]["options"] == "target"
                         for prop in o["properties"] if prop["id"] == "links" for link in prop["value"]]
                assert links and f"/d/{target_uid}?var-target=${{__value.raw}}" in links[0]["url"], p["title"]
                linked += 1
    assert linked >= 2


# --------------------------------------------------------------------------
# Grafana provisioning
# --------------------------------------------------------------------------

def test_grafana_alert_rules_are_the_prometheus_alerts():
    provisioned = load_yaml(ROOT / "grafana" / "provisioning" / "alerting" / "dijkwacht.yml")
    assert provisioned == alerting(Config())
    rules = {r["title"]: r for g in provisioned["groups"] for r in g["rules"]}
    for alert in alerts():
        rule = rules[alert["alert"]]
        assert rule["data"][0]["model"]["expr"] == alert["expr"]
        assert rule["for"] == alert.get("for", "0s")
        assert rule["labels"] == alert["labels"]
        assert set(rule["annotations"]) == set(alert["annotations"])
        assert "$value " not in json.dumps(rule["annotations"]), "Grafana names the value $values.A.Value"
        assert len(rule["uid"]) <= 40
    assert set(rules) == set(EXPECTED_ALERTS)


def test_grafana_provisioning_files():
    datasource = load_yaml(ROOT / "grafana" / "provisioning" / "datasources" / "dijkwacht.yml")
    (ds,) = datasource["datasources"]
    assert ds["type"] == "prometheus"
    provider = load_yaml(ROOT / "grafana" / "provisioning" / "dashboards" / "dijkwacht.yml")
    assert provider["providers"][0]["type"] == "file"
    rules = load_yaml(ROOT / "grafana" / "provisioning" / "alerting" / "dijkwacht.yml")
    assert {d["datasourceUid"] for g in rules["groups"] for r in g["rules"] for d in r["data"]} == {ds["uid"], "__expr__"}


# --------------------------------------------------------------------------
# Helm: the chart ships the generated files
# --------------------------------------------------------------------------

def test_chart_ships_the_generated_rules_and_dashboards():
    chart_rules = load_yaml(CHART / "files" / "rules.yml")["groups"]
    assert chart_rules == load_yaml(PROM_DIR / "rules.yml")["groups"] + load_yaml(PROM_DIR / "alerts.yml")["groups"]
    for name in dashboards():
        assert (CHART / "files" / "dashboards" / name).read_bytes() == (DASHBOARDS / name).read_bytes()
    values = load_yaml(CHART / "values.yaml")
    assert values["grafanaDashboards"]["enabled"] is False and values["prometheusRule"]["enabled"] is False
    template = (CHART / "templates" / "grafana-dashboards.yaml").read_text(encoding="utf-8")
    assert 'grafana_dashboard: "1"' in template and 'files/dashboards/*.json' in template
    assert "files/rules.yml" in (CHART / "templates" / "prometheusrule.yaml").read_text(encoding="utf-8")
