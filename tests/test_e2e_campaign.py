"""End to end: `dijkwacht scan` campaigns against Knot DNS, through a proxy that records when
every query arrived (and can refuse like a rate-limited public resolver): the rate limit, the
backoff and retry, Ctrl-C and --resume, progress on a terminal and without one."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import signal
import struct
import subprocess
import sys
import termios
import time

import pytest

from .knot import Knot
from .qpsproxy import CountingProxy

pytestmark = pytest.mark.e2e
DOMAINS = [f"d{i}.nl" for i in range(2000)]
ZONE = "".join(
    f"{d} MX 10 {d.replace('.', '-')}.mail.protection.outlook.com\n"
    f'{d} TXT "v=spf1 include:spf.protection.outlook.com -all"\n'
    for d in DOMAINS
)
DIJKWACHT = [sys.executable, "-m", "dijkwacht.cli", "scan"]
ENV = {**os.environ, "DIJKWACHT_DISABLE_PLUGIN_AUTOLOAD": "1"}


@pytest.fixture(scope="module")
def knot(tmp_path_factory):
    server = Knot(tmp_path_factory.mktemp("knot"), ZONE, []).start()
    yield server
    server.stop()


def targets_file(tmp_path, n: int):
    path = tmp_path / f"targets-{n}.txt"
    path.write_text("".join(f"{d} sector={'gemeente' if i % 2 else 'provincie'}\n" for i, d in enumerate(DOMAINS[:n])))
    return str(path)


def scan(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*DIJKWACHT, *args], capture_output=True, text=True, timeout=timeout, env=ENV)


def lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_max_qps_caps_every_second_of_all_workers_together(knot, tmp_path):
    with CountingProxy(knot.address) as proxy:
        out = tmp_path / "out.jsonl"
        done = scan("--nameserver", proxy.address, "--targets-file", targets_file(tmp_path, 200), "--workers", "2",
                    "--max-qps", "500", "--format", "jsonl", "--output", str(out), "--quiet", "--stats")
    assert done.returncode == 0, done.stderr
    results = lines(out)
    assert [r["target"] for r in results] == DOMAINS[:200]
    assert all(not r["errors"] for r in results)
    assert len(proxy.arrivals) >= 2000  # several seconds at the limit
    assert proxy.busiest_second() <= 550, proxy.busiest_second()
    assert "rate: limit 500 q/s (2 worker(s) x 250)" in done.stderr


def test_a_refusing_resolver_makes_the_scan_back_off_and_retry(knot, tmp_path):
    targets = targets_file(tmp_path, 40)
    outcome = {}
    for name, rate in (("fast", "800"), ("below", "150")):
        summary = tmp_path / f"{name}.json"
        with CountingProxy(knot.address, refuse_above=200) as proxy:
            done = scan("--nameserver", proxy.address, "--targets-file", targets, "--max-qps", rate, "--quiet",
                        "--format", "jsonl", "--output", str(tmp_path / f"{name}.jsonl"), "--summary-json", str(summary))
        assert done.returncode == 0, done.stderr
        results = lines(tmp_path / f"{name}.jsonl")
        assert [r["target"] for r in results] == DOMAINS[:40]  # input order, retried targets in their place
        outcome[name] = (json.loads(summary.read_text()), proxy.refused, {r["target"] for r in results if r["errors"]})
    fast, fast_refused, fast_failed = outcome["fast"]
    below, below_refused, below_failed = outcome["below"]
    assert fast_refused > 0 and below_refused == 0
    assert fast["scan"]["backoffs"] >= 1 and fast["scan"]["lowest_qps"] <= 400
    assert fast["scan"]["retried"] >= 1 and fast["retried"] == fast["scan"]["retried"]
    assert fast["scan"]["retry_qps"] < 800
    assert len(fast_failed) <= len(below_failed)
    assert set(fast["still_failed"]) == fast_failed  # the output names them (here every error is a refusal)
    assert fast["targets"] == below["targets"] == 40


def test_interrupted_scan_resumes_to_exactly_the_uninterrupted_result(knot, tmp_path):
    targets = targets_file(tmp_path, 2000)
    common = ["--nameserver", knot.address, "--targets-file", targets, "--detector", "email", "--max-qps", "2000", "--format", "jsonl"]
    out = tmp_path / "campaign.jsonl"
    err = (tmp_path / "interrupted.stderr").open("w")
    proc = subprocess.Popen([*DIJKWACHT, *common, "--output", str(out), "--quiet"], stdout=subprocess.DEVNULL, stderr=err, env=ENV,
                            start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not out.exists() or out.read_text().count("\n") < 200):
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGINT)  # as Ctrl-C does: the whole process group, workers too
    assert proc.wait(timeout=60) == 130
    err.close()
    partial = lines(out)  # every line complete and valid
    assert 200 <= len(partial) < 2000
    assert f"--resume --output {out}" in (tmp_path / "interrupted.stderr").read_text()
    with out.open("a") as f:
        f.write('{"target": "d1999.nl", "depend')  # as if a crash had cut the last write short

    resumed = scan(*common, "--output", str(out), "--resume", "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    full = scan(*common, "--output", str(tmp_path / "full.jsonl"), "--quiet")
    assert full.returncode == 0, full.stderr

    got = lines(out)
    assert len(got) == 2000 and sorted(r["target"] for r in got) == sorted(DOMAINS)
    expected = {r["target"]: r for r in lines(tmp_path / "full.jsonl")}
    for r in [*got, *expected.values()]:
        r.pop("retried", None)  # a packet Knot dropped in one run and not the other
    assert {r["target"]: r for r in got} == expected


def _pty_run(args: list[str], stdout) -> str:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 160, 0, 0))
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=stdout, stderr=slave, env=ENV)
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the process closed its end
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    assert proc.wait(timeout=120) == 0
    return b"".join(chunks).decode("utf-8", "replace")


def test_progress_is_a_bar_on_a_terminal_log_lines_without_and_nothing_when_quiet(knot, tmp_path):
    args = [*DIJKWACHT, "--nameserver", knot.address, "--targets-file", targets_file(tmp_path, 150), "--max-qps", "1000", "--format", "jsonl"]
    with (tmp_path / "tty.jsonl").open("w") as stdout:
        terminal = _pty_run(args, stdout)
    assert len(lines(tmp_path / "tty.jsonl")) == 150
    assert "scan: 100%|" in terminal and "150/150 targets" in terminal and "ETA" in terminal
    assert "q/s" in terminal and "limit 1000 q/s" in terminal and "with errors" in terminal
    assert "scan.progress" not in terminal
    assert "150 targets: 150 with a foreign dependency" in terminal  # the summary

    piped = subprocess.run([*args, "--progress-interval", "0.5"], capture_output=True, text=True, timeout=120, env=ENV)
    assert piped.returncode == 0
    assert "\r" not in piped.stderr and "%|" not in piped.stderr
    progress = [json.loads(line) for line in piped.stderr.splitlines() if '"scan.progress"' in line]
    assert progress and {"done", "total", "qps", "limit", "errors", "eta_s", "percent"} <= set(progress[-1])
    assert progress[-1]["total"] == 150

    quiet = subprocess.run([*args, "--progress-interval", "0.5", "--quiet"], capture_output=True, text=True, timeout=120, env=ENV)
    assert quiet.returncode == 0
    assert "scan.progress" not in quiet.stderr and "targets:" not in quiet.stderr
