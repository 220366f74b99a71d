"""Benchmark: the recording rules and the overview dashboard on a real Prometheus scraping a real
agent with N targets in its state.

Builds the state like metrics_scrape.py, starts `dijkwacht run` (interval 24 h, so it serves the
restored state and does not scan) and Debian's `prometheus` with the committed rules
(deploy/prometheus/rules.yml, alerts.yml), both on 127.0.0.1. Prometheus scrapes every 15 s and
evaluates every 15 s. Prints the rule groups' evaluation times (from /api/v1/rules), the scrape,
and the time of every overview query against the raw expression it replaces.

    python benchmarks/rules_query.py --targets 16500 --evaluations 8
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from metrics_scrape import populate  # noqa: E402

# The dashboard's variables as a user leaves them: every group and category.
VARIABLES = {"sector": ".*", "category": ".+", "__range": "1h"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str, data: dict | None = None) -> dict:
    body = urllib.parse.urlencode(data).encode() if data else None
    with urllib.request.urlopen(url, data=body, timeout=120) as response:
        return json.loads(response.read())


def wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except OSError:
            value = None
        if value:
            return value
        time.sleep(1)
    raise SystemExit(f"timed out waiting for {what}")


def timed(api: str, expr: str, repeat: int) -> tuple[float, int]:
    """Median wall time of an instant query over HTTP, in ms, and the number of series."""
    times, n = [], 0
    for _ in range(repeat):
        started = time.perf_counter()
        n = len(get(f"{api}/query", {"query": expr})["data"]["result"])
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), n


def expand(expr: str, recorded: dict[str, str]) -> str:
    """The expression with every recorded series replaced by what it records, recursively."""
    while True:
        done = re.sub(r"(?<![\w:])([a-z_]+:[\w:]+)", lambda m: f"({recorded[m.group(1)]})" if m.group(1) in recorded else m.group(1), expr)
        if done == expr:
            return expr
        expr = done


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def run(n: int, evaluations: int, repeat: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="dijkwacht-rules-"))
    domains, _ = populate(work / "state.db", n)
    (work / "targets.txt").write_text("".join(f"{d} sector={'municipality' if i % 3 else 'hospital'}\n" for i, d in enumerate(domains)))
    agent_port, prom_port = free_port(), free_port()
    (work / "dijkwacht.toml").write_text(
        f'[agent]\nnameservers = ["127.0.0.1:9"]\ntargets_file = "targets.txt"\n'
        f'[daemon]\ninterval = "24h"\nlisten = "127.0.0.1:{agent_port}"\nstate_path = "{work / "state.db"}"\n'
    )
    rules = ROOT / "deploy" / "prometheus"
    (work / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 15s\n  scrape_timeout: 10s\n  evaluation_interval: 15s\n"
        f"rule_files: ['{rules / 'rules.yml'}', '{rules / 'alerts.yml'}']\n"
        f"scrape_configs:\n  - job_name: dijkwacht\n    static_configs:\n      - targets: ['127.0.0.1:{agent_port}']\n"
    )
    env = {**os.environ, "DIJKWACHT_DISABLE_PLUGIN_AUTOLOAD": "1"}
    agent = subprocess.Popen([sys.executable, "-m", "dijkwacht.cli", "run", "--config", str(work / "dijkwacht.toml")],
                             stdout=subprocess.DEVNULL, stderr=open(work / "agent.log", "w"), env=env)
    prometheus = None
    try:
        wait(lambda: urllib.request.urlopen(f"http://127.0.0.1:{agent_port}/-/ready", timeout=5).status == 200, 120, "the agent")
        prometheus = subprocess.Popen(
            ["prometheus", f"--config.file={work / 'prometheus.yml'}", f"--storage.tsdb.path={work / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{prom_port}", "--query.max-samples=100000000"],
            stdout=subprocess.DEVNULL, stderr=open(work / "prometheus.log", "w"),
        )
        api = f"http://127.0.0.1:{prom_port}/api/v1"

        def scanned() -> bool:
            result = get(f"{api}/query", {"query": "dijkwacht:targets_scanned:count"})["data"]["result"]
            return bool(result) and float(result[0]["value"][1]) == n

        wait(scanned, 300, f"{n} targets in the recorded series")
        groups: dict[str, list[float]] = {}
        per_rule: dict[str, list[float]] = {}
        seen: set[str] = set()
        while min((len(v) for v in groups.values()), default=0) < evaluations:
            for group in get(f"{api}/rules")["data"]["groups"]:
                stamp = group["name"] + group["lastEvaluation"]
                if stamp in seen:
                    continue
                seen.add(stamp)
                groups.setdefault(group["name"], []).append(group["evaluationTime"] * 1000)
                for rule in group["rules"]:
                    per_rule.setdefault(rule["name"], []).append(rule["evaluationTime"] * 1000)
            time.sleep(2)

        scrape = get(f"{api}/query", {"query": 'scrape_duration_seconds{job="dijkwacht"}'})["data"]["result"][0]["value"][1]
        samples = get(f"{api}/query", {"query": 'scrape_samples_scraped{job="dijkwacht"}'})["data"]["result"][0]["value"][1]
        series = get(f"{api}/query", {"query": "prometheus_tsdb_head_series"})["data"]["result"]
        print(f"targets: {n}; Prometheus {subprocess.run(['prometheus', '--version'], capture_output=True, text=True).stdout.split()[2]}")
        print(f"scrape: {float(samples):,.0f} samples in {float(scrape) * 1000:.0f} ms; Prometheus RSS {rss_mb(prometheus.pid):.0f} MB" + (f", head series {series[0]['value'][1]}" if series else ""))
        print(f"rule groups (median / max over {evaluations} evaluations, ms):")
        for name, values in groups.items():
            print(f"  {name:<20} {statistics.median(values):8.1f} {max(values):8.1f}")
        print("slowest rules (median ms):")
        for name, values in sorted(per_rule.items(), key=lambda kv: -statistics.median(kv[1]))[:6]:
            print(f"  {statistics.median(values):8.1f}  {name}")

        recorded = {r["record"]: r["expr"] for g in yaml.safe_load((rules / "rules.yml").read_text())["groups"] for r in g["rules"]}
        board = json.loads((ROOT / "grafana" / "dashboards" / "dijkwacht-overview.json").read_text())
        fill = lambda e: re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", lambda m: VARIABLES[m.group(1) or m.group(2)], e)  # noqa: E731
        print(f"overview queries (median of {repeat}, ms): recorded | the raw expression it replaces")
        total_recorded = total_raw = 0.0
        for panel in [p for top in board["panels"] for p in (top, *top.get("panels", []))]:
            for target in panel.get("targets", []):
                expr = fill(target["expr"])
                ms, rows = timed(api, expr, repeat)
                total_recorded += ms
                raw = expand(expr, recorded)
                raw_ms = timed(api, raw, repeat)[0] if raw != expr else None
                total_raw += ms if raw_ms is None else raw_ms
                print(f"  {ms:8.1f} | {'-' if raw_ms is None else f'{raw_ms:.1f}':>8}  {panel['title']} ({rows} rows)")
        print(f"  {total_recorded:8.1f} | {total_raw:8.1f}  the whole overview, queries one after the other")
        end = time.time()
        for label, expr in [("trend, recorded", "dijkwacht:targets_foreign:ratio"), ("trend, raw", expand("dijkwacht:targets_foreign:ratio", recorded))]:
            started = time.perf_counter()
            get(f"{api}/query_range", {"query": expr, "start": end - 300, "end": end, "step": 15})
            print(f"range query over the last 5 min at 15 s steps, {label}: {(time.perf_counter() - started) * 1000:.1f} ms")
    finally:
        if prometheus is not None:
            prometheus.terminate()
            prometheus.wait(timeout=30)
        agent.terminate()
        agent.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=16500)
    parser.add_argument("--evaluations", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=5, help="runs of each query")
    args = parser.parse_args()
    if not os.environ.get("DIJKWACHT_BENCH_NETNS"):
        # Re-run inside a private network namespace with only loopback: nothing can leave.
        os.environ["DIJKWACHT_BENCH_NETNS"] = "1"
        os.execvp("unshare", ["unshare", "-rn", "sh", "-c", 'ip link set lo up && exec "$0" "$@"', sys.executable, *sys.argv])
    run(args.targets, args.evaluations, args.repeat)


if __name__ == "__main__":
    main()
