"""Meta-tests: every hook is documented and tested, every built-in detector has its own test
module and documented settings, every CLI command is documented."""

from __future__ import annotations

import inspect
import re
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from dijkwacht import hookspecs
from dijkwacht.cli import build_parser
from dijkwacht.pluginhost import make_plugin_manager

ROOT = Path(__file__).resolve().parents[1]
PLUGINS_DOC = (ROOT / "docs" / "plugins.md").read_text()
CONFIG_DOC = (ROOT / "docs" / "configuration.md").read_text()
HOOKS = [name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("dijkwacht_")]
TESTS = "\n".join(p.read_text() for p in (ROOT / "tests").glob("test_*.py") if p.name != "test_meta.py")


def test_there_are_hooks():
    assert HOOKS == ["dijkwacht_catalog_files", "dijkwacht_detectors"]


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_docstring_docs_and_tests(hook):
    assert (getattr(hookspecs, hook).__doc__ or "").strip(), f"{hook} has no docstring"
    assert f"### {hook}" in PLUGINS_DOC, f"{hook} is not documented in docs/plugins.md"
    assert hook in TESTS, f"no test uses {hook}"


def test_the_plugin_api_and_catalog_schema_are_documented_in_full():
    """What a detector gets (its context, catalog facts) and every key a catalog file may hold
    are named in docs/plugins.md: an undocumented part is one a plugin author cannot find."""
    from dataclasses import fields

    from dijkwacht import catalog
    from dijkwacht.detector import DetectorContext

    api = PLUGINS_DOC.split("## The API a detector gets", 1)[1].split("\n## ", 1)[0]
    fact = re.search(r"`dijkwacht\.catalog\.Fact` \(frozen\):(.*?)\n- ", api, re.S).group(1)
    assert [f.name for f in fields(catalog.Fact) if f"`{f.name}`" not in fact] == []
    # ctx.warnings is where the core collects what ctx.warn() reports
    parts = {f.name for f in fields(DetectorContext)} - {"warnings"} | {n for n, _ in inspect.getmembers(DetectorContext, inspect.isfunction) if not n.startswith("_")}
    assert sorted(p for p in parts if f"ctx.{p}" not in api) == []
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `(\[\[?providers[^`]*)` [^|]*\|(.*)$", PLUGINS_DOC, re.M)}
    for table, keys in (("[providers.<id>]", catalog._PROVIDER_KEYS - {"facts", "ownership"}), ("[[providers.<id>.facts]]", catalog._FACT_KEYS),
                        ("[[providers.<id>.ownership]]", catalog._OWNERSHIP_KEYS)):
        assert sorted(k for k in keys if f"`{k}`" not in rows[table]) == [], table


BUILTINS = sorted(ep.value.rsplit(".", 1)[1] for ep in entry_points(group="dijkwacht") if ep.dist and ep.dist.name == "dijkwacht")


@pytest.mark.parametrize("module", BUILTINS)
def test_builtin_detector_module_has_its_own_test_module(module):
    assert (ROOT / "tests" / f"test_plugin_{module}.py").is_file(), f"plugins/{module}.py has no tests/test_plugin_{module}.py"


@pytest.mark.parametrize("cls", make_plugin_manager(autoload=False).detector_classes(), ids=lambda c: c.name)
def test_builtin_detector_settings_are_documented(cls):
    assert cls.description
    for key in cls.settings:
        assert re.search(rf"\| `{cls.name}` \| `{key}` \|", CONFIG_DOC), f"[detectors.{cls.name}] {key} is not in docs/configuration.md"


def test_every_command_is_documented():
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    docs = (ROOT / "README.md").read_text()
    for name in commands:
        assert f"dijkwacht {name}" in docs, f"'dijkwacht {name}' is not mentioned in README.md"


def test_the_readme_test_command_installs_what_it_needs_first():
    readme = (ROOT / "README.md").read_text()
    command = re.findall(r"```sh\n(.*?)\n```", readme, re.S)[1]
    assert command.startswith("scripts/test-deps && unshare -rn ")
    ci = (ROOT / ".ci" / "run").read_text()
    assert "../shared/data" in ci and "exit 1" in ci and "DIJKWACHT_REQUIRE_SHARED=1" in ci
    assert "awk '/^```sh/{n++; next} /^```/{if(n==2) exit} n==2{print}' README.md" in ci


def test_test_deps_names_every_missing_package(tmp_path):
    import subprocess

    empty = tmp_path / "bin"
    empty.mkdir()
    done = subprocess.run(["/bin/sh", str(ROOT / "scripts" / "test-deps"), "--check"], capture_output=True, text=True, env={"PATH": str(empty)})
    assert done.returncode == 1
    missing = done.stdout.split(":", 1)[1].split()
    assert missing == ["knot", "knot-dnsutils", "prometheus", "prometheus-alertmanager", "systemd", "dnsperf", "openssl", "iproute2", "util-linux", "mount", "chromium"]
    here = subprocess.run([str(ROOT / "scripts" / "test-deps"), "--check"], capture_output=True, text=True)
    assert (here.returncode, here.stdout) == (0, "")  # this machine has them all


def test_missing_shared_data_skips_with_a_reason_or_fails_where_required(tmp_path, monkeypatch):
    from .conftest import shared

    monkeypatch.delenv("DIJKWACHT_REQUIRE_SHARED", raising=False)
    with pytest.raises(pytest.skip.Exception, match="needs the shared test data .*nowhere"):
        shared(tmp_path / "nowhere")
    monkeypatch.setenv("DIJKWACHT_REQUIRE_SHARED", "1")
    with pytest.raises(pytest.fail.Exception, match="needs the shared test data"):
        shared(tmp_path / "nowhere")
