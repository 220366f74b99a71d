"""The plugin host: third-party plugins arrive through the same entry points as the built-ins;
broken ones are reported, not fatal; conflicts are rejected at start-up with a clear message."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import subprocess
import sys
import textwrap

import pytest

from dijkwacht.catalog import load_catalog
from dijkwacht.config import AgentSettings
from dijkwacht.detector import Detector, Finding
from dijkwacht.pluginhost import PluginError, make_plugin_manager
from dijkwacht.runtime import build_runtime, load_data
from dijkwacht.targets import Target

BUILTIN = {"cdn", "dns", "email", "hosting", "video"}


def install(tmp_path, monkeypatch, name, source, version="1.2.3", entry=None):
    """Make an importable module plus a dist-info with a `dijkwacht` entry point."""
    monkeypatch.setitem(sys.modules, name, None)  # forget any earlier test's module of that name
    del sys.modules[name]
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
    dist = tmp_path / f"{name}-{version}.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (dist / "entry_points.txt").write_text(f"[dijkwacht]\n{entry or name} = {name}\n")
    monkeypatch.syspath_prepend(str(tmp_path))


GOOD = """
from dijkwacht import hookimpl
from dijkwacht.detector import Detector, Finding

class ChatDetector(Detector):
    name = "chat"
    categories = ("chat",)
    description = "Chat platforms from TXT tokens"
    settings = {"token": "slack-domain-verification="}

    async def detect(self, target, ctx):
        answer = await ctx.dns.resolve(target.domain, "TXT")
        return [Finding("chat", "slack", [f"TXT {t}"], "indicated") for t in answer.records if t.startswith(self.options["token"])]

@hookimpl
def dijkwacht_detectors():
    return [ChatDetector]
"""


def test_builtins_load_through_entry_points(plugin_host):
    classes = plugin_host.detector_classes()
    assert {c.name for c in classes} == BUILTIN
    assert set(plugin_host.versions) == BUILTIN
    assert all(v for v in plugin_host.versions.values())
    assert plugin_host.detector_owner["email"] == "email"


def test_third_party_plugin_is_loaded_with_its_version(tmp_path, monkeypatch):
    install(tmp_path, monkeypatch, "dijkwacht_chat", GOOD)
    host = make_plugin_manager(autoload=True)
    assert host.versions["dijkwacht_chat"] == "1.2.3"
    assert {c.name for c in host.detector_classes()} == BUILTIN | {"chat"}


def test_autoload_switch_skips_third_party_but_not_builtins(tmp_path, monkeypatch):
    install(tmp_path, monkeypatch, "dijkwacht_chat", GOOD)
    monkeypatch.setenv("DIJKWACHT_DISABLE_PLUGIN_AUTOLOAD", "1")
    host = make_plugin_manager()
    assert "dijkwacht_chat" not in host.versions
    assert {c.name for c in host.detector_classes()} == BUILTIN


def test_plugin_that_fails_to_import_is_reported_not_fatal(tmp_path, monkeypatch):
    install(tmp_path, monkeypatch, "dijkwacht_broken", "raise RuntimeError('missing dependency')\n")
    host = make_plugin_manager(autoload=True)
    assert "missing dependency" in host.failed["dijkwacht_broken"]
    assert {c.name for c in host.detector_classes()} == BUILTIN


def test_hook_that_raises_is_reported_not_fatal(tmp_path, monkeypatch):
    source = "from dijkwacht import hookimpl\n@hookimpl\ndef dijkwacht_detectors():\n    raise ValueError('oops')\n"
    install(tmp_path, monkeypatch, "dijkwacht_raises", source)
    host = make_plugin_manager(autoload=True)
    assert {c.name for c in host.detector_classes()} == BUILTIN
    assert "ValueError: oops" in host.failed["dijkwacht_raises"]


def test_duplicate_detector_names_are_rejected(tmp_path, monkeypatch):
    install(tmp_path, monkeypatch, "dijkwacht_dup", GOOD.replace('name = "chat"', 'name = "email"'))
    host = make_plugin_manager(autoload=True)
    with pytest.raises(PluginError, match="detector name 'email' is provided by both plugin '(email|dijkwacht_dup)' and plugin '(email|dijkwacht_dup)'"):
        host.detector_classes()


def test_unknown_hook_is_rejected(tmp_path, monkeypatch):
    source = "from dijkwacht import hookimpl\n@hookimpl\ndef dijkwacht_frobnicate():\n    return 1\n"
    install(tmp_path, monkeypatch, "dijkwacht_unknown", source)
    with pytest.raises(PluginError, match="'dijkwacht_unknown' implements a hook dijkwacht does not know"):
        make_plugin_manager(autoload=True)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("return [object]", "expected Detector subclasses"),
        ("class D(Detector):\n        categories = ('x',)\n    return [D]", "needs a lowercase name"),
        ("class D(Detector):\n        name = 'nocat'\n    return [D]", "declares no categories"),
    ],
)
def test_invalid_detector_classes_are_rejected(tmp_path, monkeypatch, body, message):
    source = f"from dijkwacht import hookimpl\nfrom dijkwacht.detector import Detector\n@hookimpl\ndef dijkwacht_detectors():\n    {body}\n"
    install(tmp_path, monkeypatch, "dijkwacht_invalid", source)
    with pytest.raises(PluginError, match=message):
        make_plugin_manager(autoload=True).detector_classes()


def test_plugin_catalog_files_extend_the_catalog(tmp_path, monkeypatch):
    (tmp_path / "chat.toml").write_text(
        '[providers.slack]\nname = "Slack"\njurisdiction = "US"\nsource = "https://slack.com"\n'
        '[[providers.slack.facts]]\nkind = "txt"\ncategory = "chat"\nvalue = "^slack-domain-verification="\nsource = "https://slack.com"\n'
    )
    source = GOOD + f"\n@hookimpl\ndef dijkwacht_catalog_files():\n    return [{str(tmp_path / 'chat.toml')!r}]\n"
    install(tmp_path, monkeypatch, "dijkwacht_chat", source)
    data = load_data(AgentSettings(), make_plugin_manager(autoload=True))
    assert data.catalog.providers["slack"].jurisdiction == "US"
    assert "microsoft" in data.catalog.providers


class Crashing(Detector):
    name = "crashing"
    categories = ("email",)

    async def detect(self, target, ctx):
        raise RuntimeError("plugin bug")


class Sleepy(Detector):
    name = "sleepy"
    categories = ("video",)

    async def detect(self, target, ctx):
        await asyncio.sleep(30)
        return []


class Fine(Detector):
    name = "fine"
    categories = ("cdn",)

    async def detect(self, target, ctx):
        return [Finding("cdn", "cloudflare", ["test evidence"])]


async def test_failing_and_slow_detectors_become_errors(dns_server):
    server = await dns_server("example.nl A 192.0.2.10\n")
    agent = AgentSettings(nameservers=(server.address,), detector_timeout=0.3)
    data = load_data(agent)
    data.detector_classes = [Crashing, Sleepy, Fine]
    runtime = build_runtime(agent, data)
    try:
        result = await runtime.scanner.scan(Target("example.nl"))
    finally:
        await runtime.close()
    assert [(d.category, d.provider) for d in result.dependencies] == [("cdn", "cloudflare")]
    assert {(e.detector, e.message) for e in result.errors} == {("crashing", "RuntimeError: plugin bug"), ("sleepy", "timed out after 0.3s")}
    assert result.incomplete == {"email", "video"}
    assert set(result.timings) == {"crashing", "sleepy", "fine"}


def test_plugins_command_lists_versions_and_failures(tmp_path, monkeypatch):
    install(tmp_path, monkeypatch, "dijkwacht_chat", GOOD)
    install(tmp_path, monkeypatch, "dijkwacht_broken", "raise ImportError('no module named foo')\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "dijkwacht.cli", "plugins", "--format", "json"], capture_output=True, text=True, env=env, check=True)
    rows = {r["plugin"]: r for r in json.loads(done.stdout)}
    assert rows["dijkwacht_chat"]["version"] == "1.2.3"
    assert rows["dijkwacht_chat"]["detectors"][0]["name"] == "chat"
    assert "no module named foo" in rows["dijkwacht_broken"]["error"]
    assert set(rows) >= BUILTIN
    table = subprocess.run([sys.executable, "-m", "dijkwacht.cli", "plugins"], capture_output=True, text=True, env=env, check=True).stdout
    assert "dijkwacht_broken" in table and "FAILED" in table


def test_catalog_is_shared_read_only_data():
    catalog = load_catalog()
    assert "microsoft" in catalog.providers
    with pytest.raises(dataclasses.FrozenInstanceError):
        catalog.providers["microsoft"].jurisdiction = "NL"
