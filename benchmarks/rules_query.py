"""Benchmark: the recording rules and the overview dashboard on a real Prometheus scraping a real
agent with N targets in its state.

Builds the state like metrics_scrape.py, starts `dijkwacht run` (interval 24 h, so it serves the
restored state and does not scan) and Debian's `prometheus` with the committed rules
(deploy/prometheus/rules.yml, alerts.yml), both on 127.0.0.1. Prometheus scrapes and evaluates
every `--interval` (15 s) until the rule groups ran `--evaluations` times (their evaluation
times as Prometheus reports them); then scraping and rules are switched off (config reload) and
every rule and every overview query runs alone, at the time of the last evaluation, measuring
Prometheus' own CPU time per query as well as the wall time: on a shared machine the wall time
says more about the other load than about the query. Each overview query is also run as the
raw expression it replaces (recorded series expanded).

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
VARIABLES = {"sector": ".*", "category": ".+", "__range": "10m"}


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


def cpu_ms(pid: int) -> float:
    """CPU time (user + system) the process has used so far, in ms."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def timed(api: str, pid: int, expr: str, at: float, repeat: int) -> tuple[float, float, int]:
    """An instant query at time `at`, `repeat` times on an otherwise idle Prometheus: median wall
    ms over HTTP, Prometheus' CPU ms per query, and the number of series returned."""
    times, n = [], 0
    before = cpu_ms(pid)
    for _ in range(repeat):
        started = time.perf_counter()
        n = len(get(f"{api}/query", {"query": expr, "time": at})["data"]["result"])
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), (cpu_ms(pid) - before) / repeat, n


def expand(expr: str, recorded: dict[str, str]) -> str:
    """The expression with every recorded series replaced by what it records, recursively. The
    matchers on recorded series are the dashboard's "All" (`category=~".+"`): dropped."""
    expr = re.sub(r"(?<![\w:])([a-z_]+:[\w:]+)\{[^}]*\}", r"\1", expr)
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


def run(n: int, evaluations: int, repeat: int, interval: str) -> None:
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
        f"global:\n  scrape_interval: {interval}\n  scrape_timeout: {interval}\n  evaluation_interval: {interval}\n"
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
             f"--web.listen-address=127.0.0.1:{prom_port}", "--web.enable-lifecycle"],
            stdout=subprocess.DEVNULL, stderr=open(work / "prometheus.log", "w"),
        )
        pid = prometheus.pid
        api = f"http://127.0.0.1:{prom_port}/api/v1"

        def scanned() -> bool:
            result = get(f"{api}/query", {"query": "dijkwacht:targets_scanned:count"})["data"]["result"]
            return bool(result) and float(result[0]["value"][1]) == n

        wait(scanned, 600, f"{n} targets in the recorded series")
        # 1. Live: Prometheus scrapes and evaluates; the rule groups' own evaluation times.
        groups: dict[str, list[float]] = {}
        seen: set[str] = set()
        cpu_start, wall_start = cpu_ms(pid), time.monotonic()
        while min((len(v) for v in groups.values()), default=0) < evaluations:
            for group in get(f"{api}/rules")["data"]["groups"]:
                stamp = group["name"] + group["lastEvaluation"]
                if stamp not in seen:
                    seen.add(stamp)
                    groups.setdefault(group["name"], []).append(group["evaluationTime"] * 1000)
            time.sleep(1)
        live_cpu = (cpu_ms(pid) - cpu_start) / (time.monotonic() - wall_start)
        load = os.getloadavg()[0]
        scrape = float(get(f"{api}/query", {"query": 'scrape_duration_seconds{job="dijkwacht"}'})["data"]["result"][0]["value"][1])
        samples = float(get(f"{api}/query", {"query": 'scrape_samples_scraped{job="dijkwacht"}'})["data"]["result"][0]["value"][1])
        at = max(time.mktime(time.strptime(g["lastEvaluation"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone for g in get(f"{api}/rules")["data"]["groups"])

        # 2. Quiet: no more scrapes or rule evaluations; every query at the last evaluation's time.
        (work / "prometheus.yml").write_text("global:\n  evaluation_interval: 1h\n")
        urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{prom_port}/-/reload", method="POST"), timeout=60)
        time.sleep(2)
        print(f"targets: {n}; {samples:,.0f} samples per scrape, scraped in {scrape * 1000:.0f} ms; Prometheus "
              f"{subprocess.run(['prometheus', '--version'], capture_output=True, text=True).stdout.split()[2]}, RSS {rss_mb(pid):.0f} MB")
        print(f"live, every {interval}: Prometheus used {live_cpu / 1000:.2f} CPU cores (scrapes and rules); load average {load:.1f} on {os.cpu_count()} cores")
        print(f"rule groups' evaluation time while live (median / max over {evaluations}, ms, wall):")
        for name, values in groups.items():
            print(f"  {name:<20} {statistics.median(values):9.1f} {max(values):9.1f}")

        rule_groups = [g for f in ("rules.yml", "alerts.yml") for g in yaml.safe_load((rules / f).read_text())["groups"]]
        recorded = {r["record"]: r["expr"] for g in rule_groups for r in g["rules"] if "record" in r}
        print(f"each rule alone on the quiet Prometheus ({repeat} runs): CPU ms | wall ms")
        for group in rule_groups:
            total_cpu = total_wall = 0.0
            for rule in group["rules"]:
                wall, cpu, _ = timed(api, pid, rule["expr"], at, repeat)
                total_cpu, total_wall = total_cpu + cpu, total_wall + wall
                print(f"  {cpu:8.1f} | {wall:8.1f}  {rule.get('record') or rule.get('alert')}")
            print(f"  {total_cpu:8.1f} | {total_wall:8.1f}  group {group['name']}, one evaluation (every {group.get('interval', interval)})")

        board = json.loads((ROOT / "grafana" / "dashboards" / "dijkwacht-overview.json").read_text())
        fill = lambda e: re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", lambda m: VARIABLES[m.group(1) or m.group(2)], e)  # noqa: E731
        print(f"overview queries ({repeat} runs): CPU ms | wall ms with the recorded series || CPU ms | wall ms of the raw expressions they replace")
        totals = [0.0, 0.0, 0.0, 0.0]
        for panel in [p for top in board["panels"] for p in (top, *top.get("panels", []))]:
            for target in panel.get("targets", []):
                expr = fill(target["expr"])
                wall, cpu, rows = timed(api, pid, expr, at, repeat)
                raw = expand(expr, recorded)
                raw_wall, raw_cpu = timed(api, pid, raw, at, repeat)[:2] if raw != expr else (wall, cpu)
                for k, v in enumerate((cpu, wall, raw_cpu, raw_wall)):
                    totals[k] += v
                print(f"  {cpu:8.1f} | {wall:8.1f} || {raw_cpu:8.1f} | {raw_wall:8.1f}  {panel['title']} ({rows} rows)")
        print(f"  {totals[0]:8.1f} | {totals[1]:8.1f} || {totals[2]:8.1f} | {totals[3]:8.1f}  the whole overview, one query after the other")
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
    parser.add_argument("--repeat", type=int, default=10, help="runs of each query")
    parser.add_argument("--interval", default="15s", help="Prometheus' scrape and evaluation interval")
    args = parser.parse_args()
    if not os.environ.get("DIJKWACHT_BENCH_NETNS"):
        # Re-run inside a private network namespace with only loopback: nothing can leave.
        os.environ["DIJKWACHT_BENCH_NETNS"] = "1"
        os.execvp("unshare", ["unshare", "-rn", "sh", "-c", 'ip link set lo up && exec "$0" "$@"', sys.executable, *sys.argv])
    run(args.targets, args.evaluations, args.repeat, args.interval)


if __name__ == "__main__":
    main()
