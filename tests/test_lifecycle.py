"""The agent's web and life cycle the Prometheus way: /-/reload only with
--web.enable-lifecycle, basic auth on everything but /-/healthy, `listen = ":PORT"` on both
address families; reload when an input file changes; the missing-data signal for IP ranges."""

from __future__ import annotations

import asyncio
import gzip
import socket
import sqlite3

import aiohttp
import bcrypt
import pytest

from dijkwacht.daemon.agent import Daemon
from dijkwacht.daemon.server import serve
from dijkwacht.daemon.webconfig import WebConfig, load_web_config
from dijkwacht.asn import FEED as ASN_FEED
from dijkwacht.rangefeeds import FEEDS

from .knot import free_port
from .test_daemon import ZONE, basic, wait_for, write_config


@pytest.fixture
async def agent(dns_server, tmp_path):
    """Factory: `await agent(web_config=..., lifecycle=..., listen=..., extra=...)` -> (daemon, base URL)."""
    server = await dns_server(ZONE)
    started = []

    async def start(web=WebConfig(), lifecycle=False, listen="127.0.0.1:0", extra="", interval="1s"):
        config = tmp_path / "dijkwacht.toml"
        write_config(config, server, tmp_path / "state.db", extra=extra, interval=interval)
        daemon = Daemon(config)
        await daemon.start()
        runner = await serve(daemon, web, listen, lifecycle=lifecycle)
        started.append((daemon, runner))
        port = runner.addresses[0][1]
        return daemon, f"http://127.0.0.1:{port}", port

    yield start
    for daemon, runner in started:
        await runner.cleanup()
        await daemon.stop()


async def test_reload_endpoint_is_off_unless_lifecycle_is_enabled(agent):
    daemon, base, _ = await agent()
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{base}/-/reload") as response:
            assert response.status == 403
            assert "--web.enable-lifecycle" in await response.text()
        async with http.get(f"{base}/-/healthy") as response:
            assert response.status == 200


async def test_reload_endpoint_with_lifecycle(agent):
    daemon, base, _ = await agent(lifecycle=True)
    before = daemon.snapshot.reload_success_time
    await asyncio.sleep(0.01)
    async with aiohttp.ClientSession() as http, http.post(f"{base}/-/reload") as response:
        assert response.status == 200
    assert daemon.snapshot.reload_success_time > before


async def test_basic_auth_covers_everything_but_liveness(agent, tmp_path):
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()
    web = tmp_path / "web.yml"
    web.write_text(f"basic_auth_users:\n  prometheus: '{hashed}'\n")
    daemon, base, _ = await agent(web=load_web_config(web), lifecycle=True)
    good = {"Authorization": basic("prometheus", "s3cret")}
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/-/healthy") as response:
            assert response.status == 200
        for method, path in [("GET", "/metrics"), ("GET", "/-/ready"), ("GET", "/"), ("GET", "/probe?target=gemeente.nl"), ("POST", "/-/reload")]:
            async with http.request(method, base + path) as response:
                assert response.status == 401, path
        async with http.post(f"{base}/-/reload", headers=good) as response:
            assert response.status == 200
        async with http.get(f"{base}/metrics", headers=good) as response:
            assert response.status == 200


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


async def test_listen_on_port_only_serves_both_families(agent):
    port = free_port()
    daemon, _, _ = await agent(listen=f":{port}")
    hosts = ["127.0.0.1"] + (["[::1]"] if _ipv6_loopback() else [])
    assert len(hosts) == 2, "the test namespace has no IPv6 loopback"
    async with aiohttp.ClientSession() as http:
        for host in hosts:
            async with http.get(f"http://{host}:{port}/-/healthy") as response:
                assert response.status == 200, host


async def test_config_change_is_reloaded_without_a_restart(agent, tmp_path):
    daemon, _, _ = await agent()
    await wait_for(lambda: daemon.ready)
    watcher = asyncio.create_task(daemon.watch(0.1))
    try:
        config = tmp_path / "dijkwacht.toml"
        config.write_text(config.read_text() + '\n[[targets]]\ndomain = "nieuw.nl"\n')
        await wait_for(lambda: "nieuw.nl" in daemon.targets, timeout=10)
        assert daemon.snapshot.reload_ok
        # A broken edit keeps the running configuration and is not retried in a loop.
        config.write_text(config.read_text() + "\n[agent]\nbogus = 1\n")
        await wait_for(lambda: not daemon.snapshot.reload_ok, timeout=10)
        assert "nieuw.nl" in daemon.targets
    finally:
        daemon._stopping.set()
        await watcher


async def test_new_range_file_is_loaded_without_a_restart(agent, tmp_path):
    data = tmp_path / "ip-ranges"
    data.mkdir()
    daemon, _, _ = await agent(extra="", interval="1h")
    config = tmp_path / "dijkwacht.toml"
    config.write_text(config.read_text().replace("[agent]\n", f'[agent]\ndata_dir = "{data}"\n', 1))
    await daemon.reload()
    watcher = asyncio.create_task(daemon.watch(0.1))
    try:
        (data / "amazon.txt").write_text("# fetched: 2026-11-30T00:00:00+00:00\n192.0.2.0/24\n")
        await wait_for(lambda: 'dijkwacht_ip_ranges_prefixes{provider="amazon"} 1.0' in daemon.metrics().decode(), timeout=10)
    finally:
        daemon._stopping.set()
        await watcher


async def test_new_ip_to_as_table_is_loaded_without_a_restart(agent, tmp_path):
    data = tmp_path / "ip-ranges"
    data.mkdir()
    daemon, _, _ = await agent(extra="", interval="1h")
    config = tmp_path / "dijkwacht.toml"
    config.write_text(config.read_text().replace("[agent]\n", f'[agent]\ndata_dir = "{data}"\n', 1))
    await daemon.reload()
    watcher = asyncio.create_task(daemon.watch(0.1))
    try:
        rows = "192.0.2.0\t192.0.2.255\t64500\tNL\tEXAMPLE-AS\n198.51.100.0\t198.51.100.255\t64501\tAT\tOTHER-AS\n"
        (data / "ip2asn-combined.tsv.gz").write_bytes(gzip.compress(rows.encode()))
        await wait_for(lambda: 'dijkwacht_ip_ranges_prefixes{provider="ip2asn"} 2.0' in daemon.metrics().decode(), timeout=10)
        assert daemon.data.ranges.origin("198.51.100.7").country == "AT"
    finally:
        daemon._stopping.set()
        await watcher


async def test_missing_ip_data_is_exported_as_never_updated(agent, tmp_path):
    data = tmp_path / "ip-ranges"
    data.mkdir()
    (data / "google.txt").write_text("# fetched: 2026-11-30T00:00:00+00:00\n")  # empty: as bad as missing
    (data / "fastly.txt").write_text("# fetched: 2026-11-30T00:00:00+00:00\n192.0.2.0/24\n")
    daemon, _, _ = await agent()
    config = tmp_path / "dijkwacht.toml"
    config.write_text(config.read_text().replace("[agent]\n", f'[agent]\ndata_dir = "{data}"\n', 1))
    await daemon.reload()
    text = daemon.metrics().decode()
    for provider in (*FEEDS, ASN_FEED):  # the IP-to-AS table too: no file, so never updated
        fine = provider == "fastly"
        assert (f'dijkwacht_ip_ranges_prefixes{{provider="{provider}"}} {"1.0" if fine else "0.0"}') in text, provider
        updated = f'dijkwacht_ip_ranges_updated_timestamp_seconds{{provider="{provider}"}} 0.0'
        assert (updated in text) is not fine, provider


async def test_targets_no_longer_scanned_are_forgotten_at_start(dns_server, tmp_path):
    """A stale row (a target since removed, or moved to another shard) must not produce
    changes: an ownership change in the catalog would otherwise count for it."""
    server = await dns_server(ZONE)
    config = tmp_path / "dijkwacht.toml"
    state = tmp_path / "state.db"
    write_config(config, server, state)
    daemon = Daemon(config)
    await daemon.start()
    await wait_for(lambda: daemon.ready)
    await daemon.stop()
    db = sqlite3.connect(state)
    for table in ("scans", "baselines", "dependencies"):  # copies of gemeente.nl's rows as weg.nl's
        db.execute(f"CREATE TEMP TABLE copy AS SELECT * FROM {table} WHERE target = 'gemeente.nl'")
        db.execute("UPDATE copy SET target = 'weg.nl'")
        db.execute(f"INSERT INTO {table} SELECT * FROM copy")
        db.execute("DROP TABLE copy")
    db.execute("UPDATE dependencies SET jurisdiction = 'XX' WHERE target = 'weg.nl'")  # so the catalog "moves" it
    db.commit()
    db.close()
    daemon = Daemon(config)
    await daemon.start()
    try:
        assert not daemon.snapshot.changes_total
        remaining = sqlite3.connect(state).execute("SELECT COUNT(*) FROM dependencies WHERE target = 'weg.nl'").fetchone()[0]
        assert remaining == 0
    finally:
        await daemon.stop()
