#!/usr/bin/env python3
"""Benchmark `dijkwacht report` and the agent's /report at the size of the research (16,500 domains).

    python benchmarks/report.py --domains 16500 --runs 3 [--results SCAN.json]

The input is a scan's JSON: `--results` takes a real one (e.g. the output `run_scan.py --keep`
keeps); without it, the benchmark generator's domains (generate.py: the same population,
records and detector rules) are turned into scan results directly, without Knot: each domain's
implied dependencies, with the catalog's names, parents, jurisdictions and roles, the domain's
own records as evidence, labels `sector` and `country`, and 1 % of the domains with a failed
lookup. That takes seconds instead of the scan's minute of generation and scanning; the figures
below compare both.

Measured, each as a fresh process (what a user runs), median of --runs: `dijkwacht report` in
every format and with every label as a group, `report --state` of the same results recorded in
a state database: wall time, CPU time (user + system, from wait4), peak RSS, output size. And
the running agent's /report over HTTP with that state: the first request right after start
(it waits for the first render) and the later ones (the kept page). Everything runs in a
private network namespace.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import generate  # noqa: E402  (the benchmark generator, beside this file)

from dijkwacht.catalog import EU, is_foreign, load_catalog  # noqa: E402
from dijkwacht.scanner import CATEGORY_ORDER, Dependency, ScanError, TargetResult  # noqa: E402
from dijkwacht.targets import Target  # noqa: E402


def _evidence(records: generate.Records, domain: str) -> dict[str, list[str]]:
    """The domain's own records, written as the detectors write evidence, per category."""
    data = records.data

    def chain(name: str) -> list[str]:
        lines = []
        while "CNAME" in data.get(name, {}) and len(lines) < 3:
            target = data[name]["CNAME"][0]
            lines.append(f"CNAME {name} -> {target}")
            name = target
        return lines

    def addresses(name: str) -> list[str]:
        return [f"A/AAAA {name} {a}" for t in ("A", "AAAA") for a in data.get(name, {}).get(t, [])]

    own = data.get(domain, {})
    spf = [t for t in own.get("TXT", []) if t.startswith("v=spf1")]
    return {
        "email": [f"MX {p} {h}" for p, h in own.get("MX", []) if h]
                 + [f"SPF {w}" for t in spf for w in t.split() if w.startswith("include:")]
                 + chain(f"autodiscover.{domain}") + chain(f"selector1._domainkey.{domain}"),
        "video": chain(f"lyncdiscover.{domain}") + chain(f"sip.{domain}")
                 + [f"SRV _sip._tls.{domain} {s[3]}" for s in data.get(f"_sip._tls.{domain}", {}).get("SRV", [])],
        "cdn": chain(f"www.{domain}"),
        "hosting": addresses(domain) + addresses(f"www.{domain}") + chain(f"www.{domain}")[:1],
        "dns": [f"NS {h}" for h in own.get("NS", [])],
    }


def synthetic_results(n: int, seed: int = 1) -> list[dict]:
    """Scan results for the generator's first `n` domains (see the module docstring)."""
    rng = random.Random(seed)
    catalog = load_catalog()
    addrs = generate.Addresses(rng, generate.RANGES_DIR)
    records = generate.Records()
    population = generate.Population(rng, addrs, records)
    width = max(5, len(str(n)))
    targets = [f"{generate.weighted(rng, generate.SECTORS)}-{i:0{width}d}.{generate.weighted(rng, generate.TLDS)}" for i in range(1, n + 1)]
    records.zones.update(targets)
    for d in targets:
        population.domain(d)
    rules = generate.Rules(catalog, addrs.ranges, generate.Resolver(generate.Server(records)))
    senders = {p.id for p in catalog.providers.values() if p.facts and all(f.role == "sending" for f in p.facts if f.category == "email")}
    failing = random.Random(seed + 1)
    today = dt.date.today()
    results = []
    for d in targets:
        evidence = _evidence(records, d)
        deps = []
        errors = []
        broken = failing.random() < 0.01
        if broken:
            errors.append({"detector": "email", "message": f"MX {d}: TIMEOUT"})
        for (category, provider), confidence in sorted(rules.evaluate(d).items(), key=lambda kv: (CATEGORY_ORDER[kv[0][0]], kv[0][1])):
            if broken and category == "email":
                continue
            p = catalog.providers.get(provider)
            owner = p.owner_on(today) if p else None
            role = "sending" if category == "email" and provider in senders else catalog.default_role(category, provider)
            juris = owner.jurisdiction if owner else ""
            deps.append({"category": category, "role": role, "provider": provider, "name": p.name if p else provider,
                         "jurisdiction": juris, "foreign": is_foreign(juris, EU), "evidence": evidence[category][:4] or [f"{category}: {provider}"],
                         "confidence": confidence, "parent": owner.parent if owner else ""})
        sector, _, rest = d.partition("-")
        results.append({"target": d, "dependencies": deps, "errors": errors, "labels": {"sector": sector, "country": rest.rsplit(".", 1)[1]}})
    return results


# Runs each measured command and reports wall, CPU and peak RSS. A separate small process: a
# child forked from this one (which holds every result) would count that copy in its peak RSS.
LAUNCHER = """
import json, os, subprocess, sys, time
for line in sys.stdin:
    started = time.perf_counter()
    child = subprocess.Popen(json.loads(line), stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    print(json.dumps([status, time.perf_counter() - started, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024]), flush=True)
"""


class Launcher:
    def __init__(self) -> None:
        self.process = subprocess.Popen([sys.executable, "-c", LAUNCHER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def timed(self, argv: list[str]) -> tuple[float, float, float]:
        """Wall seconds, CPU seconds (user + system) and peak RSS in MB of one run of `argv`."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(argv) + "\n")
        self.process.stdin.flush()
        status, wall, cpu, rss = json.loads(self.process.stdout.readline())
        if status:
            sys.exit(f"failed: {' '.join(argv)}")
        return wall, cpu, rss


def _state(results: list[dict], path: Path) -> None:
    """Record the results in a state database: twice, the second time with 2 % of the mail
    moved, so that the history has changes."""
    from dijkwacht.state import StateStore

    store = StateStore(path, confirmations=1)
    store.db.execute("PRAGMA synchronous=OFF")
    moved = random.Random(5)
    for rnd in range(2):
        for r in results:
            deps = [Dependency(d["category"], d["provider"], d["name"], d["jurisdiction"], d["foreign"], tuple(d["evidence"]), d["confidence"], d["parent"], d["role"])
                    for d in r["dependencies"]]
            if rnd and moved.random() < 0.02:
                deps = [d for d in deps if d.category != "email"] + [Dependency("email", "microsoft", "Exchange Online", "US", True, ("MX 0 x.mail.protection.outlook.com",), "confirmed", "Microsoft Corporation", "mailbox")]
            errors = [ScanError(e["detector"], e["message"]) for e in r["errors"]]
            store.record(TargetResult(Target(r["target"], r.get("labels", {})), deps, errors, frozenset({"email"} if errors else ()), frozenset(CATEGORY_ORDER)),
                         EU, now=time.time() - 3600 * (1 - rnd))
    store.close()


async def _agent(work: Path, results: list[dict]) -> tuple[float, float, int]:
    import aiohttp

    from dijkwacht.daemon.agent import Daemon
    from dijkwacht.daemon.server import serve
    from dijkwacht.daemon.webconfig import WebConfig

    (work / "targets.txt").write_text("".join(f"{r['target']} {' '.join(f'{k}={v}' for k, v in r.get('labels', {}).items())}\n" for r in results))
    (work / "dijkwacht.toml").write_text(
        f'[agent]\nnameservers = ["127.0.0.1:9"]\ntargets_file = "targets.txt"\ndata_dir = "{generate.RANGES_DIR}"\n'
        f'[daemon]\ninterval = "24h"\nstate_path = "{work / "state.db"}"\n'
    )
    daemon = Daemon(work / "dijkwacht.toml")
    await daemon.start()
    while not daemon.ready:
        await asyncio.sleep(0.01)
    runner = await serve(daemon, WebConfig(), "127.0.0.1:0")
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/report"
    times, size = [], 0
    async with aiohttp.ClientSession() as http:
        for _ in range(6):  # the first waits for the page the agent renders once it is ready
            t0 = time.perf_counter()
            async with http.get(url) as response:
                size = len(await response.read())
            times.append(time.perf_counter() - t0)
    await runner.cleanup()
    await daemon.stop(grace=0)
    return times[0], statistics.median(times[1:]), size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--domains", type=int, default=16500)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--results", type=Path, help="a real scan's JSON instead of the synthesized one")
    args = parser.parse_args()
    if not os.environ.get("DIJKWACHT_BENCH_NETNS"):
        os.environ["DIJKWACHT_BENCH_NETNS"] = "1"
        os.execvp("unshare", ["unshare", "-rn", "sh", "-c", 'ip link set lo up && exec "$0" "$@"', sys.executable, *sys.argv])
    launcher = Launcher()  # before anything is loaded
    work = Path(tempfile.mkdtemp(prefix="dijkwacht-report-"))
    if args.results:
        source = args.results
        results = json.loads(source.read_text())
        print(f"results: {source} ({len(results)} domains, {source.stat().st_size / 1e6:.1f} MB)")
    else:
        started = time.perf_counter()
        results = synthetic_results(args.domains, args.seed)
        source = work / "results.json"
        source.write_text("[\n" + ",\n".join(json.dumps(r, ensure_ascii=False) for r in results) + "\n]\n")
        print(f"results: synthesized {len(results)} domains in {time.perf_counter() - started:.1f} s ({source.stat().st_size / 1e6:.1f} MB)")
    deps = sum(len(r["dependencies"]) for r in results)
    print(f"dependencies: {deps}, evidence lines: {sum(len(d['evidence']) for r in results for d in r['dependencies'])}")
    command = [sys.executable, "-m", "dijkwacht.cli", "report", "--data-dir", str(generate.RANGES_DIR)]
    rows = []

    def measure(what: str, argv: list[str], out: Path) -> None:
        runs = [launcher.timed([*argv, "--output", str(out)]) for _ in range(args.runs)]
        wall, cpu, rss = (statistics.median(r[i] for r in runs) for i in range(3))
        rows.append((what, f"{wall:.2f}", f"{cpu:.2f}", f"{rss:.0f}", f"{out.stat().st_size / 1e6:.2f}"))

    for fmt in ("html", "json", "md", "csv"):
        measure(f"report --format {fmt}", [*command, str(source), "--format", fmt], work / f"report.{fmt}")
    labels = sorted({k for r in results for k in r.get("labels", {})})
    if labels:
        measure(f"report --group-by {' --group-by '.join(labels)} (html)", [*command, str(source), *(a for k in labels for a in ("--group-by", k))], work / "groups.html")
    _state(results, work / "state.db")
    measure("report --state (html, with the history)", [*command, "--state", str(work / "state.db")], work / "state.html")
    first, kept, size = asyncio.run(_agent(work, results))
    rows.append(("agent /report over HTTP, first request at start (waits for the first render)", f"{first:.2f}", "-", "-", f"{size / 1e6:.2f}"))
    rows.append(("agent /report over HTTP, later requests (the kept page, median of 5)", f"{kept:.3f}", "-", "-", f"{size / 1e6:.2f}"))
    print(f"\n{len(results):,} domains, median of {args.runs} runs (the agent: one run)\n")
    print("| what | wall s | CPU s | peak RSS MB | output MB |\n|---|---:|---:|---:|---:|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
