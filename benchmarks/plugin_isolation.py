#!/usr/bin/env python3
"""Benchmark: what a blocking or spinning third-party detector costs, with and without isolation.

    python benchmarks/plugin_isolation.py [--targets 200] [--seconds 20] [--scan-targets 2000]

Part 1, responsiveness. The real agent (`dijkwacht run`) watches `--targets` domains served by
Knot, rescanning them continuously, with one third-party detector installed (a module with a
`dijkwacht` entry point) that, for every target, does nothing (`none`), blocks its thread for
1 s (`sleep`, time.sleep), spins the CPU forever (`spin`), or spins for 0.2 s and then answers
(`burn`: with 8 targets in flight it never times out, so it is never quarantined and keeps its
thread busy in Python the whole time -- the worst case for the interpreter lock). It runs on its own thread, as
shipped (`lane`), or -- to show what the isolation buys -- on the agent's main loop, as every
detector did before (`loop`). For `--seconds` the script times GET /-/healthy and GET /metrics
(5 s client timeout) and reports their median, 99th percentile and maximum, before and after
the detector is quarantined, the scans completed, the built-in detectors' errors and the main
loop's stalls, then the time SIGTERM takes to stop the agent.

Part 2, overhead. `--scan-targets` domains scanned in this process (no workers) with the
built-in detectors only, plus a well-behaved third-party detector asking two questions per
target on its own thread, and the same detector on the main loop: wall and CPU seconds (best
of 3), i.e. what the thread hop and the DNS bridge cost.

Everything runs in a private network namespace (`unshare -rn`, only loopback up): the script
re-executes itself there when started outside one.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import resource
import signal
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from tests.knot import Knot, free_port  # noqa: E402  (the end-to-end tests' Knot wrapper)

NETNS_ENV = "DIJKWACHT_BENCH_NETNS"
PLUGIN = '''
import os, time
from dijkwacht import hookimpl
from dijkwacht.detector import Detector, Finding

BEHAVIOUR = os.environ.get("BENCH_BEHAVIOUR", "none")


class Bench(Detector):
    name = "bench"
    categories = ("identity",)

    async def detect(self, target, ctx):
        if BEHAVIOUR == "sleep":
            time.sleep(1.0)
        elif BEHAVIOUR == "spin":
            while True:
                pass
        elif BEHAVIOUR == "burn":
            end = time.monotonic() + 0.2
            while time.monotonic() < end:
                pass
        answer = await ctx.dns.resolve(f"login.{target.domain}", "CNAME")
        await ctx.dns.resolve(target.domain, "TXT")
        return [Finding("identity", "microsoft", [f"CNAME {c}"]) for c in answer.records]


@hookimpl
def dijkwacht_detectors():
    return [Bench]
'''


def isolate() -> None:
    if os.environ.get(NETNS_ENV) != "1":
        if shutil.which("unshare") is None or shutil.which("ip") is None:
            sys.exit("plugin_isolation.py: needs unshare(1) and ip(8) to run in a private network namespace")
        env = {**os.environ, NETNS_ENV: "1"}
        argv = ["unshare", "-rn", "sh", "-c", 'ip link set lo up && exec "$0" "$@"', sys.executable, str(Path(__file__).resolve()), *sys.argv[1:]]
        os.execvpe("unshare", argv, env)
    names = [name for _, name in socket.if_nameindex()]
    if names != ["lo"]:
        sys.exit(f"plugin_isolation.py: refusing to run: network interfaces {names} are visible")


def zone(n: int) -> str:
    return "\n".join(
        f"t{i}.nl MX 0 t{i}-nl.mail.protection.outlook.com.\n"
        f't{i}.nl TXT "v=spf1 include:spf.protection.outlook.com -all"\n'
        f"t{i}.nl NS ns-12.awsdns-01.org.\n"
        f"www.t{i}.nl CNAME t{i}.azurewebsites.net.\n"
        f"login.t{i}.nl CNAME enterpriseregistration.windows.net."
        for i in range(n)
    )


def install_plugin(root: Path) -> Path:
    """A module with a `dijkwacht` entry point (module + dist-info on PYTHONPATH)."""
    (root / "bench_plugin.py").write_text(textwrap.dedent(PLUGIN))
    dist = root / "bench_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: bench-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[dijkwacht]\nbench = bench_plugin\n")
    return root


def on_main_loop() -> None:
    """Make the bench detector run on the main loop, as every detector did before lanes."""
    from dijkwacht.pluginhost import PluginHost

    builtin = PluginHost.builtin_detectors.fget
    PluginHost.builtin_detectors = property(lambda self: builtin(self) | {"bench"})


# ---- part 1 ------------------------------------------------------------------------------------


def get(url: str) -> tuple[float, str]:
    started = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return time.monotonic() - started, response.read().decode()
    except (urllib.error.URLError, OSError):
        return float("inf"), ""


def figures(samples: list[float]) -> str:
    if not samples:
        return "-"
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    fmt = lambda x: "no answer" if x == float("inf") else f"{x * 1000:.0f} ms"  # noqa: E731
    return f"median {fmt(statistics.median(ordered))}, p99 {fmt(p99)}, max {fmt(ordered[-1])} (n={len(ordered)})"


def value(text: str, pattern: str) -> float:
    return sum(float(m) for m in re.findall(pattern + r"(?:\{[^}]*\})? ([0-9.e+-]+)\n", text))


def responsiveness(knot: Knot, plugin_dir: Path, behaviour: str, placement: str, targets: int, seconds: float, work: Path) -> None:
    port = free_port()
    config = work / f"{behaviour}-{placement}.toml"
    concurrency = 8 if behaviour == "burn" else 64
    config.write_text(
        f'[agent]\nnameservers = ["{knot.address}"]\ndetector_timeout = 2\nconcurrency = {concurrency}\n'
        f'[daemon]\nlisten = "127.0.0.1:{port}"\ninterval = "5s"\nstate_path = "{work / (behaviour + placement)}.db"\n'
        + "".join(f'[[targets]]\ndomain = "t{i}.nl"\n' for i in range(targets))
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin_dir), str(REPO)]), "BENCH_BEHAVIOUR": behaviour}
    if behaviour == "none":
        env["DIJKWACHT_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    log = open(work / f"{behaviour}-{placement}.log", "w")
    agent = subprocess.Popen([sys.executable, __file__, "--agent", str(config), "--placement", placement], env=env, stdout=subprocess.DEVNULL, stderr=log)
    base = f"http://127.0.0.1:{port}"
    before: list[float] = []
    after: list[float] = []
    quarantined_at = None
    text = ""
    try:
        deadline = time.monotonic() + 20
        while get(f"{base}/-/healthy")[0] == float("inf") and time.monotonic() < deadline:
            time.sleep(0.1)
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            healthy, _ = get(f"{base}/-/healthy")
            scrape, body = get(f"{base}/metrics")
            text = body or text
            if quarantined_at is None and re.search(r'dijkwacht_plugin_info\{[^}]*plugin="bench"[^}]*status="quarantined"', body):
                quarantined_at = time.monotonic() - started
            (after if quarantined_at is not None else before).extend([healthy, scrape])
            time.sleep(0.05)
        stop_started = time.monotonic()
        agent.send_signal(signal.SIGTERM)
        try:
            code = agent.wait(timeout=30)
            stopped = f"{time.monotonic() - stop_started:.1f} s" + ("" if code == 0 else f" (exit status {code}: killed by the signal, its handler never installed)")
        except subprocess.TimeoutExpired:
            stopped = "did not stop within 30 s (killed)"
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()
        log.close()
    scans = value(text, "dijkwacht_scan_duration_seconds_count")
    builtin_errors = sum(value(text, rf'dijkwacht_detector_errors_total\{{detector="{d}"\}}') for d in ("email", "video", "cdn", "hosting", "dns"))
    stalls = re.findall(r'dijkwacht_event_loop_stalls_total\{detector="([^"]*)"\} ([0-9.]+)', text)
    print(f"\n{behaviour} detector on {'its own thread' if placement == 'lane' else 'the main loop'} ({concurrency} targets in flight):")
    print(f"  /-/healthy and /metrics until quarantine: {figures(before)}")
    if quarantined_at is not None:
        print(f"  quarantined after {quarantined_at:.1f} s; afterwards: {figures(after)}")
    print(f"  scans completed in {seconds:g} s: {scans:.0f}; built-in detector errors: {builtin_errors:.0f}; "
          f"main-loop stalls: {', '.join(f'{d or chr(34) * 2}: {n}' for d, n in stalls) or 'none'}")
    print(f"  SIGTERM to exit: {stopped}")
    if not text:
        listening = "http.listening" in (work / f"{behaviour}-{placement}.log").read_text()
        print(f"  no /metrics answer at all; the HTTP server {'was listening' if listening else 'never got to start listening'}")


# ---- part 2 ------------------------------------------------------------------------------------


async def scan_once(knot: Knot, n: int, mode: str) -> tuple[float, float]:
    import bench_plugin

    from dijkwacht.config import AgentSettings
    from dijkwacht.pluginhost import make_plugin_manager
    from dijkwacht.runtime import build_runtime, load_data
    from dijkwacht.targets import Target

    agent = AgentSettings(nameservers=(knot.address,))
    host = make_plugin_manager([bench_plugin] if mode != "builtin" else [], autoload=False)
    data = load_data(agent, host)
    runtime = build_runtime(agent, data)
    if mode == "loop":
        runtime.scanner.lanes.clear()  # the bench detector on the main loop, like a built-in
    wall, cpu = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
    try:
        async for _ in runtime.scanner.scan_all([Target(f"t{i}.nl") for i in range(n)]):
            pass
    finally:
        await runtime.close()
    end = resource.getrusage(resource.RUSAGE_SELF)
    return time.perf_counter() - wall, (end.ru_utime + end.ru_stime) - (cpu.ru_utime + cpu.ru_stime)


def overhead(knot: Knot, plugin_dir: Path, n: int) -> None:
    sys.path.insert(0, str(plugin_dir))
    os.environ["BENCH_BEHAVIOUR"] = "none"
    print(f"\noverhead, {n} targets scanned in one process (best of 3, the modes interleaved):")
    modes = (("builtin", "built-in detectors only"), ("lane", "+ third-party detector on its own thread"), ("loop", "+ the same detector on the main loop"))
    runs: dict[str, list[tuple[float, float]]] = {mode: [] for mode, _ in modes}
    for _ in range(3):
        for mode, _ in modes:
            runs[mode].append(asyncio.run(scan_once(knot, n, mode)))
    for mode, label in modes:
        print(f"  {label:<45} wall {min(w for w, _ in runs[mode]):.2f} s, CPU {min(c for _, c in runs[mode]):.2f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", type=int, default=200, help="targets the agent watches (default 200)")
    parser.add_argument("--seconds", type=float, default=20, help="measuring time per case (default 20)")
    parser.add_argument("--scan-targets", type=int, default=2000, help="targets of the overhead scans (default 2000; 0: skip)")
    parser.add_argument("--cases", default="none-lane,sleep-lane,spin-lane,burn-lane,sleep-loop,spin-loop", help="behaviour-placement pairs to measure")
    parser.add_argument("--agent", help=argparse.SUPPRESS)
    parser.add_argument("--placement", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.agent:  # the child: the agent itself
        if args.placement == "loop":
            on_main_loop()
        from dijkwacht.cli import main as cli

        return cli(["run", "--config", args.agent])
    isolate()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "plugin").mkdir()
        plugin_dir = install_plugin(work / "plugin")
        knot = Knot(work / "knot", zone(max(args.targets, args.scan_targets)), [f"t{i}.nl" for i in range(max(args.targets, args.scan_targets))]).start()
        try:
            print(f"agent: {args.targets} targets, interval 5 s, detector_timeout 2 s; {args.seconds:g} s per case; {os.cpu_count()} CPUs")
            for case in args.cases.split(","):
                behaviour, placement = case.split("-")
                responsiveness(knot, plugin_dir, behaviour, placement, args.targets, args.seconds, work)
            if args.scan_targets:
                overhead(knot, plugin_dir, args.scan_targets)
        finally:
            knot.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
