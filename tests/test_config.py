"""Configuration: valid files load into typed settings; each bad-config fixture fails with file,
line and key named (one fixture per validation rule, in tests/bad_configs/)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from dijkwacht.config import load_config, parse_duration, parse_nameserver
from dijkwacht.errors import ConfigError
from dijkwacht.runtime import load_config_with_plugins

BAD = sorted((Path(__file__).parent / "bad_configs").glob("*.toml"))


def test_there_is_a_fixture_per_rule():
    assert len(BAD) >= 20


@pytest.mark.parametrize("path", BAD, ids=lambda p: p.stem)
def test_bad_config_is_rejected_with_location(path, plugin_host):
    expected = re.match(r"# expect: (.*)", path.read_text().splitlines()[0]).group(1)
    with pytest.raises(ConfigError) as info:
        load_config_with_plugins(path, plugin_host)
    message = str(info.value)
    line = re.match(r"line (\d+): (.*)", expected)
    if line:  # "line N: key: message" means the error must read "<file>:N: key: message"
        expected = f"{path}:{line.group(1)}: {line.group(2)}"
    assert message.startswith(str(path)), message
    assert expected in message, message


def test_full_config_loads(tmp_path):
    (tmp_path / "targets.txt").write_text("# municipalities\nGemeente.NL. sector=municipality\nbad..name\nzürich.ch\n")
    (tmp_path / "ranges").mkdir()
    path = tmp_path / "dijkwacht.toml"
    path.write_text(
        """
[agent]
home = ["EEA", "ch"]
nameservers = ["127.0.0.1:5353", "::1", "[::1]:53"]
data_dir = "ranges"
dns_timeout = 1.5
http_probe = true
targets_file = "targets.txt"

[daemon]
interval = "1h30m"
confirmations = 3
listen = "127.0.0.1:9849"

[detectors.cdn]
hosts = ["portal"]

[[targets]]
domain = "Example.NL."
labels = { sector = "ministry", owner = "team-a" }
hosts = ["intranet"]
"""
    )
    config, data = load_config_with_plugins(path, None)
    agent = config.agent
    assert agent.home_codes >= {"NL", "NO", "IS", "LI", "CH"}
    assert "US" not in agent.home_codes
    assert agent.nameservers == ("127.0.0.1:5353", "[::1]:53", "[::1]:53")
    assert agent.data_dir == str(tmp_path / "ranges")
    assert agent.dns_timeout == 1.5 and agent.http_probe is True
    assert config.daemon.interval == 5400 and config.daemon.confirmations == 3
    assert config.detectors["cdn"] == {"hosts": ["portal"]}
    domains = [t.domain for t in config.targets]
    assert domains == ["example.nl", "gemeente.nl", "xn--zrich-kva.ch"]
    assert config.targets[0].labels == {"sector": "ministry", "owner": "team-a"}
    assert config.targets[0].hosts == ("intranet",)
    assert config.targets[1].labels == {"sector": "municipality"}
    assert [(p.line, "bad..name" in p.message) for p in config.problems] == [(3, True)]


def test_defaults_without_file_sections(tmp_path):
    path = tmp_path / "empty.toml"
    path.write_text("")
    config = load_config(path)
    assert config.agent.home == ("EU",)
    assert config.agent.nameservers == ()
    assert config.agent.http_probe is False
    assert config.daemon.interval == 900
    assert config.daemon.confirmations == 2


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "nope.toml")


@pytest.mark.parametrize(("text", "seconds"), [("15m", 900), ("1h", 3600), ("1h30m", 5400), ("30s", 30), ("500ms", 0.5), (60, 60)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "15", "m", "-1m", "1d", True, 0])
def test_bad_durations(text):
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "normal"),
    [("127.0.0.1", "127.0.0.1:53"), ("127.0.0.1:5353", "127.0.0.1:5353"), ("::1", "[::1]:53"), ("[2001:db8::1]:5300", "[2001:db8::1]:5300")],
)
def test_nameservers(text, normal):
    assert parse_nameserver(text) == normal


@pytest.mark.parametrize("path", BAD, ids=lambda p: p.stem)
def test_check_config_reports_every_bad_config_in_one_line(path, capsys):
    """check-config goes through the same validation as start and reload: one line, exit 2."""
    from dijkwacht.cli import main

    assert main(["check-config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"dijkwacht: {path}"), err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("value", "message"),
    [(float("nan"), "finite"), (float("inf"), "finite"), (1e308, "at most"), (0, "positive"), (-1, "positive"), (True, "number"), ("2", "number")],
)
def test_numbers_are_finite_and_in_range(value, message):
    from dijkwacht.config import AGENT_FIELDS

    with pytest.raises(ValueError, match=message):
        AGENT_FIELDS["dns_timeout"](value)


@pytest.mark.parametrize("text", ["nan", "inf", "1e308", "-1", "0", "abc", "1ms"])
def test_scan_rejects_bad_timeouts_like_the_config_does(text, capsys):
    from dijkwacht.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["scan", "--timeout", text, "example.nl"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"--timeout: '{text}'" in err and "Traceback" not in err


@pytest.mark.parametrize(("option", "value", "message"), [
    ("--nameserver", "fe80::1%lo", "zone ids"),
    ("--workers", "100000", "at most 64"),
    ("--workers", "0", "positive"),
    ("--concurrency", "1.5", "whole number"),
    ("--max-inflight", "99999999", "at most"),
])
def test_scan_rejects_bad_options_in_one_line(option, value, message, capsys):
    from dijkwacht.cli import main

    with pytest.raises(SystemExit):
        main(["scan", option, value, "example.nl"])
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize(("value", "message"), [
    ("bogus", "must be [HOST]:PORT"),
    ("127.0.0.1:99999", "port of 0 to 65535"),
    (":٩٨٤٩", "port of 0 to 65535"),  # Arabic-Indic digits: isdigit(), but no port
    ("exa mple.nl:9849", "host 'exa mple.nl' is not an IP address or host name"),
    ("[nope]:9849", "host '[nope]' is not an IP address or host name"),
])
def test_run_rejects_a_bad_listen_address_like_the_config_does(tmp_path, value, message, capsys):
    """--listen goes through [daemon] listen's check, at parse time: a usage error (exit 2)."""
    from dijkwacht.cli import build_parser

    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["run", "--config", "c.toml", "--listen", value])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith("dijkwacht run: error: argument --listen: ") and message in err, err
    config = tmp_path / "c.toml"
    config.write_text(f'[daemon]\nlisten = "{value}"\n')
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(config)


@pytest.mark.parametrize("value", ["bogus", "127.0.0.1:99999"])
def test_run_with_a_bad_listen_address_exits_2_before_opening_the_state(tmp_path, value):
    state = tmp_path / "state.db"
    config = tmp_path / "c.toml"
    config.write_text(f'[daemon]\nstate_path = "{state}"\n')
    res = subprocess.run([sys.executable, "-m", "dijkwacht.cli", "run", "--config", str(config), "--listen", value], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2, res.stderr
    assert res.stderr.splitlines()[-1].startswith("dijkwacht run: error: argument --listen: "), res.stderr
    assert "Traceback" not in res.stderr and "internal error" not in res.stderr
    assert not state.exists()


@pytest.mark.parametrize("value", [":9849", "127.0.0.1:9849", "[::1]:9849", "::1:9849", "localhost:0"])
def test_good_listen_addresses(tmp_path, value):
    config = tmp_path / "c.toml"
    config.write_text(f'[daemon]\nlisten = "{value}"\n')
    assert load_config(config).daemon.listen == value


def test_a_nan_detector_setting_is_rejected(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[detectors.x]\nthreshold = nan\n")
    with pytest.raises(ConfigError, match="detectors.x.threshold: must be a finite number"):
        load_config(path, {"x": {"threshold": 0.5}})


def test_config_that_is_not_utf8_is_one_clear_error(tmp_path):
    path = tmp_path / "c.toml"
    path.write_bytes(b"[agent]\nlog_level = \"\xff\"\n")
    with pytest.raises(ConfigError, match="not valid UTF-8"):
        load_config(path)


def test_repeated_targets_keep_the_first_and_are_reported(tmp_path):
    (tmp_path / "targets.txt").write_text("example.nl sector=file\nother.nl\nother.nl owner=x\n")
    path = tmp_path / "c.toml"
    path.write_text('[agent]\ntargets_file = "targets.txt"\n[[targets]]\ndomain = "example.nl"\nlabels = { sector = "toml" }\n')
    config = load_config(path)
    assert [(t.domain, dict(t.labels)) for t in config.targets] == [("example.nl", {"sector": "toml"}), ("other.nl", {})]
    assert [(p.line, p.message) for p in config.problems] == [
        (1, f"example.nl repeats {path}:4; the first is kept"),
        (3, f"other.nl repeats {tmp_path / 'targets.txt'}:2; the first is kept"),
    ]


def test_data_update_does_not_need_the_data_dir_to_exist(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[agent]\ndata_dir = "ranges"\n')
    assert load_config(path, check_paths=False).agent.data_dir == str(tmp_path / "ranges")
