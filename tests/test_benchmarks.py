"""Smoke runs of the benchmark scripts at a small size, so they do not rot between
measurements. The figures themselves are not asserted here (benchmarks are not timed tests);
only that the instruments run end to end and the scan finds what the data implies."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import IP_RANGES, shared

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.e2e


def test_scan_benchmark_smoke():
    shared(IP_RANGES)  # the generator draws its addresses from the providers' real ranges
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run_scan.py"), "--sizes", "300", "--runs", "1", "--seed", "7",
         "--dnsperf-seconds", "1", "--dnsperf-runs", "1", "--no-startup"],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = sorted((ROOT / "benchmarks" / "out").glob("results-*.json"), key=lambda p: p.stat().st_mtime)[-1]
    [size] = json.loads(results.read_text())["sizes"]
    [run] = size["runs"]
    assert size["domains"] == 300 and run["exit"] == 0
    assert run["recall"] >= 0.95 and run["precision"] == 1.0
    # a query Knot's socket dropped twice makes its target an error, or a target retried at the end
    assert run["queries"] == run["model_queries"] or run["targets_with_errors"] or run["targets_retried"]


def test_metrics_scrape_benchmark_smoke():
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "metrics_scrape.py"), "--targets", "300", "--scrapes", "2"],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "targets: 300" in done.stdout and "scrape: median" in done.stdout


def test_asn_lookup_benchmark_smoke():
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "asn_lookup.py"), "--v4-rows", "3000", "--v6-rows", "500", "--lookups", "2000"],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "3,000 IPv4 + 500 IPv6 rows" in done.stdout and "lookup: AS table" in done.stdout


def test_rules_query_benchmark_smoke():
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "rules_query.py"), "--targets", "300", "--evaluations", "2", "--repeat", "1", "--interval", "2s", "--overview-interval", "2s"],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "targets: 300" in done.stdout and "group dijkwacht.overview" in done.stdout and "the whole overview" in done.stdout


def test_helm_scale_benchmark_smoke():
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "helm_scale.py"), "--targets", "2000", "--replicas", "2", "--runs", "1"],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "target ConfigMaps: 2," in done.stdout and "agent: load 2,000 targets" in done.stdout


def test_report_benchmark_smoke():
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "report.py"), "--domains", "300", "--runs", "1"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "synthesized 300 domains" in done.stdout and "| report --format html |" in done.stdout
    assert "| agent /report over HTTP, later requests" in done.stdout


def test_plugin_isolation_benchmark_smoke():
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "plugin_isolation.py"), "--targets", "20", "--seconds", "3", "--scan-targets", "40", "--cases", "none-lane,spin-lane"],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "none detector on its own thread" in out and "spin detector on its own thread" in out
    assert "quarantined after" in out and "built-in detector errors: 0" in out
    assert "+ third-party detector on its own thread" in out
