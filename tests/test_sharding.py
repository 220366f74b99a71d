"""Sharding: a stable hashmod of the domain splits the targets into disjoint shares."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import pytest

from dijkwacht.config import load_config
from dijkwacht.daemon.agent import Daemon
from dijkwacht.errors import ConfigError
from dijkwacht.shard import Shard, parse_shard, shard_of

from .test_daemon import ZONE, wait_for, write_config


def test_hash_is_the_first_32_bits_of_sha256_modulo_n():
    # sha256("example.nl") starts with 3bde6920 = 1004431648, as the Helm chart computes it.
    assert hashlib.sha256(b"example.nl").hexdigest()[:8] == "3bde6920"
    assert [shard_of("example.nl", n) for n in (1, 3, 4, 7)] == [0, 1004431648 % 3, 0, 1004431648 % 7]


def test_hash_is_the_same_in_another_process():
    # Python's own hash() of a str differs per process (PYTHONHASHSEED); this one must not.
    code = "from dijkwacht.shard import shard_of; print([shard_of(f'd{i}.nl', 5) for i in range(200)])"
    runs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout for _ in range(2)}
    assert len(runs) == 1
    assert runs.pop().strip() == str([shard_of(f"d{i}.nl", 5) for i in range(200)])


def test_shares_are_disjoint_complete_and_even():
    domains = [f"gemeente-{i:05d}.nl" for i in range(50_000)]
    for total in (2, 3, 4, 7):
        shares = [[d for d in domains if Shard(i, total).owns(d)] for i in range(total)]
        assert sum(map(len, shares)) == len(domains)
        assert set().union(*map(set, shares)) == set(domains)
        for share in shares:
            assert abs(len(share) - len(domains) / total) < 0.03 * len(domains) / total, (total, list(map(len, shares)))


@pytest.mark.parametrize(("text", "shard"), [("0/1", Shard(0, 1)), ("3/4", Shard(3, 4)), (" 2/3 ", Shard(2, 3)), ("rel-dijkwacht-2/4", Shard(2, 4))])
def test_parse_shard(text, shard):
    assert parse_shard(text) == shard


@pytest.mark.parametrize("text", ["4/4", "1/0", "-1/4", "1", "a/b", "1/4/5", "rel-dijkwacht/4"])
def test_parse_shard_rejects(text):
    with pytest.raises(ValueError):
        parse_shard(text)


def test_config_shard_error_names_file_line_and_key(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[daemon]\ninterval = "1m"\nshard = "4/4"\n')
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert str(exc.value).startswith(f"{path}:3: daemon.shard:")


def test_run_rejects_a_bad_shard_in_one_line(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("")
    res = subprocess.run([sys.executable, "-m", "dijkwacht.cli", "run", "--config", str(path), "--shard", "5/4"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2
    assert res.stderr.strip().splitlines()[-1].endswith("the index must be at least 0 and below the total")
    assert "Traceback" not in res.stderr


def test_targets_dir_reads_toml_and_text_files(tmp_path):
    targets = tmp_path / "targets"
    targets.mkdir()
    (targets / "shard-0.toml").write_text('[[targets]]\ndomain = "a.nl"\nlabels = { sector = "water" }\nhosts = ["portal"]\n')
    (targets / "extra.txt").write_text("b.nl sector=zorg\n")
    (targets / "..data").mkdir()  # how a mounted ConfigMap looks inside
    (targets / "README.md").write_text("ignored")
    config = tmp_path / "c.toml"
    config.write_text('[agent]\ntargets_dir = "targets"\n[[targets]]\ndomain = "c.nl"\n')
    loaded = load_config(config)
    assert [(t.domain, dict(t.labels), t.hosts) for t in loaded.targets] == [
        ("c.nl", {}, ()), ("b.nl", {"sector": "zorg"}, ()), ("a.nl", {"sector": "water"}, ("portal",))]


@pytest.mark.parametrize(("text", "message"), [
    ('[[targets]]\ndomain = "a.nl"\nlabelz = {}\n', r"shard-0.toml:3: targets\[0\].labelz: unknown key"),
    ('[agent]\nhome = ["EU"]\n', r"shard-0.toml:1: agent: a targets file holds only \[\[targets\]\] tables"),
    ('[[targets]\n', r"shard-0.toml:1: invalid TOML"),
])
def test_targets_dir_errors_name_the_file(tmp_path, text, message):
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "shard-0.toml").write_text(text)
    config = tmp_path / "c.toml"
    config.write_text('[agent]\ntargets_dir = "t"\n')
    with pytest.raises(ConfigError, match=message):
        load_config(config)


async def test_daemon_scans_only_its_share(dns_server, tmp_path):
    server = await dns_server(ZONE)
    extra = "".join(f'[[targets]]\ndomain = "extra-{i}.nl"\n' for i in range(40))
    config = tmp_path / "c.toml"
    write_config(config, server, tmp_path / "state.db", extra=extra)
    domains = [t.domain for t in load_config(config).targets]
    seen: list[set[str]] = []
    for index in range(3):
        daemon = Daemon(config, shard=Shard(index, 3))
        await daemon.start()
        try:
            await wait_for(lambda: daemon.ready)
            seen.append(set(daemon.snapshot.views))
            text = daemon.metrics().decode()
            assert f"dijkwacht_targets {float(len(seen[-1]))}" in text
            assert f'dijkwacht_shards{{shard="{index}"}} 3.0' in text
        finally:
            await daemon.stop()
    assert sum(map(len, seen)) == len(domains) and set().union(*seen) == set(domains)
