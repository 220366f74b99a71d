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
from dijkwacht.runtime import build_runtime, load_config_with_plugins, load_data
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


def record(host, name):
    return next(r for r in host.records if r.name == name)


def test_builtins_load_through_entry_points(plugin_host):
    classes = plugin_host.detector_classes()
    assert {c.name for c in classes} == BUILTIN
    assert {r.name for r in plugin_host.records} == BUILTIN
    assert all(r.version and r.distribution == "dijkwacht" and r.builtin and r.status == "loaded" for r in plugin_host.records)
    assert plugin_host.detector_owner["email"] == "email"
    assert plugin_host.builtin_detectors == BUILTIN


def test_third_party_plugin_is_loaded_with_its_version(tmp_path, monkeypatch):
    install(tmp_path, monkeypatch, "dijkwacht_chat", GOOD)
    host = make_plugin_manager(autoload=True)
    chat = record(host, "dijkwacht_chat")
    assert (chat.version, chat.distribution, chat.status, chat.builtin) == ("1.2.3", "dijkwacht_chat", "loaded", False)
    assert {c.name for c in host.detector_classes()} == BUILTIN | {"chat"}
    assert "chat" not in host.builtin_detectors


def test_autoload_switch_skips_third_party_but_not_builtins(tmp_path, monkeypatch):
    install(tmp_path, monkeypatch, "dijkwacht_chat", GOOD)
    monkeypatch.setenv("DIJKWACHT_DISABLE_PLUGIN_AUTOLOAD", "1")
    host = make_plugin_manager()
    assert record(host, "dijkwacht_chat").status == "disabled"
    assert {c.name for c in host.detector_classes()} == BUILTIN


def test_disable_turns_one_plugin_off(tmp_path, monkeypatch):
    install(tmp_path, monkeypatch, "dijkwacht_chat", GOOD)
    host = make_plugin_manager(autoload=True, disable=["dijkwacht_chat", "video"])
    assert (record(host, "dijkwacht_chat").status, record(host, "video").status) == ("disabled", "disabled")
    assert {c.name for c in host.detector_classes()} == BUILTIN - {"video"}


def test_plugin_that_fails_to_import_is_quarantined(tmp_path, monkeypatch):
    install(tmp_path, monkeypatch, "dijkwacht_broken", "raise RuntimeError('missing dependency')\n")
    host = make_plugin_manager(autoload=True)
    assert host.failed == {"dijkwacht_broken": "import failed: RuntimeError: missing dependency"}
    assert {c.name for c in host.detector_classes()} == BUILTIN


def test_plugin_exiting_at_import_is_quarantined(tmp_path, monkeypatch):
    install(tmp_path, monkeypatch, "dijkwacht_exits", "raise SystemExit(3)\n")
    host = make_plugin_manager(autoload=True)
    assert host.failed == {"dijkwacht_exits": "import failed: SystemExit: 3"}


def test_hook_that_raises_is_quarantined(tmp_path, monkeypatch):
    source = "from dijkwacht import hookimpl\n@hookimpl\ndef dijkwacht_detectors():\n    raise ValueError('oops')\n"
    install(tmp_path, monkeypatch, "dijkwacht_raises", source)
    host = make_plugin_manager(autoload=True)
    assert {c.name for c in host.detector_classes()} == BUILTIN
    assert host.failed["dijkwacht_raises"] == "dijkwacht_detectors() raised ValueError: oops"


def test_detector_named_like_a_builtin_is_quarantined_not_replacing_it(tmp_path, monkeypatch):
    install(tmp_path, monkeypatch, "dijkwacht_dup", GOOD.replace('name = "chat"', 'name = "email"'))
    host = make_plugin_manager(autoload=True)
    assert host.failed["dijkwacht_dup"] == "detector name 'email' is taken by built-in plugin 'email' (distribution dijkwacht)"
    assert host.detector_owner["email"] == "email"


def test_entry_point_named_like_a_builtin_is_quarantined(tmp_path, monkeypatch):
    install(tmp_path, monkeypatch, "dijkwacht_impostor", GOOD, entry="email")
    host = make_plugin_manager(autoload=True)
    [impostor] = [r for r in host.records if r.distribution == "dijkwacht_impostor"]
    assert (impostor.name, impostor.status) == ("email", "failed")
    assert impostor.error == "entry-point name 'email' is taken by built-in plugin 'email' (distribution dijkwacht)"
    assert host.detector_owner == {name: name for name in BUILTIN}


def test_unknown_hook_is_quarantined(tmp_path, monkeypatch):
    source = "from dijkwacht import hookimpl\n@hookimpl\ndef dijkwacht_frobnicate():\n    return 1\n"
    install(tmp_path, monkeypatch, "dijkwacht_unknown", source)
    host = make_plugin_manager(autoload=True)
    assert host.failed["dijkwacht_unknown"].startswith("implements hooks dijkwacht does not know: dijkwacht_frobnicate (known: ")
    assert host.pm.get_plugin("dijkwacht_unknown") is None
    assert {c.name for c in host.detector_classes()} == BUILTIN


INVALID = [
    ("return [object]", "expected Detector subclasses"),
    ("return Detector", "returned type; expected a list of Detector subclasses"),
    ("class D(Detector):\n        categories = ('x',)\n    return [D]", "needs a lowercase name"),
    ("class D(Detector):\n        name = 'nocat'\n    return [D]", "must declare its categories as a tuple"),
    ("class D(Detector):\n        name = 'strcat'\n        categories = 'email'\n    return [D]", "must declare its categories as a tuple"),
    ("class D(Detector):\n        name = 'sync'\n        categories = ('x',)\n        def detect(self, t, c):\n            return []\n    return [D]", "must be declared `async def`"),
]


@pytest.mark.parametrize(("body", "message"), INVALID)
def test_invalid_detector_classes_are_quarantined(tmp_path, monkeypatch, body, message):
    source = f"from dijkwacht import hookimpl\nfrom dijkwacht.detector import Detector\n@hookimpl\ndef dijkwacht_detectors():\n    {body}\n"
    install(tmp_path, monkeypatch, "dijkwacht_invalid", source)
    host = make_plugin_manager(autoload=True)
    assert message in host.failed["dijkwacht_invalid"]
    assert {c.name for c in host.detector_classes()} == BUILTIN


@pytest.mark.parametrize(("body", "message"), INVALID[:2])
def test_strict_mode_makes_a_failure_fatal(tmp_path, monkeypatch, body, message):
    source = f"from dijkwacht import hookimpl\nfrom dijkwacht.detector import Detector\n@hookimpl\ndef dijkwacht_detectors():\n    {body}\n"
    install(tmp_path, monkeypatch, "dijkwacht_invalid", source)
    with pytest.raises(PluginError, match=f"plugin 'dijkwacht_invalid' \\(distribution dijkwacht_invalid\\): .*{message.split(';')[0]}"):
        make_plugin_manager(autoload=True, strict=True)


@pytest.mark.parametrize(
    ("declared", "problem"),
    [
        (">=1.0,<2", ""),
        ("<2", ""),
        (">=1.1", "supports dijkwacht plugin API >=1.1; this dijkwacht has API 1.0"),
        (">=2.0,<3", "supports dijkwacht plugin API >=2.0,<3; this dijkwacht has API 1.0"),
        ("~=1.0", "DIJKWACHT_API = '~=1.0': '~=1.0' is not a clause such as '>=1.0' or '<2'"),
        ("", "DIJKWACHT_API must be a version range such as '>=1.0,<2', not ''"),
    ],
)
def test_declared_api_range_is_checked(tmp_path, monkeypatch, declared, problem):
    install(tmp_path, monkeypatch, "dijkwacht_chat", f"DIJKWACHT_API = {declared!r}\n" + GOOD)
    chat = record(make_plugin_manager(autoload=True), "dijkwacht_chat")
    assert (chat.status, chat.error, chat.api) == ("failed" if problem else "loaded", problem, declared)


CHAT_CATALOG = (
    '[providers.slack]\nname = "Slack"\njurisdiction = "US"\nsource = "https://slack.com"\n'
    '[[providers.slack.facts]]\nkind = "txt"\ncategory = "chat"\nvalue = "^slack-domain-verification="\nsource = "https://slack.com"\n'
)


def test_plugin_catalog_files_extend_the_catalog(tmp_path, monkeypatch):
    (tmp_path / "chat.toml").write_text(CHAT_CATALOG)
    source = GOOD + f"\n@hookimpl\ndef dijkwacht_catalog_files():\n    return [{str(tmp_path / 'chat.toml')!r}]\n"
    install(tmp_path, monkeypatch, "dijkwacht_chat", source)
    host = make_plugin_manager(autoload=True)
    assert record(host, "dijkwacht_chat").catalog_files == [tmp_path / "chat.toml"]
    data = load_data(AgentSettings(), host)
    assert data.catalog.providers["slack"].jurisdiction == "US"
    assert "microsoft" in data.catalog.providers


@pytest.mark.parametrize(
    ("catalog", "message"),
    [
        ("[providers.slack\n", "invalid TOML"),
        (CHAT_CATALOG.replace('jurisdiction = "US"', 'jurisdiction = "USA"'), "chat.toml:3: providers.slack.jurisdiction: 'USA' is not an ISO 3166-1 alpha-2 code"),
        (None, "cannot read catalog"),
    ],
)
def test_plugin_with_a_bad_catalog_file_is_quarantined(tmp_path, monkeypatch, catalog, message):
    if catalog is not None:
        (tmp_path / "chat.toml").write_text(catalog)
    source = GOOD + f"\n@hookimpl\ndef dijkwacht_catalog_files():\n    return [{str(tmp_path / 'chat.toml')!r}]\n"
    install(tmp_path, monkeypatch, "dijkwacht_chat", source)
    host = make_plugin_manager(autoload=True)
    assert host.failed["dijkwacht_chat"].startswith("catalog file: ") and message in host.failed["dijkwacht_chat"]
    assert {c.name for c in host.detector_classes()} == BUILTIN
    assert load_data(AgentSettings(), host).catalog.providers.keys() == load_catalog().providers.keys()


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
    (tmp_path / "chat.toml").write_text(CHAT_CATALOG)
    install(tmp_path, monkeypatch, "dijkwacht_chat", GOOD + f"\n@hookimpl\ndef dijkwacht_catalog_files():\n    return [{str(tmp_path / 'chat.toml')!r}]\n")
    install(tmp_path, monkeypatch, "dijkwacht_broken", "raise ImportError('no module named foo')\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "dijkwacht.cli", "plugins", "--format", "json"], capture_output=True, text=True, env=env, check=True)
    rows = {r["plugin"]: r for r in json.loads(done.stdout)}
    assert rows["dijkwacht_chat"] == {
        "plugin": "dijkwacht_chat", "distribution": "dijkwacht_chat", "version": "1.2.3", "builtin": False, "status": "loaded", "error": "", "api": "",
        "detectors": [{"name": "chat", "categories": ["chat"], "description": "Chat platforms from TXT tokens", "settings": {"token": "slack-domain-verification="}}],
        "catalog_files": [str(tmp_path / "chat.toml")],
    }
    assert rows["dijkwacht_broken"]["status"] == "failed"
    assert rows["dijkwacht_broken"]["error"] == "import failed: ImportError: no module named foo"
    assert set(rows) >= BUILTIN and rows["email"]["builtin"] and rows["email"]["distribution"] == "dijkwacht"
    table = subprocess.run([sys.executable, "-m", "dijkwacht.cli", "plugins"], capture_output=True, text=True, env=env, check=True).stdout
    assert "dijkwacht_broken  dijkwacht_broken  1.2.3  FAILED: import failed: ImportError: no module named foo" in table
    assert '  detector chat (chat): Chat platforms from TXT tokens\n    token = "slack-domain-verification="\n' in table
    assert f"  catalog {tmp_path / 'chat.toml'}" in table
    strict = subprocess.run([sys.executable, "-m", "dijkwacht.cli", "plugins", "--strict-plugins"], capture_output=True, text=True, env=env)
    assert strict.returncode == 2
    assert strict.stderr == "dijkwacht: plugin 'dijkwacht_broken' (distribution dijkwacht_broken): import failed: ImportError: no module named foo\n"


def test_plugins_command_honours_the_configs_plugins_section(tmp_path, monkeypatch):
    install(tmp_path, monkeypatch, "dijkwacht_chat", GOOD)
    config = tmp_path / "dijkwacht.toml"
    config.write_text('[plugins]\ndisable = ["dijkwacht_chat"]\n')
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "dijkwacht.cli", "plugins", "--config", str(config), "--format", "json"], capture_output=True, text=True, env=env, check=True)
    rows = {r["plugin"]: r for r in json.loads(done.stdout)}
    assert (rows["dijkwacht_chat"]["status"], rows["dijkwacht_chat"]["error"]) == ("disabled", "disabled in [plugins] disable")


def test_catalog_is_shared_read_only_data():
    catalog = load_catalog()
    assert "microsoft" in catalog.providers
    with pytest.raises(dataclasses.FrozenInstanceError):
        catalog.providers["microsoft"].jurisdiction = "NL"


def test_settings_of_a_plugin_that_failed_are_ignored_with_a_warning(tmp_path, monkeypatch):
    install(tmp_path, monkeypatch, "chat", "raise ImportError('no module named foo')\n")
    config = tmp_path / "dijkwacht.toml"
    config.write_text("[detectors.cdn]\nhosts = []\n\n[detectors.chat]\ntoken = 'x'\n")
    monkeypatch.delenv("DIJKWACHT_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    loaded, _ = load_config_with_plugins(config)
    assert "chat" not in loaded.detectors
    assert loaded.warnings == (f"{config}:4: detectors.chat: ignored: no detector of that name is loaded (not loaded: chat: import failed: ImportError: no module named foo)",)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "dijkwacht.cli", "check-config", str(config)], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert "warning: plugin 'chat' is not used: import failed: ImportError: no module named foo" in done.stdout
    strict = subprocess.run([sys.executable, "-m", "dijkwacht.cli", "check-config", str(config), "--strict-plugins"], capture_output=True, text=True, env=env)
    assert (strict.returncode, strict.stdout) == (2, "")


def test_a_new_plugin_is_found_by_the_next_load_but_an_edited_one_is_not_reimported(tmp_path, monkeypatch):
    install(tmp_path, monkeypatch, "dijkwacht_chat", GOOD)
    first = make_plugin_manager(autoload=True)
    install(tmp_path, monkeypatch, "dijkwacht_later", GOOD.replace('"chat"', '"later"'))
    (tmp_path / "dijkwacht_chat.py").write_text(GOOD.replace('name = "chat"', 'name = "edited"'))
    second = make_plugin_manager(autoload=True)  # what a reload does
    assert {c.name for c in second.detector_classes()} == BUILTIN | {"chat", "later"}
    assert record(second, "dijkwacht_chat").detectors == record(first, "dijkwacht_chat").detectors
