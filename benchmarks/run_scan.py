#!/usr/bin/env python3
"""Benchmark `dijkwacht scan` against Knot DNS serving synthetic data.

    python benchmarks/run_scan.py --sizes 1000,16500 --runs 3 [--workers N] [--commit REV] [--keep] [-- SCAN ARGS]

For each size: generate the data (cached in benchmarks/out/, see generate.py), start knotd on
127.0.0.1 and wait until every zone is loaded, run `dijkwacht scan` `--runs` times as a child
process measuring wall time, user+sys CPU and peak RSS (os.wait4 on the child's pid) plus the
summed RSS/PSS of its process tree (the scan forks workers; sampled from /proc), count the
queries Knot received (mod-stats counters, read with knotc before and after), score the
output against expected.json (recall and precision over (target, category, provider)), then
run dnsperf on the same query mix against the same server. Prints a markdown table and
writes everything to benchmarks/out/results-<time>.json. docs/performance.md explains it all.

Arguments after `--` go to `dijkwacht scan` unchanged (e.g. `-- --concurrency 1000`).

Everything runs in a private network namespace (`unshare -rn`, only loopback up), so no
query can leave the machine: the script re-executes itself there when started outside one.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import json
import os
import platform
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RANGES_DIR = REPO.parent / "shared/data/ip-ranges"
OUT = HERE / "out"
GENERATOR = HERE / "generate.py"
NETNS_ENV = "DIJKWACHT_BENCH_NETNS"
PORT = 53530  # any port will do: the namespace is private


# ---------------------------------------------------------------------------------------------
# Isolation
# ---------------------------------------------------------------------------------------------


def isolate() -> None:
    """Re-exec inside a new user+network namespace with only loopback, unless already there."""
    if os.environ.get(NETNS_ENV) != "1":
        if shutil.which("unshare") is None or shutil.which("ip") is None:
            sys.exit("run_scan.py: needs unshare(1) and ip(8) to run in a private network namespace")
        env = {**os.environ, NETNS_ENV: "1"}
        argv = ["unshare", "-rn", "sh", "-c", 'ip link set lo up && exec "$0" "$@"', sys.executable, str(Path(__file__).resolve()), *sys.argv[1:]]
        os.execvpe("unshare", argv, env)
    # Trust, but verify: loopback must be the only interface of this namespace.
    names = [name for _, name in socket.if_nameindex()]
    if names != ["lo"]:
        sys.exit(f"run_scan.py: refusing to run: network interfaces {names} are visible ({NETNS_ENV} set outside a private namespace?)")


# ---------------------------------------------------------------------------------------------
# Data and server
# ---------------------------------------------------------------------------------------------


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def code_snapshot(rev: str) -> Path:
    """`git archive` of a commit under benchmarks/out/code-<sha>/, importable as dijkwacht.

    The scan and the generator then run that commit's code and catalog (through PYTHONPATH,
    which takes precedence over the editable install), whatever the working tree holds.
    """
    sha = subprocess.run(["git", "rev-parse", "--verify", f"{rev}^{{commit}}"], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
    root = OUT / f"code-{sha[:12]}"
    if not (root / "path").exists():
        shutil.rmtree(root, ignore_errors=True)
        (root / "src").mkdir(parents=True)
        archive = subprocess.run(["git", "archive", sha], cwd=REPO, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(root / "src")], input=archive, check=True)
        (root / "tmp").mkdir()
        (root / "tmp" / "dijkwacht").symlink_to(root / "src" / "agent")
        (root / "tmp" / "dijkwacht_plugins").symlink_to(root / "src" / "plugins")
        (root / "tmp").rename(root / "path")
    os.environ["PYTHONPATH"] = str(root / "path")
    return root / "src"


def generate(size: int, seed: int, regenerate: bool, code: Path) -> tuple[Path, dict]:
    """Generated data for `size` domains, reused when generate.py, the catalog and the
    parameters are unchanged."""
    out = OUT / f"n{size}-s{seed}"
    meta_path = out / "meta.json"
    if not regenerate and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("generator_sha256") == sha256(GENERATOR) and meta.get("domains") == size and meta.get("seed") == seed \
                and meta.get("catalog_sha256") == sha256(code / "agent/catalog/providers.toml") \
                and meta.get("port") == PORT and meta.get("ranges_dir") == str(RANGES_DIR.resolve()):
            print(f"[{size}] using cached data in {out.relative_to(REPO)}", flush=True)
            return out, meta
    if out.exists():
        shutil.rmtree(out)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, str(GENERATOR), "--domains", str(size), "--seed", str(seed), "--out", str(out), "--port", str(PORT)], check=True)
    print(f"[{size}] generated in {time.perf_counter() - t0:.1f} s", flush=True)
    return out, json.loads(meta_path.read_text())


class Knot:
    """knotd on 127.0.0.1 serving one generated data set."""

    def __init__(self, data: Path, workers: int | None) -> None:
        self.data = data
        self.conf = data / "knot.run.conf"
        text = (data / "knot.conf").read_text()
        if workers:
            text = text.replace("server:\n", f"server:\n    udp-workers: {workers}\n    tcp-workers: {workers}\n", 1)
        self.conf.write_text(text)
        self.process: subprocess.Popen | None = None

    def ctl(self, *args: str, timeout: float = 120) -> str:
        done = subprocess.run(["knotc", "-c", str(self.conf), *args], capture_output=True, text=True, timeout=timeout)
        return done.stdout

    def start(self, zones: int) -> dict[str, float]:
        """Start knotd; return seconds until it answered and until every zone was loaded."""
        (self.data / "db").mkdir(exist_ok=True)
        (self.data / "knot.log").unlink(missing_ok=True)  # so that only this start's errors count
        t0 = time.perf_counter()
        self.process = subprocess.Popen(["knotd", "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        first = None
        deadline = t0 + 900
        while time.perf_counter() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"knotd exited with {self.process.returncode}; see {self.data / 'knot.log'}")
            log = self.data / "knot.log"
            if log.exists() and "failed to load zone" in log.read_text(errors="replace"):
                raise RuntimeError(f"knotd could not load a zone; see {log}")
            if first is None:
                probe = subprocess.run(["kdig", "@127.0.0.1", "-p", str(PORT), ".", "SOA", "+short", "+time=1", "+retry=0"], capture_output=True, text=True)
                if probe.stdout.strip():
                    first = time.perf_counter() - t0
            if first is not None:
                status = self.ctl("zone-status")
                loaded = len(re.findall(r"\| serial: \d+", status))
                if loaded >= zones:
                    return {"first_answer_s": round(first, 2), "all_zones_s": round(time.perf_counter() - t0, 2), "rss_mb": self.rss_mb()}
            time.sleep(0.2)
        raise RuntimeError("knotd did not load every zone within 15 minutes")

    def stats(self) -> Counter[str]:
        counters: Counter[str] = Counter()
        for line in self.ctl("stats", "mod-stats").splitlines():
            key, _, value = line.partition(" = ")
            if value.strip().isdigit():
                counters[key.strip()] = int(value)
        return counters

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
        return 0.0

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


def busy_cpu_seconds() -> float:
    """CPU time processes on the machine used so far (all CPUs, /proc/stat), minus this
    runner's own. Interrupt and softirq time (the loopback traffic of the scan itself) and
    steal are left out."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system = (int(x) for x in fields[:3])
    own = resource.getrusage(resource.RUSAGE_SELF)
    return (user + nice + system) / os.sysconf("SC_CLK_TCK") - own.ru_utime - own.ru_stime


def udp_counters() -> dict[str, int]:
    """This network namespace's UDP counters (RcvbufErrors: datagrams dropped because a
    socket's receive buffer was full -- Knot's or the scan's, both live here), and the drops
    of Knot's own sockets (/proc/net/udp, last column)."""
    lines = [line.split() for line in Path("/proc/net/snmp").read_text().splitlines() if line.startswith("Udp:")]
    counters = {k: int(v) for k, v in zip(lines[0][1:], lines[1][1:], strict=True)}
    counters["KnotSocketDrops"] = sum(int(line.split()[-1]) for line in Path("/proc/net/udp").read_text().splitlines()[1:]
                                      if line.split()[1].endswith(f":{PORT:04X}"))
    return counters


def wait_for_quiet(max_wait: float, knot: Knot) -> float:
    """Wait (up to max_wait s) until other processes use under 10% of one CPU; return the
    seconds waited. On a shared machine this keeps someone else's work out of the timing."""
    t0 = time.perf_counter()
    while True:
        busy, knot_cpu = busy_cpu_seconds(), knot.cpu_seconds()
        time.sleep(1.0)
        if busy_cpu_seconds() - busy - (knot.cpu_seconds() - knot_cpu) < 0.1 or time.perf_counter() - t0 >= max_wait:
            return time.perf_counter() - t0


def queries_in(delta: Counter[str]) -> int:
    return sum(v for k, v in delta.items() if k.startswith("mod-stats.request-protocol["))


# ---------------------------------------------------------------------------------------------
# One scan
# ---------------------------------------------------------------------------------------------


class TreeMemory(threading.Thread):
    """Samples the summed RSS and PSS of a process and all its descendants (scan workers).

    os.wait4 reports the largest RSS of any ONE process of the tree; forked workers run at
    the same time, so their memory adds up. PSS splits pages shared copy-on-write between
    the processes, so the PSS sum is the tree's real footprint (what a cgroup is charged).
    """

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.done = threading.Event()
        self.peak_rss = self.peak_pss = 0.0  # MB
        self.processes = 1
        self.each: dict[int, float] = {}  # pid -> its own peak RSS (the kernel's VmHWM), MB

    def _tree(self) -> list[int]:
        pids, todo = [], [self.pid]
        while todo:
            pid = todo.pop()
            pids.append(pid)
            with contextlib.suppress(OSError):  # gone meanwhile
                todo += [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        return pids

    def run(self) -> None:
        while not self.done.is_set():
            rss = pss = 0
            pids = self._tree()
            for pid in pids:
                try:
                    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                        if line.startswith("Rss:"):
                            rss += int(line.split()[1])
                        elif line.startswith("Pss:"):
                            pss += int(line.split()[1])
                    # the high-water mark catches peaks between two samples
                    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                        if line.startswith("VmHWM:"):
                            self.each[pid] = max(self.each.get(pid, 0.0), int(line.split()[1]) / 1024)
                except OSError:
                    pass
            self.peak_rss, self.peak_pss = max(self.peak_rss, rss / 1024), max(self.peak_pss, pss / 1024)
            self.processes = max(self.processes, len(pids))
            self.done.wait(self.interval)


# Runs the scans. os.wait4's ru_maxrss of a child includes the RSS its process had before
# exec -- a copy of the one that spawned it -- so a runner grown by parsing results would show
# up as the scan's peak. This launcher, started before the runner loads anything, stays small.
LAUNCHER = r"""
import json, os, subprocess, sys, time
for line in sys.stdin:
    job = json.loads(line)
    with open(job["stdout"], "wb") as out, open(job["stderr"], "wb") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(job["cmd"], stdout=out, stderr=err, env=job["env"])
        print(json.dumps({"pid": proc.pid}), flush=True)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    print(json.dumps({"exit": proc.returncode, "wall_s": wall, "user_s": usage.ru_utime, "sys_s": usage.ru_stime,
                      "maxrss_kb": usage.ru_maxrss}), flush=True)
"""


class Launcher:
    def __init__(self) -> None:
        self.process = subprocess.Popen([sys.executable, "-I", "-S", "-c", LAUNCHER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def run(self, cmd: list[str], stdout: Path, stderr: Path) -> dict:
        """Run one child: wall time; CPU and largest single-process RSS of the child and its
        descendants (os.wait4 on its pid, in the launcher); the summed memory of the process
        tree (sampled here)."""
        env = {**os.environ, "DIJKWACHT_DISABLE_PLUGIN_AUTOLOAD": "1"}  # the built-in detectors only
        self.process.stdin.write(json.dumps({"cmd": cmd, "stdout": str(stdout), "stderr": str(stderr), "env": env}) + "\n")
        self.process.stdin.flush()
        pid = json.loads(self.process.stdout.readline())["pid"]
        memory = TreeMemory(pid)
        memory.start()
        done = json.loads(self.process.stdout.readline())
        memory.done.set()
        memory.join()
        return {"exit": done["exit"], "wall_s": done["wall_s"], "cpu_s": done["user_s"] + done["sys_s"],
                "user_s": done["user_s"], "sys_s": done["sys_s"], "rss_mb": done["maxrss_kb"] / 1024,
                "tree_rss_mb": memory.peak_rss, "tree_pss_mb": memory.peak_pss, "processes": memory.processes,
                # each process' own peak (VmHWM): the scan process first, then its workers
                "process_rss_mb": [round(memory.each[p]) for p in sorted(memory.each, key=lambda p: (p != pid, p))]}

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait()


_STATS = re.compile(r"with (\d+) worker.*?; (\d+) queries")


def scan_stats(stderr: str) -> dict:
    """What `dijkwacht scan --stats` printed: worker processes and queries it sent."""
    m = _STATS.search(stderr)
    return {"workers": int(m.group(1)), "dijkwacht_queries": int(m.group(2))} if m else {}


_FAILURE = re.compile(r": (SERVFAIL|REFUSED|TIMEOUT|ERROR|NXDOMAIN)\b|timed out|[A-Z][a-zA-Z]+Error")


def score(output: Path, expected: dict, patterns: dict, not_looked_for: dict) -> dict:
    """Recall and precision over (target, category, provider); misses grouped by pattern."""
    results = json.loads(output.read_text())
    got = {(r["target"], d["category"], d["provider"]) for r in results for d in r["dependencies"]}
    want = {(t, c, p) for t, deps in expected.items() for c, p, _ in deps}
    conf_got = {(r["target"], d["category"], d["provider"]): d["confidence"] for r in results for d in r["dependencies"]}
    conf_want = {(t, c, p): conf for t, deps in expected.items() for c, p, conf in deps}
    hit = got & want
    missed, extra = want - got, got - want
    by_rule = {(t, c, p) for t, deps in not_looked_for.items() for c, p in deps}
    errors = Counter()
    targets_with_errors = 0
    retried = 0
    for r in results:
        targets_with_errors += bool(r["errors"])
        retried += bool(r.get("retried"))
        for e in r["errors"]:
            m = _FAILURE.search(e["message"])
            errors[f"{e['detector']}: {m.group(1) or m.group(0) if m else e['message'][:60]}"] += 1

    def grouped(items) -> list[dict]:
        by_dep: dict[str, Counter] = {}
        for t, c, p in items:
            by_dep.setdefault(f"{c}/{p}", Counter()).update(patterns.get(t, []))
        rows = []
        for dep, pats in sorted(by_dep.items(), key=lambda kv: -sum(1 for t, c, p in items if f"{c}/{p}" == kv[0])):
            n = sum(1 for t, c, p in items if f"{c}/{p}" == dep)
            rows.append({"dependency": dep, "count": n, "patterns": dict(pats.most_common(4)),
                         "examples": sorted(t for t, c, p in items if f"{c}/{p}" == dep)[:3]})
        return rows

    return {
        "targets": len(results),
        "recall": len(hit) / len(want) if want else 1.0,
        "precision": len(hit) / len(got) if got else 1.0,
        "found": len(got), "implied": len(want), "matched": len(hit),
        "confidence_differs": sum(1 for k in hit if conf_got[k] != conf_want[k]),
        "missed_not_looked_for": len(missed & by_rule),
        "recall_of_looked_for": len(hit) / len(want - by_rule) if want - by_rule else 1.0,
        "targets_with_errors": targets_with_errors,
        "targets_retried": retried,
        "errors": dict(errors.most_common(10)),
        "missed": grouped(missed - by_rule)[:15],
        "missed_by_rule": grouped(missed & by_rule)[:15],
        "unexpected": grouped(extra)[:15],
    }


def dnsperf(data: Path, seconds: int, clients: int, threads: int, outstanding: int, runs: int) -> dict:
    """dnsperf on the scan's query mix against the same server; the median of `runs` runs
    (on a small machine one run varies by a third)."""
    cmd = ["dnsperf", "-s", "127.0.0.1", "-p", str(PORT), "-d", str(data / "queries.txt"), "-l", str(seconds),
           "-c", str(clients), "-T", str(threads), "-q", str(outstanding)]
    results = []
    for _ in range(runs):
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120)
        qps = re.search(r"Queries per second:\s+([\d.]+)", done.stdout)
        lost = re.search(r"Queries lost:\s+(\d+)", done.stdout)
        latency = re.search(r"Average Latency \(s\):\s+([\d.]+)", done.stdout)
        results.append({"qps": float(qps.group(1)) if qps else 0.0, "lost": int(lost.group(1)) if lost else None,
                        "avg_latency_ms": float(latency.group(1)) * 1000 if latency else 0.0})
    median = sorted(results, key=lambda r: r["qps"])[len(results) // 2]
    return {"command": " ".join(cmd), **median, "all_qps": [round(r["qps"]) for r in results]}


def scan_command(data: Path, extra: list[str]) -> list[str]:
    exe = Path(sys.executable).parent / "dijkwacht"
    base = [str(exe)] if exe.exists() else [sys.executable, "-m", "dijkwacht.cli"]
    cmd = [*base, "scan", "--targets-file", str(data / "targets.txt"), "--nameserver", f"127.0.0.1:{PORT}",
           "--data-dir", str(RANGES_DIR), "--format", "json"]
    # --stats (dijkwacht's own query count and worker count on stderr), where the scan has it
    if "--stats" in subprocess.run([*base, "scan", "--help"], capture_output=True, text=True).stdout and "--stats" not in extra:
        cmd.append("--stats")
    return cmd + extra


def measure(launcher: Launcher, size: int, i: int, knot: Knot, cmd: list[str], data: Path, meta: dict, truth: tuple, keep: bool, quiet_wait: float) -> dict:
    """One scan: resources, Knot's query counters, score."""
    if quiet_wait:
        waited = wait_for_quiet(quiet_wait, knot)
        if waited > 2:
            print(f"[{size}] run {i}: waited {waited:.0f} s for other processes to go quiet", flush=True)
    before, knot_cpu, busy, udp = knot.stats(), knot.cpu_seconds(), busy_cpu_seconds(), udp_counters()
    out_json, out_err = data / "runs" / f"run{i}.json", data / "runs" / f"run{i}.stderr"
    run = launcher.run(cmd, out_json, out_err)
    run["knot_cpu_s"] = knot.cpu_seconds() - knot_cpu
    # CPU used meanwhile by anything but the scan and knotd: other work disturbing the run
    run["other_cpu_s"] = max(0.0, busy_cpu_seconds() - busy - run["cpu_s"] - run["knot_cpu_s"])
    run["udp_dropped"] = {k: v - udp[k] for k, v in udp_counters().items() if k in ("RcvbufErrors", "SndbufErrors", "KnotSocketDrops") and v - udp[k]}
    delta = knot.stats()
    delta.subtract(before)
    run["queries"] = queries_in(delta)
    run["queries_tcp"] = delta.get("mod-stats.request-protocol[tcp4]", 0)
    run["query_types"] = {k.split("[")[1][:-1]: v for k, v in delta.items() if k.startswith("mod-stats.query-type[") and v}
    run["rcodes"] = {k.split("[")[1][:-1]: v for k, v in delta.items() if k.startswith("mod-stats.response-code[") and v}
    run["qps"] = run["queries"] / run["wall_s"]
    stderr = out_err.read_text(errors="replace")
    run.update(scan_stats(stderr))
    model = meta["queries_by_workers"].get(str(run.get("workers", 1)), meta["queries_by_workers"]["1"])
    run["model_queries"] = model["queries"] + model["tcp_retries"]
    if run["exit"] != 0:
        print(f"[{size}] run {i}: exit status {run['exit']}; stderr: {stderr[-2000:]}", flush=True)
        run.update(recall=0.0, precision=0.0)
    else:
        run.update(score(out_json, *truth))
    if not keep:
        out_json.unlink(missing_ok=True)
        out_err.unlink(missing_ok=True)
    print(f"[{size}] run {i}: wall {run['wall_s']:.2f} s, CPU {run['cpu_s']:.2f} s (user {run['user_s']:.2f}, sys {run['sys_s']:.2f}), "
          f"max RSS {run['rss_mb']:.0f} MB, tree RSS {run['tree_rss_mb']:.0f} MB / PSS {run['tree_pss_mb']:.0f} MB "
          f"({run['processes']} processes, {run.get('workers', '?')} workers; each {run['process_rss_mb']} MB); "
          f"{run['queries']} queries ({run['queries_tcp']} TCP; model {run['model_queries']}; dijkwacht says {run.get('dijkwacht_queries', '?')}), "
          f"{run['qps']:.0f} q/s, knotd CPU {run['knot_cpu_s']:.2f} s, other CPU {run['other_cpu_s']:.2f} s; recall {run['recall']:.4f}, precision {run['precision']:.4f}, "
          f"targets with errors {run.get('targets_with_errors', '?')} {run.get('errors') or ''}"
          f"{'; retried ' + str(run['targets_retried']) if run.get('targets_retried') else ''}"
          f"{'; UDP drops ' + str(run['udp_dropped']) if run['udp_dropped'] else ''}", flush=True)
    if run["other_cpu_s"] > 0.1 * run["wall_s"]:
        print(f"[{size}]   note: other processes used {run['other_cpu_s']:.1f} CPU-seconds during this run: the timing is disturbed", flush=True)
    if run["exit"] == 0 and abs(run["queries"] - run["model_queries"]) > 0.02 * run["model_queries"]:
        print(f"[{size}]   note: Knot counted {run['queries']} queries, the model of the detectors {run['model_queries']}: "
              "retries after timeouts, or generate.py's model is behind the detectors", flush=True)
    return run


def fixed_cost(launcher: Launcher, cmd: list[str], data: Path) -> dict:
    """Start-up cost: the same command on one target (imports, catalog, IP ranges, plugins)."""
    one = data / "runs" / "one-target.txt"
    one.write_text((data / "targets.txt").read_text().split("\n", 1)[0] + "\n")
    single = [str(one) if arg == str(data / "targets.txt") else arg for arg in cmd]
    runs = [launcher.run(single, data / "runs" / "one.json", data / "runs" / "one.stderr") for _ in range(3)]
    for name in ("one-target.txt", "one.json", "one.stderr"):
        (data / "runs" / name).unlink(missing_ok=True)
    return {k: statistics.median(r[k] for r in runs) for k in ("wall_s", "cpu_s", "rss_mb")}


def report_misses(size: int, runs: list[dict]) -> None:
    worst = max(runs, key=lambda r: r.get("implied", 0) - r.get("matched", 0))
    for title, key in (("missed (implied, not found)", "missed"), ("missed, not looked for by the current rules", "missed_by_rule"),
                       ("unexpected (found, not implied)", "unexpected")):
        items = worst.get(key) or []
        if items:
            print(f"[{size}] {title}, in the run with most misses:", flush=True)
            for item in items[:10]:
                print(f"[{size}]   {item['dependency']}: {item['count']}  patterns {item['patterns']}  e.g. {', '.join(item['examples'])}", flush=True)
    if worst.get("errors"):
        print(f"[{size}] errors: {worst['errors']}", flush=True)


# ---------------------------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------------------------


def environment() -> dict:
    def run(*cmd: str) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO).stdout.strip()
        except OSError:
            return ""
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")), "")
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpu": cpu, "cpus": os.cpu_count(), "python": platform.python_version(),
        "knot": run("knotd", "--version"),
        "git_commit": run("git", "rev-parse", "--short", "HEAD"), "git_dirty": bool(run("git", "status", "--porcelain", "--", "agent", "plugins")),
    }


def main() -> int:
    argv = sys.argv[1:]
    extra: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1:]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="Arguments after -- are passed to `dijkwacht scan`.")
    parser.add_argument("--sizes", default="1000,16500", help="comma-separated numbers of domains (default 1000,16500)")
    parser.add_argument("--runs", type=int, default=3, help="scans per size; the table shows medians (default 3)")
    parser.add_argument("--seed", type=int, default=1, help="data seed (default 1)")
    parser.add_argument("--commit", metavar="REV", help="measure this commit (a git archive snapshot) instead of the working tree")
    parser.add_argument("--workers", type=int, help="passed as `dijkwacht scan --workers N` (default: the scan's own choice)")
    parser.add_argument("--knot-workers", type=int, help="knotd UDP and TCP worker threads (default: Knot's, one per CPU)")
    parser.add_argument("--keep", action="store_true", help="keep each run's JSON output and stderr (benchmarks/out/n<size>-s<seed>/runs/)")
    parser.add_argument("--regenerate", action="store_true", help="regenerate the data even if cached")
    parser.add_argument("--quiet-wait", type=float, default=0, metavar="SECONDS",
                        help="before each run, wait up to this long for other processes to go idle (for shared machines; default 0)")
    parser.add_argument("--no-startup", dest="startup", action="store_false", help="skip measuring the fixed cost (a scan of 1 target)")
    parser.add_argument("--dnsperf-seconds", type=int, default=10, help="dnsperf duration (default 10; 0 skips dnsperf)")
    parser.add_argument("--dnsperf-runs", type=int, default=3, help="dnsperf runs; the median counts (default 3)")
    parser.add_argument("--dnsperf-clients", type=int, default=4)
    parser.add_argument("--dnsperf-threads", type=int, default=2)
    parser.add_argument("--dnsperf-outstanding", type=int, default=500)
    args = parser.parse_args(argv)
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    if args.workers:
        extra = ["--workers", str(args.workers), *extra]

    isolate()
    launcher = Launcher()  # first, while this process is small
    for tool in ("knotd", "knotc", "kdig") + (("dnsperf",) if args.dnsperf_seconds else ()):
        if shutil.which(tool) is None:
            sys.exit(f"run_scan.py: {tool} is not installed (Debian: knot, knot-dnsutils, dnsperf)")
    OUT.mkdir(exist_ok=True)
    env_info = environment()
    code = REPO
    if args.commit:
        code = code_snapshot(args.commit)
        env_info.update(git_commit=subprocess.run(["git", "rev-parse", "--short", args.commit], cwd=REPO, capture_output=True, text=True).stdout.strip(), git_dirty=False)
    env_info["code"] = str(code)
    print(f"# {env_info['date']}  {env_info['cpu']} ({env_info['cpus']} CPUs), Python {env_info['python']}, {env_info['knot']}, "
          f"dijkwacht {env_info['git_commit']}{' (working tree, modified)' if env_info['git_dirty'] else ''}"
          f"{' from ' + str(code.relative_to(REPO)) if code != REPO else ''}", flush=True)

    rows = []
    startup = None
    for size in sizes:
        data, meta = generate(size, args.seed, args.regenerate, code)
        truth = tuple(json.loads((data / name).read_text()) for name in ("expected.json", "patterns.json", "not_looked_for.json"))
        (data / "runs").mkdir(exist_ok=True)
        knot = Knot(data, args.knot_workers)
        try:
            load = knot.start(meta["zones"])
            print(f"[{size}] knotd: answering after {load['first_answer_s']} s, all {meta['zones']} zones loaded after "
                  f"{load['all_zones_s']} s, RSS {load['rss_mb']} MB", flush=True)
            cmd = scan_command(data, extra)
            print(f"[{size}] {' '.join(cmd)}", flush=True)
            runs = [measure(launcher, size, i, knot, cmd, data, meta, truth, args.keep, args.quiet_wait) for i in range(1, args.runs + 1)]
            if startup is None and args.startup:
                startup = fixed_cost(launcher, cmd, data)
                print(f"[{size}] fixed cost: a scan of 1 target takes {startup['wall_s']:.2f} s wall, {startup['cpu_s']:.2f} s CPU, "
                      f"{startup['rss_mb']:.0f} MB (median of 3)", flush=True)
            perf = None
            if args.dnsperf_seconds:
                perf = dnsperf(data, args.dnsperf_seconds, args.dnsperf_clients, args.dnsperf_threads, args.dnsperf_outstanding, args.dnsperf_runs)
                print(f"[{size}] {perf['command']}: {perf['qps']:.0f} q/s, median of {perf['all_qps']} "
                      f"(lost {perf['lost']}, average latency {perf['avg_latency_ms']:.2f} ms)", flush=True)
        finally:
            knot.stop()
        if not any((data / "runs").iterdir()):
            (data / "runs").rmdir()
        report_misses(size, runs)
        def med(key: str, runs: list[dict] = runs) -> float:
            return statistics.median(r[key] for r in runs)

        row = {
            "domains": size, "runs": runs, "knot_load": load, "command": " ".join(cmd), "dnsperf": perf,
            "generated": {k: meta[k] for k in ("records", "zones", "queries", "queries_by_workers", "queries_per_domain", "implied_dependencies", "implied_not_looked_for")},
            "wall_s": med("wall_s"), "cpu_s": med("cpu_s"), "rss_mb": med("rss_mb"), "tree_pss_mb": med("tree_pss_mb"), "tree_rss_mb": med("tree_rss_mb"),
            "queries": int(med("queries")), "qps": med("qps"), "recall": med("recall"), "precision": med("precision"),
            "workers": runs[0].get("workers"),
        }
        row["ratio"] = row["qps"] / perf["qps"] if perf and perf["qps"] else None
        rows.append(row)

    print()
    print("| domains | workers | median wall s | median CPU s | peak RSS MB (largest process) | peak memory MB (PSS, all processes) "
          "| queries | q/s | recall | precision | dnsperf q/s | ratio |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        perf = f"{r['dnsperf']['qps']:,.0f}" if r["dnsperf"] else "-"
        ratio = f"{r['ratio']:.3f}" if r["ratio"] is not None else "-"
        print(f"| {r['domains']:,} | {r['workers'] or '?'} | {r['wall_s']:.2f} | {r['cpu_s']:.2f} | {r['rss_mb']:.0f} | {r['tree_pss_mb']:.0f} | "
              f"{r['queries']:,} | {r['qps']:,.0f} | {r['recall']:.4f} | {r['precision']:.4f} | {perf} | {ratio} |")
    print()
    for r in rows:
        print(f"{r['domains']:,} domains: knotd answered after {r['knot_load']['first_answer_s']} s and had loaded all zones after "
              f"{r['knot_load']['all_zones_s']} s; per run: wall {[round(x['wall_s'], 2) for x in r['runs']]} s, "
              f"largest RSS {[round(x['rss_mb']) for x in r['runs']]} MB, tree RSS {[round(x['tree_rss_mb']) for x in r['runs']]} MB, "
              f"tree PSS {[round(x['tree_pss_mb']) for x in r['runs']]} MB")
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    launcher.close()
    result_path = OUT / f"results-{stamp}.json"
    if startup:
        print(f"fixed cost (a scan of 1 target): {startup['wall_s']:.2f} s wall, {startup['cpu_s']:.2f} s CPU, {startup['rss_mb']:.0f} MB")
    result_path.write_text(json.dumps({"environment": env_info, "extra_args": extra, "args": vars(args), "startup": startup, "sizes": rows}, indent=1, default=str) + "\n")
    print(f"\nresults: {result_path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
