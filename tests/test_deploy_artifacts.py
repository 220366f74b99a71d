"""Checks of the metric docs against the metrics contract. (The generated rules and dashboards:
test_monitoring.py; the Helm chart: test_helm_chart.py; systemd units: test_systemd.py; the
Containerfile: test_container.py.)

External tools:
- promtool (Debian package `prometheus`) is required: every PromQL query of the
  docs is checked with it.
- PyYAML is required.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
METRICS_DOC = ROOT / "docs" / "metrics.md"
CHART = ROOT / "deploy" / "helm" / "dijkwacht"

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
    "dijkwacht_plugin_info": ("gauge", frozenset({"plugin", "version", "distribution", "status"})),
    "dijkwacht_event_loop_stalls_total": ("counter", frozenset({"detector"})),
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
    "dijkwacht_shards": ("gauge", frozenset({"shard"})),
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
