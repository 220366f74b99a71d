"""The daemon in-process: metrics, readiness, /probe, reload with a broken config, TLS and
basic auth, graceful shutdown. (The long story -- a real DNS server, a move, kill -9 -- is
tests/test_e2e_daemon.py.)"""

from __future__ import annotations

import asyncio
import json
import base64
import ssl
import subprocess
import time

import aiohttp
import structlog.testing
import bcrypt
import pytest

from dijkwacht.daemon.agent import Daemon
from dijkwacht.daemon.server import serve
from dijkwacht.daemon.webconfig import WebConfig, load_web_config
from dijkwacht.errors import ConfigError
from dijkwacht.testing import parse_zone

# TTL 0 on the record that changes: the resolver library may cache answers for their TTL.
ZONE = """
gemeente.nl 0 MX 10 mailfilter.hostnet.nl.
gemeente.nl 0 TXT "v=spf1 include:_spf.hostnet.nl -all"
gemeente.nl NS ns1.hostnet.nl.
ziekenhuis.nl MX 0 ziekenhuis-nl.mail.protection.outlook.com.
ziekenhuis.nl TXT "v=spf1 include:spf.protection.outlook.com -all"
"""


def write_config(path, server, state, *, extra="", interval="1s"):
    path.write_text(
        f"""
[agent]
nameservers = ["{server.address}"]
dns_timeout = 0.3
dns_tries = 1
[daemon]
interval = "{interval}"
state_path = "{state}"
confirmations = 2
[[targets]]
domain = "gemeente.nl"
labels = {{ sector = "municipality" }}
[[targets]]
domain = "ziekenhuis.nl"
labels = {{ sector = "hospital", owner = "team-b" }}
{extra}
"""
    )


async def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached in time")


@pytest.fixture
async def running(dns_server, tmp_path):
    server = await dns_server(ZONE)
    config = tmp_path / "dijkwacht.toml"
    write_config(config, server, tmp_path / "state.db")
    daemon = Daemon(config)
    await daemon.start()
    runner = await serve(daemon, WebConfig(), "127.0.0.1:0", lifecycle=True)
    port = runner.addresses[0][1]
    async with aiohttp.ClientSession() as http:
        yield daemon, http, f"http://127.0.0.1:{port}", server, config
    await runner.cleanup()
    await daemon.stop()


async def test_metrics_show_dependencies_after_first_pass(running):
    daemon, http, base, _, _ = running
    async with http.get(f"{base}/-/ready") as response:
        first = response.status
    await wait_for(lambda: daemon.ready)
    assert first in (200, 503)
    async with http.get(f"{base}/-/ready") as response:
        assert response.status == 200
    async with http.get(f"{base}/metrics") as response:
        text = await response.text()
    assert 'dijkwacht_dependency_info{category="email",confidence="confirmed",foreign="true",jurisdiction="US",provider="microsoft",role="mailbox",target="ziekenhuis.nl"} 1.0' in text
    assert 'dijkwacht_foreign_dependencies{category="email",target="gemeente.nl"} 0.0' in text
    assert 'dijkwacht_foreign_dependencies{category="email",target="ziekenhuis.nl"} 1.0' in text
    assert 'dijkwacht_target_info{owner="team-b",sector="hospital",target="ziekenhuis.nl"} 1.0' in text
    assert 'dijkwacht_target_info{owner="",sector="municipality",target="gemeente.nl"} 1.0' in text
    assert 'dijkwacht_scan_errors{detector="email",target="gemeente.nl"} 0.0' in text
    assert "dijkwacht_last_successful_scan_timestamp_seconds{target=\"gemeente.nl\"}" in text
    assert 'dijkwacht_dns_queries_total{result="data"}' in text
    assert "dijkwacht_scan_duration_seconds_count" in text
    assert 'dijkwacht_build_info{python_version=' in text
    assert "dijkwacht_targets 2.0" in text
    assert "dijkwacht_scan_interval_seconds 1.0" in text and "dijkwacht_scan_confirmations 2.0" in text
    assert 'dijkwacht_shards{shard="0"} 1.0' in text  # not sharded: one shard
    assert "process_resident_memory_bytes" in text and "python_info{" in text
    assert "_created" not in text
    # Every (category, kind, reason) change counter exists before any change, so increase() sees the first.
    assert 'dijkwacht_dependency_changes_total{category="email",kind="home_to_foreign",reason="dns"} 0.0' in text
    assert 'dijkwacht_dependency_changes_total{category="dns",kind="other",reason="ownership"} 0.0' in text
    assert 'dijkwacht_dns_queries_total{result="timeout"} 0.0' in text
    assert "Results are cached from the last scan" in text
    async with http.get(f"{base}/-/healthy") as response:
        assert response.status == 200
    async with http.get(f"{base}/") as response:
        assert "Watching 2 targets" in await response.text()


async def test_probe_scans_one_domain_on_demand(running):
    _, http, base, _, _ = running
    async with http.get(f"{base}/probe", params={"target": "ZIEKENHUIS.nl."}) as response:
        assert response.status == 200
        text = await response.text()
    assert 'dijkwacht_probe_dependency_info{category="email",confidence="confirmed",foreign="true",jurisdiction="US",provider="microsoft",role="mailbox",target="ziekenhuis.nl"} 1.0' in text
    assert "dijkwacht_probe_success 1.0" in text
    # Nothing a probe answers can be mistaken for the agent's own series in a shared Prometheus.
    names = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if not line.startswith("#")}
    assert names and all(n.startswith("dijkwacht_probe_") for n in names), names
    async with http.get(f"{base}/probe", params={"target": "not a domain"}) as response:
        assert response.status == 400


async def test_reload_with_broken_config_keeps_the_old_one(running):
    daemon, http, base, _, config = running
    good = config.read_text()
    config.write_text(good + "\n[agent]\nbogus = 1\n")
    async with http.post(f"{base}/-/reload") as response:
        assert response.status == 500
        assert "dijkwacht.toml" in await response.text()
    async with http.get(f"{base}/metrics") as response:
        text = await response.text()
    assert "dijkwacht_config_last_reload_successful 0.0" in text
    assert "dijkwacht_targets 2.0" in text
    config.write_text(good.replace('[[targets]]\ndomain = "gemeente.nl"', '[[targets]]\ndomain = "school.nl"'))
    async with http.post(f"{base}/-/reload") as response:
        assert response.status == 200
    async with http.get(f"{base}/metrics") as response:
        text = await response.text()
    assert "dijkwacht_config_last_reload_successful 1.0" in text
    assert 'target="school.nl"' in text and 'target="gemeente.nl"' not in text


async def test_zone_change_is_confirmed_then_shown(running):
    daemon, http, base, server, _ = running
    await wait_for(lambda: daemon.ready)
    moved = ZONE.replace("mailfilter.hostnet.nl.", "gemeente-nl.mail.protection.outlook.com.").replace("_spf.hostnet.nl", "spf.protection.outlook.com")
    server.load(parse_zone(moved))
    await wait_for(lambda: ("gemeente.nl", "email") in daemon.snapshot.last_changes, timeout=15)
    async with http.get(f"{base}/metrics") as response:
        text = await response.text()
    assert 'dijkwacht_dependency_last_change_timestamp_seconds{category="email",from_jurisdiction="NL",from_provider="hostnet",kind="home_to_foreign",reason="dns",target="gemeente.nl",to_foreign="true",to_jurisdiction="US",to_provider="microsoft"}' in text
    assert 'dijkwacht_dependency_changes_total{category="email",kind="home_to_foreign",reason="dns"} 1.0' in text
    assert 'dijkwacht_dependency_changes_total{category="email",kind="foreign_to_foreign",reason="dns"} 0.0' in text


async def test_shutdown_is_quick_with_scans_in_flight(dns_server, tmp_path):
    server = await dns_server(ZONE, failures={"gemeente.nl": "timeout", "ziekenhuis.nl": "timeout"})
    config = tmp_path / "dijkwacht.toml"
    write_config(config, server, tmp_path / "state.db")
    config.write_text(config.read_text().replace("dns_timeout = 0.3", "dns_timeout = 20"))
    daemon = Daemon(config)
    await daemon.start()
    await asyncio.sleep(0.3)
    assert daemon._inflight
    started = time.monotonic()
    await daemon.stop(grace=1.0)
    assert time.monotonic() - started < 3


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _certificate(tmp_path):
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-days", "1",
         "-keyout", str(tmp_path / "key.pem"), "-out", str(tmp_path / "cert.pem")],
        check=True, capture_output=True,
    )


async def test_tls_and_basic_auth(dns_server, tmp_path):
    _certificate(tmp_path)
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode().replace("$2b$", "$2y$")
    web = tmp_path / "web.yml"
    web.write_text(f"tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\nbasic_auth_users:\n  prometheus: '{hashed}'\n")
    server = await dns_server(ZONE)
    config = tmp_path / "dijkwacht.toml"
    write_config(config, server, tmp_path / "state.db")
    daemon = Daemon(config)
    await daemon.start()
    runner = await serve(daemon, load_web_config(web), "127.0.0.1:0")
    port = runner.addresses[0][1]
    client_tls = ssl.create_default_context(cafile=str(tmp_path / "cert.pem"))
    client_tls.check_hostname = False
    try:
        async with aiohttp.ClientSession() as http:
            url = f"https://127.0.0.1:{port}/metrics"
            async with http.get(url, ssl=client_tls) as response:
                assert response.status == 401
                assert "Basic" in response.headers["WWW-Authenticate"]
            async with http.get(url, ssl=client_tls, headers={"Authorization": basic("prometheus", "wrong")}) as response:
                assert response.status == 401
            async with http.get(url, ssl=client_tls, headers={"Authorization": basic("prometheus", "s3cret")}) as response:
                assert response.status == 200
                assert "dijkwacht_build_info" in await response.text()
            with pytest.raises(aiohttp.ClientError):
                async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
                    await response.read()
    finally:
        await runner.cleanup()
        await daemon.stop()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("basic_auth_users:\n  bob: plaintext\n", "needs a bcrypt hash"),
        ("tls_server_config:\n  cert_file: nope.pem\n", "key_file: is required"),
        ("tls_server_config:\n  cert_file: nope.pem\n  key_file: nope.pem\n", "cannot load certificate"),
        ("tls_server_config: [\n", "invalid YAML"),
        ("bogus: 1\n", "unknown key"),
    ],
)
def test_bad_web_config(tmp_path, text, message):
    path = tmp_path / "web.yml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_web_config(path)


async def test_cached_per_target_rendering_is_identical_to_prometheus_client(running):
    from prometheus_client import generate_latest

    from dijkwacht.daemon.metrics import _Once

    daemon, _, _, _, _ = running
    await wait_for(lambda: daemon.ready)
    renderer = daemon.per_target
    views = list(daemon.snapshot.views.values())
    expected = generate_latest(_Once(renderer._families(views)))
    assert renderer.render() == expected
    assert renderer.render() == expected  # from the cache now
    assert all(v.rendered is not None for v in views)


async def test_category_failing_before_any_baseline_is_absent_not_zero(dns_server, tmp_path):
    server = await dns_server(ZONE, failures={("gemeente.nl", "MX"): "servfail"})
    config = tmp_path / "dijkwacht.toml"
    write_config(config, server, tmp_path / "state.db")
    daemon = Daemon(config)
    await daemon.start()
    try:
        await wait_for(lambda: daemon.ready)
        text = daemon.metrics().decode()
        assert 'dijkwacht_foreign_dependencies{category="email",target="gemeente.nl"}' not in text
        assert 'dijkwacht_foreign_dependencies{category="dns",target="gemeente.nl"} 0.0' in text
        assert 'dijkwacht_foreign_dependencies{category="email",target="ziekenhuis.nl"} 1.0' in text
    finally:
        await daemon.stop()


async def test_reload_failures_of_any_kind_keep_the_old_config_and_say_so(running, monkeypatch):
    daemon, http, base, _, config = running
    good = config.read_text()
    for broken, expected in [
        (good.replace('nameservers = ["', 'nameservers = ["fe80::1%lo", "'), "zone ids"),
        (good.replace('interval = "1s"', "interval = nan"), "must be a finite duration"),
        (good.replace('sector = "municipality"', '__name__ = "x"'), "is reserved"),
    ]:
        config.write_text(broken)
        async with http.post(f"{base}/-/reload") as response:
            assert response.status == 500
            assert expected in await response.text()
        assert "dijkwacht_config_last_reload_successful 0.0" in daemon.metrics().decode()
    # An unforeseen failure (a bug) is handled the same way, and counted.
    config.write_text(good)
    monkeypatch.setattr("dijkwacht.daemon.agent.load_config_with_plugins", lambda path, **_: 1 / 0)
    with structlog.testing.capture_logs() as logs:
        async with http.post(f"{base}/-/reload") as response:
            assert response.status == 500
            assert await response.text() == "ZeroDivisionError: division by zero\n"
    assert [(e["event"], e["error"]) for e in logs] == [("config.reload_failed", "ZeroDivisionError: division by zero")]
    text = daemon.metrics().decode()
    assert 'dijkwacht_internal_errors_total{where="reload"} 1.0' in text
    assert "dijkwacht_config_last_reload_successful 0.0" in text and "dijkwacht_targets 2.0" in text


async def test_targets_file_problems_are_logged_at_start_and_reload(dns_server, tmp_path, capsys):
    server = await dns_server(ZONE)
    (tmp_path / "targets.txt").write_bytes(b"school.nl\ncaf\xe9.nl\nschool.nl owner=x\n")
    config = tmp_path / "dijkwacht.toml"
    write_config(config, server, tmp_path / "state.db")
    config.write_text(config.read_text().replace("[daemon]", 'targets_file = "targets.txt"\n[daemon]'))
    daemon = Daemon(config)
    await daemon.start()  # (the agent configures its own logging: JSON lines on stderr here)
    assert (await daemon.reload())[0]
    try:
        logs = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
        problems = [(e["line"], e["error"].split(" (")[0]) for e in logs if e["event"] == "target.invalid"]
        assert problems == [(2, "not valid UTF-8"), (3, f"school.nl repeats {tmp_path / 'targets.txt'}:1; the first is kept")] * 2
        assert sorted(daemon.targets) == ["gemeente.nl", "school.nl", "ziekenhuis.nl"]
    finally:
        await daemon.stop()


async def test_a_handler_failure_is_one_line_a_500_and_counted(running, monkeypatch):
    daemon, http, base, _, _ = running
    monkeypatch.setattr(daemon.per_target, "render", lambda: (_ for _ in ()).throw(KeyError("boom")))
    with structlog.testing.capture_logs() as logs:
        async with http.get(f"{base}/metrics") as response:
            assert response.status == 500
            assert await response.text() == "internal error (logged)\n"
    assert [(e["event"], e["path"], e["error"]) for e in logs] == [("http.error", "/metrics", "KeyError: 'boom'")]
    monkeypatch.undo()
    assert 'dijkwacht_internal_errors_total{where="http"} 1.0' in daemon.metrics().decode()


async def test_reload_during_a_probe_does_not_close_its_resolver(dns_server, tmp_path):
    server = await dns_server(ZONE, failures={"slow.nl": "timeout"})
    config = tmp_path / "dijkwacht.toml"
    write_config(config, server, tmp_path / "state.db")
    config.write_text(config.read_text().replace("dns_timeout = 0.3", "dns_timeout = 1.0"))
    daemon = Daemon(config)
    await daemon.start()
    try:
        probe = asyncio.create_task(daemon.probe("slow.nl"))
        await asyncio.sleep(0.3)
        for _ in range(3):  # as the daily data update does
            assert (await daemon.reload())[0]
        result = await probe
        messages = [e.message for e in result.errors]
        assert messages and all("TIMEOUT" in m for m in messages), messages
        assert not any("closed" in m or "KeyError" in m for m in messages)
    finally:
        await daemon.stop()


async def test_probes_have_their_own_limit(dns_server, tmp_path):
    from dijkwacht.daemon.agent import PROBE_QUEUE, ProbeRefused

    server = await dns_server(ZONE, failures={"slow.nl": "timeout"})
    config = tmp_path / "dijkwacht.toml"
    write_config(config, server, tmp_path / "state.db", extra="")
    config.write_text(config.read_text().replace("confirmations = 2", "confirmations = 2\nprobe_concurrency = 2"))
    daemon = Daemon(config)
    await daemon.start()
    try:
        capacity = 2 * (PROBE_QUEUE + 1)
        probes = [asyncio.create_task(daemon.probe("slow.nl")) for _ in range(capacity)]
        await asyncio.sleep(0.1)
        with pytest.raises(ProbeRefused, match="probe_concurrency = 2"):
            await daemon.probe("slow.nl")
        for task in probes:
            task.cancel()
        await asyncio.gather(*probes, return_exceptions=True)
        assert daemon._probes_waiting == 0
    finally:
        await daemon.stop()


async def test_state_write_failures_are_counted_and_logged_once_per_run(running, monkeypatch):
    import sqlite3

    daemon, _, _, _, _ = running
    await wait_for(lambda: daemon.ready)
    real = daemon.state.record

    def full(*args, **kwargs):
        raise sqlite3.OperationalError("database or disk is full")

    with structlog.testing.capture_logs() as logs:
        monkeypatch.setattr(daemon.state, "record", full)
        await wait_for(lambda: daemon.faults.state_writes >= 4)
        monkeypatch.setattr(daemon.state, "record", real)
        await wait_for(lambda: any(e["event"] == "state.write_recovered" for e in logs))
    events = [e for e in logs if e["event"].startswith("state.")]
    assert [e["event"] for e in events] == ["state.write_failed", "state.write_recovered"]
    assert events[0]["error"] == "database or disk is full" and events[1]["failed"] >= 4
    assert f"dijkwacht_state_write_errors_total {float(daemon.faults.state_writes)}" in daemon.metrics().decode()
