"""Checks of the deployment artifacts: alert rules, dashboard, metric docs,
Helm chart, systemd units and Containerfile.

External tools:
- promtool (Debian package `prometheus`) is required: the alert rules, their
  unit tests and every PromQL query of the dashboard and docs are checked with it.
- systemd-analyze (Debian package `systemd`) verifies the unit files; those
  tests are skipped where it is missing.
- helm is used for `helm lint` / `helm template` when it is on PATH; otherwise
  those tests are skipped (Debian has no Helm package, and the PyPI and npm
  packages named "helm" are unrelated projects). The chart's static checks
  always run.
- PyYAML is required.
"""

from __future__ import annotations

import http.server
import json
import re
import shlex
import shutil
import subprocess
import sys
import threading
import tomllib
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
SYSTEMD_DIR = ROOT / "deploy" / "systemd"
CONTAINERFILE = ROOT / "deploy" / "container" / "Containerfile"

# The metrics contract: name -> (type, labels). dijkwacht_target_info also has
# one label per configured target-label key, on top of `target`.
CONTRACT: dict[str, tuple[str, frozenset[str]]] = {
    "dijkwacht_dependency_info": (
        "gauge", frozenset({"target", "category", "provider", "jurisdiction", "foreign"})),
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
    "dijkwacht_internal_errors_total": ("counter", frozenset({"where"})),
    "dijkwacht_state_write_errors_total": ("counter", frozenset()),
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
    # The configured directories must exist (a typo must not switch IP evidence off): give
    # the deployment's /var/lib/dijkwacht a stand-in that does.
    stand_in = path.parent / "var-lib-dijkwacht"
    (stand_in / "ip-ranges").mkdir(parents=True, exist_ok=True)
    path.write_text(path.read_text(encoding="utf-8").replace("/var/lib/dijkwacht", str(stand_in)), encoding="utf-8")
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


# --------------------------------------------------------------------------
# Helm chart
# --------------------------------------------------------------------------

def chart_values() -> dict:
    return load_yaml(CHART / "values.yaml")


def test_chart_metadata_and_files():
    chart = load_yaml(CHART / "Chart.yaml")
    assert chart["apiVersion"] == "v2"
    assert chart["name"] == "dijkwacht"
    assert re.fullmatch(r"\d+\.\d+\.\d+(-[\w.]+)?", chart["version"])
    assert chart["appVersion"]
    for name in ("_helpers.tpl", "NOTES.txt", "deployment.yaml", "service.yaml", "configmap.yaml",
                 "pvc.yaml", "servicemonitor.yaml", "prometheusrule.yaml", "cronjob-data-update.yaml"):
        assert (CHART / "templates" / name).is_file(), name


def test_chart_values_defaults():
    values = chart_values()
    assert values["serviceMonitor"]["enabled"] is False
    assert values["prometheusRule"]["enabled"] is False
    assert values["persistence"]["enabled"] is True
    assert values["securityContext"]["readOnlyRootFilesystem"] is True
    assert values["podSecurityContext"]["runAsNonRoot"] is True
    assert values["containerPort"] == 9849
    assert isinstance(values["targets"], list)
    assert values["config"]["agent"]["home"] == ["EU"]


def test_chart_alert_rules_are_a_copy_of_the_prometheus_rules():
    assert (CHART / "files" / "alerts.yml").read_bytes() == ALERTS.read_bytes(), (
        "copy deploy/prometheus/alerts.yml to deploy/helm/dijkwacht/files/alerts.yml")


def test_chart_alert_rules_job_rewrite_hits_only_the_down_alert():
    # The PrometheusRule template rewrites job="dijkwacht" to the chart's job name.
    hits = [r["alert"] for r in alert_rules() if 'job="dijkwacht"' in r["expr"]]
    assert hits == ["DijkwachtDown"]
    assert 'job="dijkwacht"' in (CHART / "templates" / "prometheusrule.yaml").read_text().replace('\\"', '"')


def _template_texts() -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in sorted((CHART / "templates").iterdir())}


def test_chart_templates_reference_existing_values():
    values = chart_values()
    missing = []
    for name, text in _template_texts().items():
        for path in re.findall(r"\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)", text):
            node = values
            for key in path.strip(".").split("."):
                if not isinstance(node, dict) or key not in node:
                    missing.append(f"{name}: .Values{path}")
                    break
                node = node[key]
    assert not missing, missing


def test_chart_templates_include_defined_helpers():
    texts = _template_texts()
    defined = {d for t in texts.values() for d in re.findall(r'define\s+"([^"]+)"', t)}
    for name, text in texts.items():
        for used in re.findall(r'(?:include|template)\s+"([^"]+)"', text):
            assert used in defined, f"{name} includes undefined {used}"


def test_chart_template_delimiters_balanced():
    for name, text in _template_texts().items():
        assert text.count("{{") == text.count("}}"), name


HELM = shutil.which("helm")
needs_helm = pytest.mark.skipif(
    HELM is None,
    reason="helm binary not found (no Debian package; PyPI 'helm' is a 2011 system monitor and "
           "npm 'helm' a browser router, neither is Kubernetes Helm)")


def helm_template(tmp_path: Path, values: dict | None = None, check: bool = True):
    cmd = [HELM, "template", "rel", str(CHART), "--namespace", "mon"]
    if values is not None:
        f = tmp_path / f"values-{len(list(tmp_path.iterdir()))}.yaml"
        f.write_text(yaml.safe_dump(values), encoding="utf-8")
        cmd += ["-f", str(f)]
    res = run(cmd)
    if not check:
        return res
    assert res.returncode == 0, res.stderr
    docs = [d for d in yaml.safe_load_all(res.stdout) if d]
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


FULL_VALUES = {
    "targets": [
        {"domain": "gemeente.nl", "labels": {"sector": "municipality", "owner": 'team "a"'}},
        {"domain": "waterschap.nl"},
    ],
    "config": {"agent": {"nameservers": ["9.9.9.9:53"]}, "extraToml": "[extra]\nkey = 1"},
    "serviceMonitor": {"enabled": True, "additionalLabels": {"release": "kps"}},
    "prometheusRule": {"enabled": True},
    "dataUpdate": {"cronJob": {"enabled": True}},
    "webConfig": {"secretName": "dijkwacht-web"},
}


@needs_helm
def test_helm_lint(tmp_path):
    res = run([HELM, "lint", "--strict", str(CHART)])
    assert res.returncode == 0, res.stdout + res.stderr
    f = tmp_path / "full.yaml"
    f.write_text(yaml.safe_dump(FULL_VALUES), encoding="utf-8")
    res = run([HELM, "lint", "--strict", str(CHART), "-f", str(f)])
    assert res.returncode == 0, res.stdout + res.stderr


@needs_helm
def test_helm_template_defaults(tmp_path):
    objs = helm_template(tmp_path)
    kinds = {k for k, _ in objs}
    assert {"Deployment", "Service", "ConfigMap", "PersistentVolumeClaim"} <= kinds
    assert not kinds & {"ServiceMonitor", "PrometheusRule", "CronJob"}
    dep = objs[("Deployment", "rel-dijkwacht")]
    spec = dep["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"]["type"] == "Recreate"
    pod = spec["template"]["spec"]
    assert re.fullmatch(r"[0-9a-f]{64}", spec["template"]["metadata"]["annotations"]["checksum/config"])
    assert pod["securityContext"]["runAsNonRoot"] is True
    (c,) = pod["containers"]
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["livenessProbe"]["httpGet"]["path"] == "/-/healthy"
    assert c["readinessProbe"]["httpGet"]["path"] == "/-/ready"
    assert c["ports"][0]["containerPort"] == 9849
    assert c["args"][:2] == ["--config", "/etc/dijkwacht/dijkwacht.toml"]
    mounts = {m["mountPath"] for m in c["volumeMounts"]}
    assert {"/var/lib/dijkwacht", "/etc/dijkwacht/dijkwacht.toml", "/tmp"} <= mounts
    state = next(v for v in pod["volumes"] if v["name"] == "state")
    assert state["persistentVolumeClaim"]["claimName"] == "rel-dijkwacht-state"
    assert [i["name"] for i in pod["initContainers"]] == ["data-update"]
    assert "dijkwacht data update --data-dir" in pod["initContainers"][0]["args"][0]
    cfg = tomllib.loads(objs[("ConfigMap", "rel-dijkwacht")]["data"]["dijkwacht.toml"])
    assert cfg["daemon"]["listen"] == "0.0.0.0:9849"
    assert cfg["daemon"]["state_path"] == "/var/lib/dijkwacht/state.db"
    assert cfg["agent"]["home"] == ["EU"]


@needs_helm
def test_helm_template_all_features(tmp_path):
    objs = helm_template(tmp_path, FULL_VALUES)
    cfg = tomllib.loads(objs[("ConfigMap", "rel-dijkwacht")]["data"]["dijkwacht.toml"])
    assert cfg["targets"] == [
        {"domain": "gemeente.nl", "labels": {"sector": "municipality", "owner": 'team "a"'}},
        {"domain": "waterschap.nl"},
    ]
    assert cfg["agent"]["nameservers"] == ["9.9.9.9:53"]
    assert cfg["extra"] == {"key": 1}
    # The agent accepts the rendered file (without the made-up [extra] table).
    rendered = objs[("ConfigMap", "rel-dijkwacht")]["data"]["dijkwacht.toml"]
    f = tmp_path / "dijkwacht.toml"
    f.write_text(rendered.split("[extra]")[0], encoding="utf-8")
    check_config(f)
    sm = objs[("ServiceMonitor", "rel-dijkwacht")]
    assert sm["metadata"]["labels"]["release"] == "kps"
    assert sm["spec"]["endpoints"][0]["path"] == "/metrics"
    rule = objs[("PrometheusRule", "rel-dijkwacht")]
    assert rule["spec"]["groups"] == load_yaml(ALERTS)["groups"]
    assert ("CronJob", "rel-dijkwacht-data-update") in objs
    c = objs[("Deployment", "rel-dijkwacht")]["spec"]["template"]["spec"]["containers"][0]
    assert "--web.config.file" in c["args"]


@needs_helm
def test_helm_config_change_rolls_the_pod(tmp_path):
    def checksum(values):
        dep = helm_template(tmp_path, values)[("Deployment", "rel-dijkwacht")]
        return dep["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
    assert checksum({"targets": [{"domain": "a.nl"}]}) != checksum({"targets": [{"domain": "b.nl"}]})


@needs_helm
def test_helm_template_rejects_bad_values(tmp_path):
    res = helm_template(tmp_path, {"targets": [{"labels": {"sector": "x"}}]}, check=False)
    assert res.returncode != 0 and "domain is required" in res.stderr
    res = helm_template(tmp_path, {"persistence": {"enabled": False},
                                   "dataUpdate": {"cronJob": {"enabled": True}}}, check=False)
    assert res.returncode != 0 and "persistence" in res.stderr


# --------------------------------------------------------------------------
# systemd units
# --------------------------------------------------------------------------

def parse_unit(path: Path) -> dict[str, list[tuple[str, str]]]:
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = line.strip("[]")
            sections.setdefault(current, [])
            continue
        key, _, value = line.partition("=")
        sections[current].append((key.strip(), value.strip()))
    return sections


def systemd_bool(value: str) -> bool:
    return value.lower() in ("1", "yes", "y", "true", "t", "on")


def unit_values(sections, section, key) -> list[str]:
    return [v for k, v in sections.get(section, []) if k == key]


def test_systemd_main_unit_is_hardened():
    u = parse_unit(SYSTEMD_DIR / "dijkwacht.service")
    svc = lambda key: unit_values(u, "Service", key)  # noqa: E731
    assert svc("ExecStart")[0].endswith("dijkwacht run --config /etc/dijkwacht/dijkwacht.toml")
    assert svc("ExecReload") == ["/bin/kill -HUP $MAINPID"]
    assert svc("Restart") == ["on-failure"]
    assert svc("DynamicUser") == ["yes"] or svc("User") == ["dijkwacht"]
    assert svc("StateDirectory") == ["dijkwacht"]
    assert svc("ConfigurationDirectory") == ["dijkwacht"]
    for key, value in [("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"), ("ProtectHome", "yes"),
                       ("PrivateTmp", "yes"), ("CapabilityBoundingSet", ""),
                       ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX")]:
        assert svc(key) == [value], key
    assert "@system-service" in svc("SystemCallFilter")
    assert unit_values(u, "Install", "WantedBy") == ["multi-user.target"]


def test_systemd_data_update_units():
    svc = parse_unit(SYSTEMD_DIR / "dijkwacht-data-update.service")
    assert unit_values(svc, "Service", "Type") == ["oneshot"]
    (start,) = unit_values(svc, "Service", "ExecStart")
    assert start.endswith("dijkwacht data update --data-dir /var/lib/dijkwacht/ip-ranges")
    assert any("reload" in v and "dijkwacht.service" in v
               for v in unit_values(svc, "Service", "ExecStartPost"))
    # Same state directory and user as the agent.
    main = parse_unit(SYSTEMD_DIR / "dijkwacht.service")
    for key in ("StateDirectory", "User", "DynamicUser"):
        assert unit_values(svc, "Service", key) == unit_values(main, "Service", key), key
    timer = parse_unit(SYSTEMD_DIR / "dijkwacht-data-update.timer")
    assert unit_values(timer, "Timer", "OnCalendar") == ["daily"]
    assert [systemd_bool(v) for v in unit_values(timer, "Timer", "Persistent")] == [True]
    assert unit_values(timer, "Install", "WantedBy") == ["timers.target"]


def test_systemd_readme_example_config_is_accepted(tmp_path):
    text = (SYSTEMD_DIR / "README.md").read_text(encoding="utf-8")
    m = re.search(r"cat > /etc/dijkwacht/dijkwacht.toml <<'EOF'\n(.*?)\nEOF", text, re.S)
    assert m
    f = tmp_path / "dijkwacht.toml"
    f.write_text(m.group(1), encoding="utf-8")
    check_config(f)


SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_systemd_analyze = pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze not installed")


@pytest.fixture
def unit_copies(tmp_path) -> Path:
    """The unit files, with the agent's path pointed at a stub executable
    (systemd-analyze verify checks that ExecStart binaries exist)."""
    stub = tmp_path / "bin" / "dijkwacht"
    stub.parent.mkdir()
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    units = tmp_path / "units"
    units.mkdir()
    for f in SYSTEMD_DIR.iterdir():
        if f.suffix in (".service", ".timer"):
            text = f.read_text(encoding="utf-8")
            assert "/opt/dijkwacht/bin/dijkwacht" in text or f.suffix == ".timer"
            (units / f.name).write_text(text.replace("/opt/dijkwacht/bin/dijkwacht", str(stub)))
    return units


@needs_systemd_analyze
def test_systemd_analyze_verify(unit_copies):
    files = sorted(str(p) for p in unit_copies.iterdir())
    assert len(files) == 3
    res = run([SYSTEMD_ANALYZE, "verify", *files], cwd=unit_copies)
    assert res.returncode == 0, res.stderr
    # verify exits 0 on unknown keys or bad values, only warning about them.
    assert res.stderr.strip() == "", res.stderr


@needs_systemd_analyze
@pytest.mark.parametrize("unit", ["dijkwacht.service", "dijkwacht-data-update.service"])
def test_systemd_security_exposure(unit_copies, unit):
    # --threshold is on systemd's 0..100 scale: 20 means an exposure of at most 2.0 ("OK").
    res = run([SYSTEMD_ANALYZE, "security", "--offline=yes", "--threshold=20", str(unit_copies / unit)])
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Overall exposure level" in res.stdout


# --------------------------------------------------------------------------
# Containerfile
# --------------------------------------------------------------------------

def containerfile_instructions() -> list[tuple[str, str]]:
    lines, buf = [], ""
    for raw in CONTAINERFILE.read_text(encoding="utf-8").splitlines():
        if raw.lstrip().startswith("#") and not buf:
            continue
        if raw.rstrip().endswith("\\"):
            buf += raw.rstrip()[:-1] + " "
            continue
        buf += raw
        if buf.strip():
            word, _, rest = buf.strip().partition(" ")
            lines.append((word.upper(), rest.strip()))
        buf = ""
    return lines


def test_containerfile_basics():
    ins = containerfile_instructions()
    get = lambda word: [r for w, r in ins if w == word]  # noqa: E731
    assert get("FROM") == ["python:3.12-slim"]
    (user,) = get("USER")
    assert user.split(":")[0] not in ("0", "root") and user.split(":")[0].isdigit()
    assert get("EXPOSE") == ["9849"]
    assert json.loads(get("ENTRYPOINT")[0]) == ["dijkwacht", "run"]
    (hc,) = get("HEALTHCHECK")
    assert "/-/healthy" in hc and "urllib" in hc


def test_containerfile_copies_what_the_package_build_needs():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    needed = {"pyproject.toml"}
    readme = pyproject["project"].get("readme")
    if isinstance(readme, str):
        needed.add(readme)
    needed |= {d.rstrip("/") for d in pyproject["tool"]["setuptools"]["package-dir"].values()}
    copied = set()
    for word, rest in containerfile_instructions():
        if word == "COPY":
            srcs = [s for s in rest.split() if not s.startswith("--")][:-1]
            copied |= {s.rstrip("/") for s in srcs}
    assert needed <= copied, f"not copied into the image: {needed - copied}"
    assert "." not in copied, "copy only what the build needs, not the whole context"


def containerfile_default_config() -> str:
    text = next(r for w, r in containerfile_instructions() if w == "RUN" and "dijkwacht.toml" in r)
    m = re.search(r"printf '%s\\n' (.*?) > /etc/dijkwacht/dijkwacht\.toml", text)
    assert m, text
    return "\n".join(shlex.split(m.group(1))) + "\n"


def test_containerfile_default_config_is_valid(tmp_path):
    text = containerfile_default_config()
    cfg = tomllib.loads(text)
    assert cfg["daemon"]["listen"] == "0.0.0.0:9849"
    assert cfg["daemon"]["state_path"] == "/var/lib/dijkwacht/state.db"
    assert cfg["agent"]["data_dir"] == "/var/lib/dijkwacht/ip-ranges"
    f = tmp_path / "dijkwacht.toml"
    f.write_text(text, encoding="utf-8")
    check_config(f)


class _Handler(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self):  # noqa: N802
        self.send_response(self.status if self.path == "/-/healthy" else 404)
        self.end_headers()
        self.wfile.write(b"ok\n")

    def log_message(self, *args):
        pass


def _healthcheck_command() -> list[str]:
    (hc,) = [r for w, r in containerfile_instructions() if w == "HEALTHCHECK"]
    cmd = json.loads(hc[hc.index("CMD") + 3:].strip())
    assert cmd[0] == "python"
    return [sys.executable, *cmd[1:]]


@pytest.mark.parametrize("status, healthy", [(200, True), (503, False)])
def test_containerfile_healthcheck_command(status, healthy):
    handler = type("H", (_Handler,), {"status": status})
    server = http.server.HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        cmd = [c.replace("127.0.0.1:9849", f"127.0.0.1:{port}") for c in _healthcheck_command()]
        res = run(cmd, timeout=30)
        assert (res.returncode == 0) is healthy, res.stderr
    finally:
        server.shutdown()
        server.server_close()


def test_containerfile_healthcheck_fails_without_server():
    server = http.server.HTTPServer(("127.0.0.1", 0), _Handler)
    port = server.server_address[1]
    server.server_close()  # nothing listens there any more
    cmd = [c.replace("127.0.0.1:9849", f"127.0.0.1:{port}") for c in _healthcheck_command()]
    assert run(cmd, timeout=30).returncode != 0


# --------------------------------------------------------------------------
# The deploy artifacts against a real agent (loopback only; no targets, so no
# DNS traffic)
# --------------------------------------------------------------------------

def _free_port() -> int:
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _cronjob_reload_snippet(base_url: str) -> list[str]:
    """The CronJob's `python -c` reload call, with the Service URL replaced."""
    text = (CHART / "templates" / "cronjob-data-update.yaml").read_text(encoding="utf-8")
    m = re.search(r'python -c "(.*?)"\n', text, re.S)
    assert m, "reload call not found in the CronJob"
    code = " ".join(line.strip() for line in m.group(1).splitlines())
    code, n = re.subn(r"http://\{\{.*?\}\}:\{\{.*?\}\}", base_url, code)
    assert n == 1, code
    return [sys.executable, "-c", code]


@pytest.fixture
def live_agent(tmp_path):
    """The image's default configuration, with paths and port moved into tmp_path."""
    import time
    import urllib.request

    port = _free_port()
    text = containerfile_default_config()
    text = text.replace("/var/lib/dijkwacht", str(tmp_path / "state"))
    text = text.replace("0.0.0.0:9849", f"127.0.0.1:{port}")
    (tmp_path / "state" / "ip-ranges").mkdir(parents=True)
    config = tmp_path / "dijkwacht.toml"
    config.write_text(text, encoding="utf-8")
    log = (tmp_path / "agent.log").open("w")
    proc = subprocess.Popen([*DIJKWACHT, "run", "--config", str(config)], stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(base + "/-/healthy", timeout=1)
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail("agent did not come up: " + (tmp_path / "agent.log").read_text())
            time.sleep(0.2)
    yield proc, base, port
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    log.close()


def _metrics(base: str) -> str:
    import urllib.request
    return urllib.request.urlopen(base + "/metrics", timeout=5).read().decode()


def _sample(text: str, name: str) -> float:
    m = re.search(rf"^{name} (\S+)$", text, re.M)
    assert m, name
    return float(m.group(1))


def test_real_agent_metric_families_match_the_contract(live_agent):
    _, base, _ = live_agent
    families = dict(re.findall(r"^# TYPE (dijkwacht_\w+) (\w+)$", _metrics(base), re.M))
    exposed = {}
    for name, mtype in families.items():
        if name.endswith("_created") and CONTRACT.get(name[: -len("_created")], ("",))[0] == "histogram":
            continue  # prometheus_client's creation-time companion of the histogram
        # prometheus_client names a counter family without its _total sample suffix.
        key = name + "_total" if mtype == "counter" and not name.endswith("_total") else name
        exposed[key] = mtype
    assert exposed == {n: t for n, (t, _) in CONTRACT.items()}


def test_real_agent_healthcheck_readiness_reload_and_stop(live_agent):
    import signal
    import time
    import urllib.request

    proc, base, port = live_agent
    # The image's HEALTHCHECK command.
    cmd = [c.replace("127.0.0.1:9849", f"127.0.0.1:{port}") for c in _healthcheck_command()]
    assert run(cmd, timeout=30).returncode == 0
    # Kubernetes readiness probe path: ready at once with no targets.
    assert urllib.request.urlopen(base + "/-/ready", timeout=5).status == 200
    first = _sample(_metrics(base), "dijkwacht_config_last_reload_success_timestamp_seconds")
    # The CronJob's reload call (POST /-/reload).
    time.sleep(1.1)
    res = run(_cronjob_reload_snippet(base), timeout=30)
    assert res.returncode == 0, res.stderr
    second = _sample(_metrics(base), "dijkwacht_config_last_reload_success_timestamp_seconds")
    assert second > first
    # systemd's ExecReload (kill -HUP).
    time.sleep(1.1)
    proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while _sample(_metrics(base), "dijkwacht_config_last_reload_success_timestamp_seconds") <= second:
        assert time.monotonic() < deadline, "SIGHUP did not reload"
        time.sleep(0.2)
    assert _sample(_metrics(base), "dijkwacht_config_last_reload_successful") == 1
    # SIGTERM (systemd stop, container stop): exits well within TimeoutStopSec.
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
