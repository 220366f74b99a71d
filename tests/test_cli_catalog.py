"""`dijkwacht catalog`: the list, one provider's chain of ownership with its sources, JSON."""

from __future__ import annotations

import json
import subprocess
import sys

from dijkwacht import cli_catalog
from dijkwacht.cli import build_parser


def run(capsys, *argv):
    """In-process, without main(): main() configures logging for the process."""
    code = cli_catalog.run(build_parser().parse_args(["catalog", *argv]))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_and_json_cover_every_provider(capsys):
    code, out, _ = run(capsys)
    assert code == 0
    lines = out.splitlines()
    assert len(lines) >= 124
    assert any(line.startswith("transip ") and " GB " in line and "Hg" in line for line in lines)
    unverified = [line.split()[0] for line in lines if line.endswith("(ownership not verified)")]
    assert "gandi" in unverified and "transip" not in unverified
    code, out, _ = run(capsys, "--format", "json")
    rows = json.loads(out)
    assert len(rows) == len(lines)
    for row in rows:
        assert row["parent"] and row["jurisdiction"] and row["control"] and row["source"].startswith("https://"), row["id"]
        assert (row["id"] in unverified) == (row["verified"] is False), row["id"]
        assert all(f["source"] for f in row["facts"])


def test_one_provider_shows_its_chain_history_and_sources(capsys):
    code, out, _ = run(capsys, "zivver", "--date", "2026-01-01")
    assert code == 0
    assert "operator   Zivver B.V." in out
    assert "parent     Kiteworks (US, since 2025-06-24)" in out
    assert "  before     Zivver B.V. (NL)" in out and "2025-06-24 completed  Kiteworks (US)" in out
    assert "https://docs.zivver.com/" in out  # a fact's source
    _, before, _ = run(capsys, "zivver", "--date", "2025-01-01")
    assert "parent     Zivver B.V. (NL)" in before
    code, out, _ = run(capsys, "transip", "--format", "json")
    data = json.loads(out)
    assert (data["operator"], data["group"], data["jurisdiction"]) == ("TransIP B.V.", "team.blue NV (BE)", "GB")
    assert "largest single investor" in data["control"]
    assert {f["kind"] for f in data["facts"]} >= {"mx", "ns", "asn"}


def test_an_unknown_provider_is_a_one_line_error():
    done = subprocess.run([sys.executable, "-m", "dijkwacht.cli", "catalog", "nosuchprovider"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip() == "dijkwacht: catalog: no provider 'nosuchprovider' (list them with 'dijkwacht catalog')"


def test_the_config_catalog_files_are_included(capsys, tmp_path):
    extra = tmp_path / "extra.toml"
    extra.write_text('[providers.gemeente-it]\nname = "Gemeentelijke ICT"\njurisdiction = "NL"\ncontrol = "run by the municipalities"\nsource = "https://intranet.example"\n')
    config = tmp_path / "dijkwacht.toml"
    config.write_text(f'[agent]\ncatalog = ["{extra}"]\n')
    code, out, _ = run(capsys, "--config", str(config), "gemeente-it")
    assert code == 0 and "parent     Gemeentelijke ICT (NL)" in out and "control    run by the municipalities" in out


def test_a_provider_whose_owners_are_not_verified_says_so(capsys):
    _, out, _ = run(capsys, "yourhosting")
    assert "  verified   no: the owners above Your.Online could not be verified from public sources; it is taken as the top of the chain" in out
    _, out, _ = run(capsys, "transip")
    assert "verified" not in out.split("Note:")[0]
