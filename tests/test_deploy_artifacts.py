"""Checks of the deployment artifacts: metric docs, Helm chart, systemd units and
Containerfile. (The generated rules and dashboards: tests/test_monitoring.py.)

External tools:
- promtool (Debian package `prometheus`) is required: every PromQL query of the
  docs is checked with it.
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
METRICS_DOC = ROOT / "docs" / "metrics.md"
CHART = ROOT / "deploy" / "helm" / "dijkwacht"
SYSTEMD_DIR = ROOT / "deploy" / "systemd"
CONTAINERFILE = ROOT / "deploy" / "container" / "Containerfile"

# The metrics contract: name -> (type, labels). dijkwacht_target_info also has
# one label per configured target-label key, on top of `target`.
CONTRACT: dict[str, tuple[str, frozenset[str]]] = {
    "dijkwacht_dependency_info": (
        "gauge", frozenset({"target", "category", "role", "provider", "jurisdiction", "foreign", "confidence"})),
    "dijkwacht_foreign_dependencies": ("gauge", frozenset({"target", "category"})),
    "dijkwacht_target_info": ("gauge", frozenset({"target"})),
    "dijkwacht_dependency_changes_total": ("counter", frozenset({"category", "kind", "reason"})),
    "dijkwacht_dependency_last_change_timestamp_seconds": (
        "gauge",
        frozenset({"target", "category", "from_provider", "to_provider", "from_jurisdiction",
                   "to_jurisdiction", "to_foreign", "kind", "reason"})),
    "dijkwacht_last_successful_scan_timestamp_seconds": ("gauge", frozenset({"target"})),
    "dijkwacht_scan_errors": ("gauge", frozenset({"target", "detector"})),
    "dijkwacht_scan_duration_seconds": ("histogram", frozenset()),
    "dijkwacht_dns_queries_total": ("counter", frozenset({"result"})),
    "dijkwacht_detector_errors_total": ("counter", frozenset({"detector"})),
    "dijkwacht_catalog_loaded_timestamp_seconds": ("gauge", frozenset()),
    "dijkwacht_catalog_updated_timestamp_seconds": ("gauge", frozenset()),
    "dijkwacht_catalog_providers": ("gauge", frozenset()),
    "dijkwacht_ip_ranges_updated_timestamp_seconds": ("gauge", frozenset({"provider"})),
    "dijkwacht_ip_ranges_prefixes": ("gauge", frozenset({"provider"})),
    "dijkwacht_config_last_reload_successful": ("gauge", frozenset()),
    "dijkwacht_config_last_reload_success_timestamp_seconds": ("gauge", frozenset()),
    "dijkwacht_targets": ("gauge", frozenset()),
    "dijkwacht_scan_interval_seconds": ("gauge", frozenset()),
    "dijkwacht_scan_confirmations": ("gauge", frozenset()),
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


def documented_metrics() -> dict[str, tuple[str, set[str]]]:
    """The reference table of docs/metrics.md: name -> (type, labels)."""
    rows = {}
    row_re = re.compile(r"^\|\s*`(dijkwacht_[a-z_]+)`\s*\|\s*(gauge|counter|histogram)\s*\|([^|]*)\|")
    text = METRICS_DOC.read_text(encoding="utf-8")
    reference = text[text.index("\n## Reference\n"):]
    reference = reference[: reference.index("\n## ", 1)]
    for line in reference.splitlines():
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
# Metric names: docs <-> contract
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
PROBE_METRICS = {n: "gauge" for n in (
    "dijkwacht_probe_success", "dijkwacht_probe_duration_seconds", "dijkwacht_probe_dependency_info",
    "dijkwacht_probe_foreign_dependencies", "dijkwacht_probe_scan_errors")}


def test_every_metric_named_in_docs_is_in_contract():
    known = {n: t for n, (t, _) in CONTRACT.items()} | PROBE_METRICS
    # Recorded series (level:metric:operations) are checked against the rules in test_monitoring.py.
    text = re.sub(r"\w*:[\w:]+", "", METRICS_DOC.read_text(encoding="utf-8"))
    names = set(METRIC_RE.findall(text))
    assert names
    unknown = {n for n in names if not resolves(n, known)}
    assert not unknown, f"docs/metrics.md mentions metrics outside the contract: {unknown}"


def test_docs_explain_cached_state():
    text = METRICS_DOC.read_text(encoding="utf-8").lower()
    assert "last scan" in text and "scrape time" in text


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
    assert rule["spec"]["groups"] == load_yaml(CHART / "files" / "rules.yml")["groups"]
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
