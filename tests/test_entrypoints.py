"""Every way in ends in one clear line, never a traceback or a hang: a closed pipe, an oversized
or malformed request, SIGTERM with slow probes in flight, a second agent on one state file."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from .knot import free_port

DIJKWACHT = [sys.executable, "-m", "dijkwacht.cli"]
ENV = {**os.environ, "DIJKWACHT_DISABLE_PLUGIN_AUTOLOAD": "1"}


def test_closed_pipe_is_a_clean_exit():
    """`scan --demo | head -c10`: the reader is gone before the scan has written; exit 0, silent."""
    for args in (["scan", "--demo"], ["scan", "--demo", "--format", "table"], ["--help"], ["catalog"]):
        process = subprocess.Popen([*DIJKWACHT, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
        process.stdout.close()
        _, err = process.communicate(timeout=60)
        assert process.returncode == 0, (args, err)
        assert not any(word in err for word in (b"Broken pipe", b"Traceback", b"Exception ignored", b"Errno")), (args, err)


def test_an_internal_error_is_one_line_with_status_70(monkeypatch, capsys):
    from dijkwacht import cli, cli_plugins

    monkeypatch.setattr(cli_plugins, "run", lambda args: {}["missing"])
    assert cli.main(["plugins"]) == 70
    err = capsys.readouterr().err
    assert err == "dijkwacht: internal error: KeyError: 'missing' (please report it)\n"


class Agent:
    def __init__(self, tmp_path, nameserver: str, *, daemon: str = "") -> None:
        self.port = free_port()
        self.config = tmp_path / f"agent-{self.port}.toml"
        self.config.write_text(
            f'[agent]\nnameservers = ["{nameserver}"]\ndns_timeout = 20\ndns_tries = 2\n'
            f'[daemon]\nlisten = "127.0.0.1:{self.port}"\ninterval = "1s"\nstate_path = "{tmp_path / "state.db"}"\n{daemon}\n'
            '[[targets]]\ndomain = "gemeente.nl"\n[[targets]]\ndomain = "ziekenhuis.nl"\n'
        )
        self.log = tmp_path / f"agent-{self.port}.log"
        self.process = subprocess.Popen([*DIJKWACHT, "run", "--config", str(self.config)], stdout=subprocess.DEVNULL, stderr=open(self.log, "wb"), env=ENV)
        self.base = f"http://127.0.0.1:{self.port}"

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.base}/-/healthy", timeout=2):
                    return
            except OSError:
                assert self.process.poll() is None, self.log.read_text()
                time.sleep(0.1)
        raise AssertionError("agent not healthy")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def silent_nameserver():
    """A UDP and TCP port that takes queries and never answers: every lookup waits out its timeout."""
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", udp.getsockname()[1]))
    tcp.listen(64)
    yield f"127.0.0.1:{udp.getsockname()[1]}"
    udp.close()
    tcp.close()


@pytest.mark.e2e
def test_sigterm_with_slow_probes_and_scans_in_flight_exits_within_10_seconds(tmp_path, silent_nameserver):
    agent = Agent(tmp_path, silent_nameserver)
    try:
        agent.wait_healthy()
        answers: list[int] = []

        def probe(i: int) -> None:
            try:
                with urllib.request.urlopen(f"{agent.base}/probe?target=slow{i}.nl", timeout=90) as response:
                    answers.append(response.status)
            except OSError:
                answers.append(0)

        threads = [threading.Thread(target=probe, args=(i,), daemon=True) for i in range(6)]
        for thread in threads:
            thread.start()
        time.sleep(1.0)  # probes and both scheduled scans now wait on 20 s DNS timeouts
        started = time.monotonic()
        agent.process.send_signal(signal.SIGTERM)
        assert agent.process.wait(timeout=30) == 0
        took = time.monotonic() - started
        print(f"\nSIGTERM with 6 probes and 2 scans waiting on 20 s DNS timeouts: exit 0 after {took:.1f} s")
        assert took < 10, took
        log = agent.log.read_text()
        assert "agent.stopped" in log and "Traceback" not in log
    finally:
        agent.stop()


BAD_REQUESTS = (
    b"GET /" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 10_000 + b"\r\n\r\n",
    b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(500)) + b"\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n",
)


def _send(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(request)
        return conn.recv(100)


async def test_bad_requests_are_a_rate_limited_warning_not_an_error_per_request(monkeypatch, capsys):
    """Any client can send a malformed request, unauthenticated: each is a debug event, and the
    warning that says so comes at most once per BAD_REQUESTS_EVERY, with a count."""
    import asyncio

    from aiohttp import web

    from dijkwacht import logs

    monkeypatch.setattr(logs, "_BAD_REQUESTS", logs._BadRequests())
    logs.configure("info", json=True)
    async def ok(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", ok)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        capsys.readouterr()
        for request in BAD_REQUESTS * 5:
            assert (await asyncio.to_thread(_send, port, request))[8:13] == b" 400 "
        events = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
        assert [(e["level"], e["event"], e["count"], e["last_peer"]) for e in events] == [("warning", "http.bad_requests", 1, "127.0.0.1")]
        assert events[0]["last_error"].startswith("LineTooLong: ")
        logs._BAD_REQUESTS.last -= logs.BAD_REQUESTS_EVERY  # a minute later
        await asyncio.to_thread(_send, port, BAD_REQUESTS[3])
        [event] = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
        assert (event["event"], event["count"]) == ("http.bad_requests", len(BAD_REQUESTS) * 5)  # 19 counted in between, and this one
        assert event["last_error"].startswith("BadHttpMessage: ")
        logs.configure("debug", json=True)
        await asyncio.to_thread(_send, port, BAD_REQUESTS[0])
        [event] = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
        assert (event["level"], event["logger"], event["event"]) == ("debug", "aiohttp.server", "Error handling request from 127.0.0.1")
    finally:
        await runner.cleanup()
        logs.configure("info")


@pytest.mark.e2e
def test_oversized_requests_leave_one_line_log_entries(tmp_path, silent_nameserver):
    agent = Agent(tmp_path, silent_nameserver)
    try:
        agent.wait_healthy()
        for request in (*BAD_REQUESTS, b"\x16\x03\x01\x02\x00garbage, as a TLS client would send\r\n\r\n"):
            _send(agent.port, request)  # aiohttp answers 400 or closes
        time.sleep(0.5)
        agent.process.send_signal(signal.SIGTERM)
        agent.process.wait(timeout=20)
        lines = agent.log.read_text().splitlines()
        events = [json.loads(line) for line in lines]  # every line is one JSON event
        assert "Traceback" not in agent.log.read_text()
        assert [e for e in events if e["level"] == "error"] == []
        [bad] = [e for e in events if e["event"] == "http.bad_requests"]  # one line for them all
        assert bad["level"] == "warning" and bad["count"] == 1 and bad["last_error"].startswith("LineTooLong: ")
    finally:
        agent.stop()


@pytest.mark.e2e
def test_a_second_agent_on_the_same_state_is_refused(tmp_path, silent_nameserver):
    first = Agent(tmp_path, silent_nameserver)
    try:
        first.wait_healthy()
        second = Agent(tmp_path, silent_nameserver)
        assert second.process.wait(timeout=30) == 2
        err = second.log.read_text()
        assert err.count("\n") == 1 and f"is in use by another dijkwacht agent (pid {first.process.pid}" in err
    finally:
        first.stop()


@pytest.mark.e2e
def test_sighup_rotates_the_tls_certificate(tmp_path, silent_nameserver):
    import ssl

    from .test_webconfig import certificate

    certificate(tmp_path, "server", cn="first")
    (tmp_path / "web.yml").write_text("tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n")
    agent = Agent(tmp_path, silent_nameserver, daemon=f'web_config = "{tmp_path / "web.yml"}"')

    def served() -> str:
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", agent.port), timeout=5) as raw, context.wrap_socket(raw) as tls:
                    return ssl.DER_cert_to_PEM_cert(tls.getpeercert(binary_form=True))
            except OSError:
                assert time.monotonic() < deadline and agent.process.poll() is None, agent.log.read_text()
                time.sleep(0.2)

    try:
        first = served()
        assert first == (tmp_path / "server.pem").read_text()
        certificate(tmp_path, "server", cn="second")
        agent.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 20
        while served() == first:
            assert time.monotonic() < deadline, agent.log.read_text()
            time.sleep(0.2)
        assert served() == (tmp_path / "server.pem").read_text()
    finally:
        agent.stop()
