"""The systemd units: contents, `systemd-analyze verify`, the offline sandbox score
(`systemd-analyze security --offline=yes`, Debian package `systemd`, installed by .ci/run) and
MemoryDenyWriteExecute: without systemd running here, the agent is run under the same kernel
rule (prctl PR_SET_MDWE, which systemd itself uses where the kernel has it)."""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import bcrypt
import pytest

from .knot import free_port
from .test_deploy_artifacts import ROOT, check_config, run
from .test_rangefeeds import official_files

SYSTEMD_DIR = ROOT / "deploy" / "systemd"
UNITS = ["dijkwacht.service", "dijkwacht@.service", "dijkwacht-data-update.service", "dijkwacht-data-update.timer"]


def parse_unit(path: Path) -> dict[str, list[tuple[str, str]]]:
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = line.strip("[]")
            sections.setdefault(current, [])
            continue
        key, _, value = line.partition("=")
        sections[current].append((key.strip(), value.strip()))
    return sections


def systemd_bool(value: str) -> bool:
    return value.lower() in ("1", "yes", "y", "true", "t", "on")


def unit_values(sections, section, key) -> list[str]:
    return [v for k, v in sections.get(section, []) if k == key]


HARDENING = [("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"), ("ProtectHome", "yes"), ("PrivateTmp", "yes"),
             ("CapabilityBoundingSet", ""), ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
             ("MemoryDenyWriteExecute", "yes")]


@pytest.mark.parametrize("unit", ["dijkwacht.service", "dijkwacht@.service", "dijkwacht-data-update.service"])
def test_units_are_hardened(unit):
    u = parse_unit(SYSTEMD_DIR / unit)
    for key, value in HARDENING:
        assert unit_values(u, "Service", key) == [value], (unit, key)
    assert "@system-service" in unit_values(u, "Service", "SystemCallFilter")
    assert unit_values(u, "Service", "DynamicUser") == ["yes"] and unit_values(u, "Service", "User") == ["dijkwacht"]


def test_main_unit():
    u = parse_unit(SYSTEMD_DIR / "dijkwacht.service")
    svc = lambda key: unit_values(u, "Service", key)  # noqa: E731
    assert svc("ExecStart")[0].endswith("dijkwacht run --config /etc/dijkwacht/dijkwacht.toml")
    assert svc("ExecReload") == ["/bin/kill -HUP $MAINPID"]
    assert svc("Restart") == ["on-failure"]
    assert svc("StateDirectory") == ["dijkwacht"]
    assert svc("ConfigurationDirectory") == ["dijkwacht"]
    assert unit_values(u, "Install", "WantedBy") == ["multi-user.target"]


def test_shard_template_unit():
    u = parse_unit(SYSTEMD_DIR / "dijkwacht@.service")
    svc = lambda key: unit_values(u, "Service", key)  # noqa: E731
    (start,) = svc("ExecStart")
    # %I is the unescaped instance name: dijkwacht@2-4.service -> "2/4".
    assert " --shard %I " in start and "--state-path /var/lib/dijkwacht/shard-%i/state.db" in start
    assert "--listen ${DIJKWACHT_LISTEN}" in start and svc("EnvironmentFile") == ["/etc/dijkwacht/shard-%i.env"]
    assert svc("StateDirectory") == ["dijkwacht/shard-%i dijkwacht"]
    assert svc("ExecReload") == ["/bin/kill -HUP $MAINPID"]
    escaped = subprocess.run(["systemd-escape", "--template=dijkwacht@.service", "2/4"], capture_output=True, text=True, check=True).stdout.strip()
    assert escaped == "dijkwacht@2-4.service"


def test_data_update_units():
    svc = parse_unit(SYSTEMD_DIR / "dijkwacht-data-update.service")
    assert unit_values(svc, "Service", "Type") == ["oneshot"]
    (start,) = unit_values(svc, "Service", "ExecStart")
    assert start.endswith("dijkwacht data update --data-dir /var/lib/dijkwacht/ip-ranges")
    # A partial update (exit 3) still reloads the agent and every shard.
    assert unit_values(svc, "Service", "SuccessExitStatus") == ["3"]
    (post,) = unit_values(svc, "Service", "ExecStartPost")
    assert "try-reload-or-restart dijkwacht.service dijkwacht@*.service" in post
    main = parse_unit(SYSTEMD_DIR / "dijkwacht.service")
    for key in ("StateDirectory", "User", "DynamicUser"):
        assert unit_values(svc, "Service", key) == unit_values(main, "Service", key), key
    timer = parse_unit(SYSTEMD_DIR / "dijkwacht-data-update.timer")
    assert unit_values(timer, "Timer", "OnCalendar") == ["daily"]
    assert [systemd_bool(v) for v in unit_values(timer, "Timer", "Persistent")] == [True]
    assert unit_values(timer, "Install", "WantedBy") == ["timers.target"]


def test_readme_example_config_is_accepted(tmp_path):
    text = (SYSTEMD_DIR / "README.md").read_text(encoding="utf-8")
    m = re.search(r"cat > /etc/dijkwacht/dijkwacht.toml <<'EOF'\n(.*?)\nEOF", text, re.S)
    assert m
    f = tmp_path / "dijkwacht.toml"
    f.write_text(m.group(1), encoding="utf-8")
    check_config(f)


@pytest.fixture(scope="session")
def systemd_analyze() -> str:
    path = shutil.which("systemd-analyze")
    if path is None:
        pytest.fail("systemd-analyze not found: install the Debian package 'systemd' (.ci/run does)")
    return path


@pytest.fixture
def unit_copies(tmp_path) -> Path:
    """The unit files, with the agent's path pointed at a stub executable
    (systemd-analyze verify checks that ExecStart binaries exist)."""
    stub = tmp_path / "bin" / "dijkwacht"
    stub.parent.mkdir()
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    units = tmp_path / "units"
    units.mkdir()
    for name in UNITS:
        text = (SYSTEMD_DIR / name).read_text(encoding="utf-8")
        assert "/opt/dijkwacht/bin/dijkwacht" in text or name.endswith(".timer")
        (units / name).write_text(text.replace("/opt/dijkwacht/bin/dijkwacht", str(stub)))
    assert sorted(p.name for p in SYSTEMD_DIR.iterdir() if p.suffix in (".service", ".timer")) == sorted(UNITS)
    return units


def test_systemd_analyze_verify(systemd_analyze, unit_copies):
    units = [u for u in UNITS if u != "dijkwacht@.service"] + ["dijkwacht@0-4.service"]  # an instance of the template
    res = subprocess.run([systemd_analyze, "verify", *units], cwd=unit_copies, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "SYSTEMD_UNIT_PATH": f"{unit_copies}:"})
    assert res.returncode == 0, res.stderr
    # verify exits 0 on unknown keys or bad values, only warning about them.
    assert res.stderr.strip() == "", res.stderr


@pytest.mark.parametrize("unit", ["dijkwacht.service", "dijkwacht@.service", "dijkwacht-data-update.service"])
def test_systemd_security_exposure_at_most_1_1(systemd_analyze, unit_copies, unit):
    # --threshold is on systemd's 0..100 scale: 11 means an exposure of at most 1.1.
    res = run([systemd_analyze, "security", "--offline=yes", "--threshold=11", str(unit_copies / unit)])
    assert res.returncode == 0, res.stdout + res.stderr
    level = re.search(r"Overall exposure level for \S+: (\d+\.\d)", res.stdout)
    assert level and float(level.group(1)) <= 1.1, res.stdout
    assert "✗ MemoryDenyWriteExecute=" not in res.stdout


# --------------------------------------------------------------------------
# MemoryDenyWriteExecute=yes: the agent under the kernel's W^X rule
# --------------------------------------------------------------------------

PR_SET_MDWE, PR_GET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 66, 1
# Sets the rule for this process, then execs the rest of the command line: execve keeps it.
UNDER_MDWE = [sys.executable, "-c", (
    "import ctypes, os, sys; libc = ctypes.CDLL(None, use_errno=True); "
    f"assert libc.prctl({PR_SET_MDWE}, {PR_MDWE_REFUSE_EXEC_GAIN}, 0, 0, 0) == 0, os.strerror(ctypes.get_errno()); "
    "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])")]
ENV = {**os.environ, "DIJKWACHT_DISABLE_PLUGIN_AUTOLOAD": "1"}


@pytest.fixture(scope="module")
def mdwe():
    if ctypes.CDLL(None).prctl(PR_GET_MDWE, 0, 0, 0, 0) < 0:
        pytest.fail("this kernel has no PR_SET_MDWE (Linux 6.3+), needed to check MemoryDenyWriteExecute=yes")


def test_the_rule_is_really_enforced(mdwe):
    code = ("import ctypes, mmap; assert ctypes.CDLL(None).prctl(66, 0, 0, 0, 0) == 1\n"
            "try:\n    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)\nexcept PermissionError:\n    print('refused')")
    res = run([*UNDER_MDWE, "-c", code])
    assert res.returncode == 0 and res.stdout.strip() == "refused", res.stdout + res.stderr


def test_scan_runs_under_the_rule(mdwe):
    """c-ares through cffi, the catalog, every detector: the embedded demo DNS server on 127.0.0.1."""
    res = subprocess.run([*UNDER_MDWE, "-m", "dijkwacht.cli", "scan", "--demo", "--format", "json"], capture_output=True, text=True, timeout=120, env=ENV)
    assert res.returncode == 0, res.stderr
    assert '"provider": "microsoft"' in res.stdout


def test_agent_and_data_update_run_under_the_rule(mdwe, tmp_path):
    """The HTTP server (aiohttp), bcrypt basic auth, SQLite, the range loader and the offline import."""
    data = tmp_path / "ip-ranges"
    update = subprocess.run([*UNDER_MDWE, "-m", "dijkwacht.cli", "data", "update", "--data-dir", str(data), "--from", str(official_files(tmp_path / "official"))],
                            capture_output=True, text=True, timeout=60, env=ENV)
    assert update.returncode == 0, update.stdout + update.stderr
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()
    (tmp_path / "web.yml").write_text(f"basic_auth_users:\n  prometheus: '{hashed}'\n")
    port = free_port()
    config = tmp_path / "dijkwacht.toml"
    config.write_text(f'[agent]\ndata_dir = "{data}"\n[daemon]\nlisten = "127.0.0.1:{port}"\nstate_path = "{tmp_path / "state.db"}"\n'
                      f'web_config = "{tmp_path / "web.yml"}"\n[[targets]]\ndomain = "example.nl"\n')
    agent = subprocess.Popen([*UNDER_MDWE, "-m", "dijkwacht.cli", "run", "--config", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV)
    try:
        request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers={"Authorization": "Basic cHJvbWV0aGV1czpzM2NyZXQ="})
        deadline = time.monotonic() + 30
        while True:
            try:
                text = urllib.request.urlopen(request, timeout=5).read().decode()
                break
            except OSError:
                assert agent.poll() is None and time.monotonic() < deadline, "the agent did not come up under MDWE"
                time.sleep(0.2)
        assert 'dijkwacht_ip_ranges_prefixes{provider="amazon"} 5.0' in text
        assert "dijkwacht_targets 1.0" in text
    finally:
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(timeout=20) == 0, agent.stderr.read().decode()[-2000:]

