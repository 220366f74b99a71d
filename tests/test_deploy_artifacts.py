"""Checks of the monitoring artifacts: alert rules, dashboard, metric docs (the Helm chart:
test_helm_chart.py; systemd units: test_systemd.py; the Containerfile: test_container.py).

External tools:
- promtool (Debian package `prometheus`) is required: the alert rules, their
  unit tests and every PromQL query of the dashboard and docs are checked with it.
- PyYAML is required.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PROM_DIR = ROOT / "deploy" / "prometheus"
ALERTS = PROM_DIR / "alerts.yml"
ALERTS_TEST = PROM_DIR / "alerts_test.yml"
DASHBOARD = ROOT / "grafana" / "dijkwacht-overview.json"
METRICS_DOC = ROOT / "docs" / "metrics.md"
CHART = ROOT / "deploy" / "helm" / "dijkwacht"

# The metrics contract: name -> (type, labels). dijkwacht_target_info also has
# one label per configured target-label key, on top of `target`.
CONTRACT: dict[str, tuple[str, frozenset[str]]] = {
    "dijkwacht_dependency_info": (
        "gauge", frozenset({"target", "category", "role", "provider", "jurisdiction", "foreign"})),
    "dijkwacht_foreign_dependencies": ("gauge", frozenset({"target", "category"})),
    "dijkwacht_target_info": ("gauge", frozenset({"target"})),
    "dijkwacht_dependency_changes_total": (
        "counter",
        frozenset({"category", "from_jurisdiction", "to_jurisdiction", "to_foreign", "reason"})),
    "dijkwacht_dependency_last_change_timestamp_seconds": (
        "gauge",
        frozenset({"target", "category", "from_provider", "to_provider", "from_jurisdiction",
                   "to_jurisdiction", "to_foreign", "reason"})),
    "dijkwacht_last_successful_scan_timestamp_seconds": ("gauge", frozenset({"target"})),
    "dijkwacht_scan_errors": ("gauge", frozenset({"target", "detector"})),
    "dijkwacht_scan_duration_seconds": ("histogram", frozenset()),
    "dijkwacht_dns_queries_total": ("counter", frozenset({"result"})),
    "dijkwacht_detector_errors_total": ("counter", frozenset({"detector"})),
    "dijkwacht_catalog_loaded_timestamp_seconds": ("gauge", frozenset()),
    "dijkwacht_catalog_providers": ("gauge", frozenset()),
    "dijkwacht_ip_ranges_updated_timestamp_seconds": ("gauge", frozenset({"provider"})),
    "dijkwacht_ip_ranges_prefixes": ("gauge", frozenset({"provider"})),
    "dijkwacht_config_last_reload_successful": ("gauge", frozenset()),
    "dijkwacht_config_last_reload_success_timestamp_seconds": ("gauge", frozenset()),
    "dijkwacht_targets": ("gauge", frozenset()),
    "dijkwacht_build_info": ("gauge", frozenset({"version", "python_version"})),
}

METRIC_RE = re.compile(r"dijkwacht_[a-z_]+")
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------

def run(cmd: list[str], cwd: Path | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool not found: install the Debian package 'prometheus' "
                    "(apt-get install -y prometheus)")
    return path


# Runs the project's own CLI (installed in the test environment).
DIJKWACHT = [sys.executable, "-c", "import sys; from dijkwacht.cli import main; sys.exit(main(sys.argv[1:]))"]


def check_config(path: Path) -> None:
    res = run([*DIJKWACHT, "check-config", str(path)], timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr


def load_yaml(path: Path):
    with path.open(encoding="utf-8") as f:
        return yaml.safe_load(f)


def alert_rules() -> list[dict]:
    doc = load_yaml(ALERTS)
    return [r for g in doc["groups"] for r in g["rules"] if "alert" in r]


def documented_metrics() -> dict[str, tuple[str, set[str]]]:
    """The reference table of docs/metrics.md: name -> (type, labels)."""
    rows = {}
    row_re = re.compile(r"^\|\s*`(dijkwacht_[a-z_]+)`\s*\|\s*(gauge|counter|histogram)\s*\|([^|]*)\|")
    for line in METRICS_DOC.read_text(encoding="utf-8").splitlines():
        m = row_re.match(line)
        if m:
            assert m.group(1) not in rows, f"{m.group(1)} documented twice"
            rows[m.group(1)] = (m.group(2), set(re.findall(r"`([a-z_]+)`", m.group(3))))
    return rows


def resolves(name: str, known: dict[str, str]) -> bool:
    """True if `name` as used in PromQL is a metric in `known` (name -> type),
    allowing the _bucket/_sum/_count series of histograms and the _total
    series of counters documented without the suffix."""
    if name in known:
        return True
    for suffix in HISTOGRAM_SUFFIXES:
        if name.endswith(suffix) and known.get(name[: -len(suffix)]) == "histogram":
            return True
    base = name[: -len("_total")]
    if name.endswith("_total") and not base.endswith("_total") and known.get(base) == "counter":
        return True
    return False


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def dashboard_panels(dash: dict) -> list[dict]:
    out = []
    for p in dash["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))  # collapsed rows
    return out


def dashboard_exprs(dash: dict) -> list[str]:
    exprs = [t["expr"] for p in dashboard_panels(dash) for t in p.get("targets", []) if "expr" in t]
    exprs += [a["expr"] for a in dash.get("annotations", {}).get("list", []) if a.get("expr")]
    return exprs


def dashboard_variable_queries(dash: dict) -> list[str]:
    out = []
    for v in dash["templating"]["list"]:
        if v["type"] == "query":
            q = v["query"]
            out.append(q["query"] if isinstance(q, dict) else q)
    return out


GRAFANA_BUILTINS = {
    "__interval": "15m", "__rate_interval": "5m", "__range": "7d", "__interval_ms": "900000",
}


def substitute_grafana_vars(expr: str, values: dict[str, str]) -> str:
    def repl(m: re.Match) -> str:
        name = m.group(1) or m.group(2)
        if name in GRAFANA_BUILTINS:
            return GRAFANA_BUILTINS[name]
        return values[name]
    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", repl, expr)


def doc_promql_blocks() -> list[str]:
    return re.findall(r"```promql\n(.*?)```", METRICS_DOC.read_text(encoding="utf-8"), re.S)


def check_promql(promtool: str, exprs: list[str], tmp_path: Path) -> None:
    """Fails unless every expression parses, via `promtool check rules` on
    recording rules built from them."""
    rules = {"groups": [{"name": "check", "rules": [
        {"record": f"check_expr_{i}", "expr": e} for i, e in enumerate(exprs)]}]}
    f = tmp_path / "exprs.yml"
    f.write_text(yaml.safe_dump(rules, sort_keys=False), encoding="utf-8")
    res = run([promtool, "check", "rules", str(f)])
    assert res.returncode == 0, res.stdout + res.stderr


# --------------------------------------------------------------------------
# Prometheus alert rules
# --------------------------------------------------------------------------

EXPECTED_ALERTS = {
    "DijkwachtDependencyMovedForeign", "DijkwachtOwnershipMadeForeign",
    "DijkwachtTargetNotScanned", "DijkwachtScanErrors", "DijkwachtIPDataStale",
    "DijkwachtConfigReloadFailed", "DijkwachtDown",
}


def test_promtool_check_rules(promtool):
    res = run([promtool, "check", "rules", str(ALERTS)])
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS" in res.stdout


def test_promtool_test_rules(promtool):
    res = run([promtool, "test", "rules", ALERTS_TEST.name], cwd=PROM_DIR)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS" in res.stdout


def test_promtool_check_example_prometheus_config(promtool):
    res = run([promtool, "check", "config", "prometheus.yml"], cwd=PROM_DIR)
    assert res.returncode == 0, res.stdout + res.stderr
    config = load_yaml(PROM_DIR / "prometheus.yml")
    assert "alerts.yml" in config["rule_files"]
    assert [j["job_name"] for j in config["scrape_configs"]] == ["dijkwacht"]


def test_alert_group_and_expected_alerts():
    doc = load_yaml(ALERTS)
    assert [g["name"] for g in doc["groups"]] == ["dijkwacht"]
    names = {r["alert"] for r in alert_rules()}
    assert EXPECTED_ALERTS <= names, EXPECTED_ALERTS - names


def test_alerts_have_severity_and_annotations():
    for rule in alert_rules():
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
        assert rule["annotations"].get("summary"), rule["alert"]
        assert rule["annotations"].get("description"), rule["alert"]


def test_move_alerts_use_the_last_change_gauge():
    rules = {r["alert"]: r for r in alert_rules()}
    for name, reason in [("DijkwachtDependencyMovedForeign", "dns"),
                         ("DijkwachtOwnershipMadeForeign", "ownership")]:
        expr = rules[name]["expr"]
        assert "dijkwacht_dependency_last_change_timestamp_seconds" in expr
        assert 'to_foreign="true"' in expr and f'reason="{reason}"' in expr
        text = json.dumps(rules[name]["annotations"])
        for label in ("target", "category", "from_provider", "to_provider",
                      "from_jurisdiction", "to_jurisdiction"):
            assert f"$labels.{label}" in text, (name, label)


def test_every_alert_has_firing_and_not_firing_test_cases():
    tests = load_yaml(ALERTS_TEST)
    assert tests["rule_files"] == ["alerts.yml"]
    firing: set[str] = set()
    quiet: set[str] = set()
    for t in tests["tests"]:
        for case in t.get("alert_rule_test", []):
            (firing if case.get("exp_alerts") else quiet).add(case["alertname"])
    names = {r["alert"] for r in alert_rules()}
    assert names - firing == set(), f"alerts without a firing test case: {names - firing}"
    assert names - quiet == set(), f"alerts without a not-firing test case: {names - quiet}"
    assert (firing | quiet) - names == set(), "test cases for alerts that do not exist"


# --------------------------------------------------------------------------
# Metric names: docs <-> contract <-> dashboard and alerts
# --------------------------------------------------------------------------

def test_docs_reference_table_matches_contract():
    documented = documented_metrics()
    assert set(documented) == set(CONTRACT), (
        f"missing from docs: {set(CONTRACT) - set(documented)}; "
        f"not in contract: {set(documented) - set(CONTRACT)}")
    for name, (mtype, labels) in documented.items():
        ctype, clabels = CONTRACT[name]
        assert mtype == ctype, name
        if name == "dijkwacht_target_info":
            assert clabels <= labels, name
        else:
            assert labels == clabels, (name, labels ^ clabels)


# Served only by /probe (one on-demand scan), documented in their own section.
PROBE_METRICS = {"dijkwacht_probe_success": "gauge", "dijkwacht_probe_duration_seconds": "gauge"}


def test_every_metric_named_in_docs_is_in_contract():
    known = {n: t for n, (t, _) in CONTRACT.items()} | PROBE_METRICS
    names = set(METRIC_RE.findall(METRICS_DOC.read_text(encoding="utf-8")))
    assert names
    unknown = {n for n in names if not resolves(n, known)}
    assert not unknown, f"docs/metrics.md mentions metrics outside the contract: {unknown}"


def test_docs_explain_cached_state():
    text = METRICS_DOC.read_text(encoding="utf-8").lower()
    assert "last scan" in text and "scrape time" in text


@pytest.mark.parametrize("source", ["dashboard", "alerts", "helm-alerts"])
def test_metrics_used_are_documented(source):
    known = {n: t for n, (t, _) in documented_metrics().items()}
    if source == "dashboard":
        dash = dashboard()
        texts = dashboard_exprs(dash) + dashboard_variable_queries(dash)
    else:
        path = ALERTS if source == "alerts" else CHART / "files" / "alerts.yml"
        texts = []
        for rule in load_yaml(path)["groups"][0]["rules"]:
            texts.append(rule["expr"])
            texts.extend(rule.get("annotations", {}).values())
    used = {n for t in texts for n in METRIC_RE.findall(t)}
    assert used, source
    undocumented = {n for n in used if not resolves(n, known)}
    assert not undocumented, f"{source} uses undocumented metrics: {undocumented}"


def test_resolves_suffix_rules():
    known = {"dijkwacht_scan_duration_seconds": "histogram", "dijkwacht_x": "counter",
             "dijkwacht_dns_queries_total": "counter", "dijkwacht_targets": "gauge"}
    assert resolves("dijkwacht_scan_duration_seconds_bucket", known)
    assert resolves("dijkwacht_scan_duration_seconds_count", known)
    assert resolves("dijkwacht_x_total", known)
    assert resolves("dijkwacht_dns_queries_total", known)
    assert not resolves("dijkwacht_targets_bucket", known)
    assert not resolves("dijkwacht_targets_total", known)
    assert not resolves("dijkwacht_dns_queries_total_total", known)


def test_docs_promql_examples_are_valid(promtool, tmp_path):
    blocks = [b.strip() for b in doc_promql_blocks()]
    assert len(blocks) >= 10
    check_promql(promtool, blocks, tmp_path)


# --------------------------------------------------------------------------
# Grafana dashboard
# --------------------------------------------------------------------------

def test_dashboard_structure():
    dash = dashboard()
    assert 36 <= dash["schemaVersion"] <= 41
    assert dash["uid"] and dash["title"]
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    ds = variables["datasource"]
    assert ds["type"] == "datasource" and ds["query"] == "prometheus"
    for name in ("category", "target", "sector"):
        assert variables[name]["type"] == "query", name
        assert variables[name]["datasource"]["uid"] == "${datasource}", name
    ids = [p["id"] for p in dashboard_panels(dash)]
    assert len(ids) == len(set(ids)), "duplicate panel ids"


def test_dashboard_panels_use_the_datasource_variable():
    dash = dashboard()
    for p in dashboard_panels(dash):
        if p["type"] == "row":
            continue
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert t["datasource"]["uid"] == "${datasource}", p["title"]
            assert t["expr"].strip(), p["title"]


def test_dashboard_layout_does_not_overlap():
    cells: dict[tuple[int, int], str] = {}
    for p in dashboard_panels(dashboard()):
        g = p["gridPos"]
        assert g["x"] >= 0 and g["w"] > 0 and g["x"] + g["w"] <= 24, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = p["title"]


def test_dashboard_variables_are_defined():
    dash = dashboard()
    defined = {v["name"] for v in dash["templating"]["list"]} | set(GRAFANA_BUILTINS)
    texts = dashboard_exprs(dash) + dashboard_variable_queries(dash)
    used = {m[0] or m[1] for t in texts for m in re.findall(r"\$\{(\w+)[^}]*\}|\$(\w+)", t)}
    assert used - defined == set()


def test_dashboard_has_required_panels():
    panels = [p for p in dashboard_panels(dashboard()) if p["type"] != "row"]

    def exprs(p):
        return " ".join(t["expr"] for t in p["targets"])

    def some(ptype, pred):
        return any(p["type"] == ptype and pred(p) for p in panels)

    assert some("stat", lambda p: "dijkwacht_target_info" in exprs(p) and p["title"] == "Targets")
    assert some("stat", lambda p: 'category="email"' in exprs(p)
                and "dijkwacht_foreign_dependencies" in exprs(p))
    assert some("stat", lambda p: "by (category)" in exprs(p) and p["fieldConfig"]["defaults"]["unit"] == "percent")
    assert some("table", lambda p: exprs(p).startswith("dijkwacht_dependency_info"))
    assert some("timeseries", lambda p: "dijkwacht_dependency_changes_total" in exprs(p))
    assert some("table", lambda p: "dijkwacht_dependency_last_change_timestamp_seconds" in exprs(p))
    assert some("timeseries", lambda p: "dijkwacht_scan_errors" in exprs(p))
    assert some("bargauge", lambda p: "dijkwacht_last_successful_scan_timestamp_seconds" in exprs(p))
    assert some("timeseries", lambda p: "dijkwacht_dns_queries_total" in exprs(p))
    assert some("timeseries", lambda p: "histogram_quantile(0.95" in exprs(p)
                and "dijkwacht_scan_duration_seconds_bucket" in exprs(p))
    assert some("bargauge", lambda p: "dijkwacht_ip_ranges_updated_timestamp_seconds" in exprs(p))
    table = next(p for p in panels if p["type"] == "table" and exprs(p).startswith("dijkwacht_dependency_info"))
    order = table["transformations"][0]["options"]["indexByName"]
    assert list(order)[:5] == ["target", "category", "provider", "jurisdiction", "foreign"]


def test_dashboard_queries_are_valid_promql(promtool, tmp_path):
    dash = dashboard()
    values = {"datasource": "prom", "job": "dijkwacht", "target": ".+", "sector": ".*", "category": ".+"}
    exprs = [substitute_grafana_vars(e, values) for e in dashboard_exprs(dash)]
    # label_values() is Grafana syntax; check the selector inside it.
    for q in dashboard_variable_queries(dash):
        m = re.fullmatch(r"label_values\((.*),\s*\w+\)", q)
        assert m, q
        exprs.append(substitute_grafana_vars(m.group(1), values))
    check_promql(promtool, exprs, tmp_path)


def test_dashboard_stat_queries_compute_the_right_numbers(promtool, tmp_path):
    """Evaluates the overview stat queries against synthetic series with promtool."""
    dash = dashboard()
    by_title = {p["title"]: p for p in dashboard_panels(dash)}
    values = {"job": "dijkwacht", "target": ".+", "sector": ".*", "category": ".+"}

    def expr(title):
        return substitute_grafana_vars(by_title[title]["targets"][0]["expr"], values)

    lbl = 'job="dijkwacht", instance="a:9849"'
    series = []
    for t, sector in [("a.nl", "water"), ("b.nl", "water"), ("c.nl", "municipality"), ("d.nl", "municipality")]:
        series.append({"series": f'dijkwacht_target_info{{{lbl}, target="{t}", sector="{sector}"}}',
                       "values": "1x80"})
    for t, email, video in [("a.nl", 1, 0), ("b.nl", 0, 0), ("c.nl", 2, 1), ("d.nl", 0, 0)]:
        series.append({"series": f'dijkwacht_foreign_dependencies{{{lbl}, target="{t}", category="email"}}',
                       "values": f"{email}x80"})
        series.append({"series": f'dijkwacht_foreign_dependencies{{{lbl}, target="{t}", category="video"}}',
                       "values": f"{video}x80"})
    # a.nl scanned continuously; b.nl and c.nl last scanned at 00:00; d.nl never.
    series.append({"series": f'dijkwacht_last_successful_scan_timestamp_seconds{{{lbl}, target="a.nl"}}',
                   "values": "0+60x80"})
    for t in ("b.nl", "c.nl"):
        series.append({"series": f'dijkwacht_last_successful_scan_timestamp_seconds{{{lbl}, target="{t}"}}',
                       "values": "0x80"})

    tests = {"rule_files": [], "evaluation_interval": "1m", "tests": [{
        "interval": "1m",
        "input_series": series,
        "promql_expr_test": [
            {"expr": expr("Targets"), "eval_time": "10m", "exp_samples": [{"labels": "{}", "value": 4}]},
            {"expr": expr("Targets with foreign email"), "eval_time": "10m",
             "exp_samples": [{"labels": "{}", "value": 2}]},
            {"expr": expr("Foreign dependencies"), "eval_time": "10m",
             "exp_samples": [{"labels": "{}", "value": 4}]},
            {"expr": expr("% of targets with a foreign dependency, per category"), "eval_time": "10m",
             "exp_samples": [{"labels": '{category="email"}', "value": 50},
                             {"labels": '{category="video"}', "value": 25}]},
            # 00:30: only a.nl has a successful scan within the last hour.
            {"expr": expr("No clean scan for > 1h"), "eval_time": "30m",
             "exp_samples": [{"labels": "{}", "value": 1}]},
            {"expr": expr("No clean scan for > 1h"), "eval_time": "75m",
             "exp_samples": [{"labels": "{}", "value": 3}]},
        ],
    }]}
    f = tmp_path / "dashboard_test.yml"
    f.write_text(yaml.safe_dump(tests, sort_keys=False), encoding="utf-8")
    res = run([promtool, "test", "rules", f.name], cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
