"""Load tests against a real agent process: a flood of wrong passwords, and a flood of slow
/probe requests. Neither may stall the agent's health endpoint or make a scheduled scan late or
failed. The hostile client runs in a process of its own (tests/flood.py); the DNS server is the
fake one, in this test's event loop."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import statistics
import subprocess
import sys
import time

import aiohttp
import bcrypt
import pytest

from dijkwacht.testing import FakeDNSServer

from .knot import free_port

pytestmark = pytest.mark.e2e
TARGETS = [f"gemeente{i}.nl" for i in range(20)]
ZONE = "".join(f"{t} MX 10 mx.transip.email.\n{t} NS ns0.transip.net.\n" for t in TARGETS)


def slow_names(name: str) -> float:
    """Names starting with "slow" are answered only after 1.5 s, the rest at once."""
    return 1.5 if name.startswith("slow") else 0.0


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


async def start_agent(tmp_path, dns: FakeDNSServer, extra: str = "", web: str = ""):
    port = free_port()
    config = tmp_path / "dijkwacht.toml"
    config.write_text(
        f'[agent]\nnameservers = ["{dns.address}"]\ndns_timeout = 2\ndns_tries = 1\n[daemon]\nlisten = "127.0.0.1:{port}"\ninterval = "2s"\n'
        f'state_path = "{tmp_path / "state.db"}"\n{extra}\n' + (f'web_config = "{web}"\n' if web else "") + "".join(f'[[targets]]\ndomain = "{t}"\n' for t in TARGETS)
    )
    log = open(tmp_path / "agent.log", "wb")
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "dijkwacht.cli", "run", "--config", str(config), stdout=subprocess.DEVNULL, stderr=log,
                                                   env={**os.environ, "DIJKWACHT_DISABLE_PLUGIN_AUTOLOAD": "1"})
    return process, f"http://127.0.0.1:{port}"


async def wait_ready(http: aiohttp.ClientSession, base: str, headers=None) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            async with http.get(f"{base}/-/ready", headers=headers or {}) as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.2)
    raise AssertionError("agent not ready")


async def scan_health(http: aiohttp.ClientSession, base: str, headers=None) -> tuple[float, int]:
    """(oldest last-successful-scan age in seconds, scan errors in the latest scans)."""
    async with http.get(f"{base}/metrics", headers=headers or {}) as response:
        text = await response.text()
    successes = [float(v) for v in re.findall(r'^dijkwacht_last_successful_scan_timestamp_seconds\{target="[^"]+"\} (\S+)$', text, re.M)]
    errors = sum(float(v) for v in re.findall(r"^dijkwacht_scan_errors\{[^}]*\} (\S+)$", text, re.M))
    assert len(successes) == len(TARGETS), text[:2000]
    return time.time() - min(successes), int(errors)


async def flood(url: str, count: int, authorization: str = "") -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(sys.executable, "-m", "tests.flood", url, str(count), authorization, stdout=subprocess.PIPE)


async def test_2000_wrong_passwords_do_not_stall_health_or_scans(tmp_path):
    dns = await FakeDNSServer(ZONE).start()
    hashed = bcrypt.hashpw(b"right", bcrypt.gensalt(rounds=12)).decode()  # the cost the issue measured
    (tmp_path / "web.yml").write_text(f"basic_auth_users:\n  prometheus: '{hashed}'\n")
    process, base = await start_agent(tmp_path, dns, web=str(tmp_path / "web.yml"))
    good = {"Authorization": basic("prometheus", "right")}
    try:
        async with aiohttp.ClientSession() as http:
            await wait_ready(http, base, good)  # the right password is verified once, then remembered
            attack = await flood(f"{base}/metrics", 2000, basic("prometheus", "wrong"))
            await asyncio.sleep(1.0)  # the flood is in: connections accepted, bcrypt's queue full
            latencies = []
            for _ in range(10):
                started = time.perf_counter()
                async with http.get(f"{base}/-/healthy", headers=good) as response:
                    assert response.status == 200
                latencies.append(time.perf_counter() - started)
                await asyncio.sleep(0.2)
            out, _ = await attack.communicate()
            result = json.loads(out)
            age, errors = await scan_health(http, base, good)
        print(f"\n2,000 wrong passwords in {result['seconds']} s: {result['statuses']}; /-/healthy median {statistics.median(latencies) * 1000:.1f} ms, "
              f"max {max(latencies) * 1000:.1f} ms; oldest successful scan {age:.1f} s ago (interval 2 s)")
        assert sum(result["statuses"].values()) == 2000 and set(result["statuses"]) <= {"401", "429"}, result
        assert statistics.median(latencies) < 0.1, latencies
        assert age < 8 and errors == 0, (age, errors)  # every target rescanned on time meanwhile
    finally:
        process.terminate()
        await process.wait()
        await dns.stop()


async def test_3000_slow_probes_do_not_fail_one_scheduled_scan(tmp_path):
    dns = await FakeDNSServer(ZONE, delay=slow_names).start()
    process, base = await start_agent(tmp_path, dns)
    try:
        async with aiohttp.ClientSession() as http:
            await wait_ready(http, base)
            attack = await flood(f"{base}/probe?target=slow{{i}}.nl", 3000)
            worst_age, worst_errors = 0.0, 0
            while attack.returncode is None:  # watch the scheduled scans all through the flood
                age, errors = await scan_health(http, base)
                worst_age, worst_errors = max(worst_age, age), max(worst_errors, errors)
                try:
                    await asyncio.wait_for(asyncio.shield(attack.wait()), 1.0)
                except TimeoutError:
                    pass
            result = json.loads((await attack.stdout.read()).decode())
            age, errors = await scan_health(http, base)
        print(f"\n3,000 slow probes in {result['seconds']} s: {result['statuses']}; scheduled scans: oldest success {max(worst_age, age):.1f} s, "
              f"errors {max(worst_errors, errors)} (interval 2 s)")
        assert sum(result["statuses"].values()) == 3000 and set(result["statuses"]) <= {"200", "503"}, result
        assert result["statuses"].get("200", 0) >= 8  # probes are served, up to their own limit
        assert max(worst_errors, errors) == 0 and max(worst_age, age) < 8
    finally:
        process.terminate()
        await process.wait()
        await dns.stop()
