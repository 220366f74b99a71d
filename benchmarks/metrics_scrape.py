"""Benchmark: one /metrics scrape of the daemon with N targets in its state.

Builds a state database with N targets (each with email, video, cdn, hosting and dns results
drawn from realistic provider mixes), starts the real daemon and HTTP server on 127.0.0.1, and
times full scrapes over HTTP. The daemon's interval is 24 h so that it does not scan during
the measurement; its nameserver is a closed local port, so nothing leaves the machine.

    python benchmarks/metrics_scrape.py --targets 16500 --scrapes 5
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from dijkwacht.catalog import EU
from dijkwacht.daemon.agent import Daemon
from dijkwacht.daemon.server import serve
from dijkwacht.state import StateStore
from dijkwacht.daemon.webconfig import WebConfig
from dijkwacht.scanner import Dependency, TargetResult
from dijkwacht.targets import Target

MIX = {
    "email": [("microsoft", "US"), ("google", "US"), ("transip", "GB"), ("proofpoint", "US"), ("leaseweb", "NL")],
    "video": [("microsoft", "US"), ("zoom", "US")],
    "cdn": [("cloudflare", "US"), ("akamai", "US"), ("fastly", "US")],
    "hosting": [("transip", "GB"), ("hetzner", "DE"), ("amazon", "US"), ("ovh", "FR"), ("leaseweb", "NL")],
    "dns": [("amazon", "US"), ("transip", "GB"), ("cloudflare", "US")],
}

# A second email provider is a gateway in front of the first.
ROLES = {"email": ("mailbox", "gateway"), "video": ("meeting",)}


def populate(path: Path, n: int, seed: int = 1) -> tuple[list[str], float]:
    rng = random.Random(seed)
    store = StateStore(path)
    store.db.execute("PRAGMA synchronous=OFF")  # populating only; the daemon reopens it normally
    domains = [f"gemeente-{i:05d}.nl" for i in range(n)]
    started = time.perf_counter()
    for domain in domains:
        deps = []
        for category, choices in MIX.items():
            if category in ("cdn", "video") and rng.random() < 0.5:
                continue
            for i, (provider, juris) in enumerate(rng.sample(choices, 2 if category == "email" and rng.random() < 0.15 else 1)):
                role = ROLES[category][i] if category in ("email", "video") else category
                deps.append(Dependency(category, provider, provider.title(), juris, juris not in EU, (f"evidence for {provider}",), "confirmed", provider, role))
        store.record(TargetResult(Target(domain), deps, [], frozenset(), frozenset(MIX), duration=0.05), EU)
    seconds = time.perf_counter() - started
    store.close()
    return domains, seconds


async def scrape(n: int, scrapes: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="dijkwacht-metrics-"))
    domains, fill = populate(work / "state.db", n)
    (work / "targets.txt").write_text("".join(f"{d} sector={'municipality' if i % 3 else 'hospital'}\n" for i, d in enumerate(domains)))
    (work / "dijkwacht.toml").write_text(
        f'[agent]\nnameservers = ["127.0.0.1:9"]\ntargets_file = "targets.txt"\n[daemon]\ninterval = "24h"\nstate_path = "{work / "state.db"}"\n'
    )
    started = time.perf_counter()
    daemon = Daemon(work / "dijkwacht.toml")
    await daemon.start()
    while not daemon.ready:  # ready = restored state loaded and rendered
        await asyncio.sleep(0.01)
    restore = time.perf_counter() - started
    runner = await serve(daemon, WebConfig(), "127.0.0.1:0")
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/metrics"
    times, size, samples = [], 0, 0
    async with aiohttp.ClientSession() as http:
        for _ in range(scrapes):
            t0 = time.perf_counter()
            async with http.get(url) as response:
                body = await response.read()
            times.append(time.perf_counter() - t0)
            size = len(body)
            samples = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
    await runner.cleanup()
    await daemon.stop(grace=0)
    print(f"targets: {n}")
    print(f"state fill: {fill:.1f} s ({n / fill:.0f} target results/s recorded)")
    print(f"daemon start until ready with the restored state: {restore:.2f} s")
    print(f"scrape: median {statistics.median(times) * 1000:.0f} ms, min {min(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms over {scrapes}")
    print(f"size: {size / 1e6:.1f} MB, {samples} samples")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=16500)
    parser.add_argument("--scrapes", type=int, default=5)
    args = parser.parse_args()
    if not os.environ.get("DIJKWACHT_BENCH_NETNS"):
        # Re-run inside a private network namespace with only loopback: nothing can leave.
        os.environ["DIJKWACHT_BENCH_NETNS"] = "1"
        os.execvp("unshare", ["unshare", "-rn", "sh", "-c", 'ip link set lo up && exec "$0" "$@"', sys.executable, *sys.argv])
    asyncio.run(scrape(args.targets, args.scrapes))


if __name__ == "__main__":
    main()
