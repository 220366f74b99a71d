"""End to end: real plugin packages that misbehave in every way the plugin issue lists, pip-installed
next to a well-behaved one (the identity example), scanned against a real DNS server (Knot).

For every misbehaviour: the built-in detectors' findings are those of a scan without any
third-party plugin, the failure is attributed to the misbehaving plugin, `scan` prints its
JSON and exits 0, and the agent becomes ready and answers /metrics and /-/healthy in under a
second while plugins block and spin, then quarantines them, and still stops on SIGTERM.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import time
import urllib.request

import pytest

from .conftest import IP_RANGES, ROOT
from .knot import Knot, free_port
from .plugin_venv import PluginVenv, project

pytestmark = pytest.mark.e2e
# The test venv's cloudcoil (CRD models for the chart tests) registers a pytest plugin that
# needs packages it does not install; dijkwacht's own pytest configuration turns it off.
NO_CLOUDCOIL = ("-p", "no:cloudcoil")

HEAD = "from dijkwacht import hookimpl\nfrom dijkwacht.detector import Detector, Finding\n"


def detectors(*classes: str) -> str:
    """A plugin module: the given detector class bodies plus the hook returning them."""
    names = [re.search(r"class (\w+)", c).group(1) for c in classes]
    return HEAD + "\n".join(classes) + f"\n@hookimpl\ndef dijkwacht_detectors():\n    return [{', '.join(names)}]\n"


def detector(name: str, body: str, categories: str = '("chat",)') -> str:
    return f"""
class D_{name}(Detector):
    name = "{name}"
    categories = {categories}

    async def detect(self, target, ctx):
{body}
"""


ZOO = {
    # dist: (entry points, files)
    "zoo-returns": ({"returns": "zoo_returns"}, {"zoo_returns/__init__.py": detectors(
        detector("returns_string", "        return 'okta'"),
        detector("returns_dicts", "        return [{'category': 'chat', 'provider': 'okta', 'evidence': ['x']}]"),
    )}),
    "zoo-raises": ({"raises": "zoo_raises"}, {"zoo_raises/__init__.py": "import asyncio\n" + detectors(
        detector("raises_cancelled", "        raise asyncio.CancelledError()"),
        detector("raises_exit", "        raise SystemExit(3)"),
        detector("raises_interrupt", "        raise KeyboardInterrupt"),
    )}),
    "zoo-sleeps": ({"sleeps": "zoo_sleeps"}, {"zoo_sleeps/__init__.py": "import time\n" + detectors(
        detector("sleeps", "        time.sleep(10)\n        return []"),
    )}),
    "zoo-spins": ({"spins": "zoo_spins"}, {"zoo_spins/__init__.py": detectors(
        detector("spins", "        while True:\n            pass"),
    )}),
    "zoo-liar": ({"liar": "zoo_liar"}, {"zoo_liar/__init__.py": detectors(
        detector("undeclared", "        return [Finding('email', 'microsoft', ['MX x'])]"),
        detector("certain", "        return [Finding('chat', 'microsoft', ['x'], 'certain')]"),
        detector("string_evidence", "        return [Finding('chat', 'microsoft', 'TXT abc')]"),
        detector("typo_provider", "        return [Finding('chat', 'micorsoft', ['x'])]"),
    )}),
    "zoo-unknown-hook": ({"unknown_hook": "zoo_unknown_hook"}, {"zoo_unknown_hook/__init__.py": detectors(
        detector("frob", "        return []"),
    ) + "\n@hookimpl\ndef dijkwacht_frobnicate():\n    return 1\n"}),
    "zoo-non-class": ({"non_class": "zoo_non_class"}, {"zoo_non_class/__init__.py": HEAD + "\n@hookimpl\ndef dijkwacht_detectors():\n    return ['chat']\n"}),
    "zoo-bad-catalog": ({"bad_catalog": "zoo_bad_catalog"}, {
        "zoo_bad_catalog/__init__.py": detectors(detector("badcat", "        return []"))
        + "\nfrom pathlib import Path\n@hookimpl\ndef dijkwacht_catalog_files():\n    return [Path(__file__).with_name('chat.toml')]\n",
        "zoo_bad_catalog/chat.toml": '[providers.slack]\nname = "Slack"\njurisdiction = "USA"\nsource = "https://slack.com"\n',
    }),
    "zoo-impostor": ({"email": "zoo_impostor"}, {"zoo_impostor/__init__.py": detectors(detector("impostor", "        return []", '("email",)'))}),
    "zoo-clash": ({"clash": "zoo_clash"}, {"zoo_clash/__init__.py": detectors(detector("dns", "        return []", '("dns",)'))}),
    "zoo-import-error": ({"import_error": "zoo_import_error"}, {"zoo_import_error/__init__.py": "import a_module_that_is_not_installed\n"}),
    "zoo-old-api": ({"old_api": "zoo_old_api"}, {"zoo_old_api/__init__.py": "DIJKWACHT_API = '>=2.0,<3'\n" + detectors(detector("old", "        return []"))}),
}

# What each misbehaving detector's error says, for every target.
SCAN_ERRORS = {
    "returns_string": "detect() returned str, not a list of Finding",
    "returns_dicts": "rejected 1 of 1 findings: finding 0: dict, not a Finding",
    "raises_cancelled": "raised CancelledError",
    "raises_exit": "SystemExit: 3",
    "raises_interrupt": "KeyboardInterrupt",
    "sleeps": "timed out after 3s",
    "spins": "timed out after 3s",
    "undeclared": "rejected 1 of 1 findings: finding 0: category 'email' is not one the detector declares (chat)",
    "certain": "rejected 1 of 1 findings: finding 0: confidence 'certain' is not one of confirmed, indicated, inferred",
    "string_evidence": "rejected 1 of 1 findings: finding 0: evidence must be a list of strings, not str",
    "typo_provider": "rejected 1 of 1 findings: finding 0: provider 'micorsoft' is not in the catalog",
}

# Plugins that cannot be used at all, and why.
FAILED = {
    "unknown_hook": "implements hooks dijkwacht does not know: dijkwacht_frobnicate (known: dijkwacht_catalog_files, dijkwacht_detectors)",
    "non_class": "dijkwacht_detectors() returned 'chat'; expected Detector subclasses",
    "bad_catalog": "catalog file: {catalog}:3: providers.slack.jurisdiction: 'USA' is not an ISO 3166-1 alpha-2 code",
    "email": "entry-point name 'email' is taken by built-in plugin 'email' (distribution dijkwacht)",
    "clash": "detector name 'dns' is taken by built-in plugin 'dns' (distribution dijkwacht)",
    "import_error": "import failed: ModuleNotFoundError: No module named 'a_module_that_is_not_installed'",
    "old_api": "supports dijkwacht plugin API >=2.0,<3; this dijkwacht has API 1.0",
}

ZONE = """
gemeente.nl MX 0 gemeente-nl.mail.protection.outlook.com.
gemeente.nl TXT "v=spf1 include:spf.protection.outlook.com -all"
gemeente.nl NS ns-12.awsdns-01.org.
login.gemeente.nl CNAME gemeente.okta.com.
gemeente.okta.com A 192.0.2.1
waterschap.nl MX 10 mx.transip.email.
waterschap.nl NS ns0.transip.net.
enterpriseregistration.waterschap.nl CNAME enterpriseregistration.windows.net.
ziekenhuis.nl MX 10 mx0a-00123.pphosted.com.
ziekenhuis.nl NS ns1.example-dns.nl.
"""
TARGETS = ["gemeente.nl", "waterschap.nl", "ziekenhuis.nl"]
IDENTITY = {"gemeente.nl": ["okta"], "waterschap.nl": ["microsoft"], "ziekenhuis.nl": []}


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    """A copy of the identity example (pip builds in the source tree; the repository stays clean)."""
    copy = tmp_path_factory.mktemp("example") / "dijkwacht-identity"
    shutil.copytree(ROOT / "examples" / "dijkwacht-identity", copy, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    return copy


@pytest.fixture(scope="module")
def zoo(tmp_path_factory, example):
    root = tmp_path_factory.mktemp("zoo")
    projects = [project(root / "src", dist, eps, files) for dist, (eps, files) in ZOO.items()]
    return PluginVenv(root / "venv", [*projects, example])


@pytest.fixture(scope="module")
def failed(zoo):
    """FAILED with the installed bad catalog file's path filled in."""
    catalog = zoo.run("-c", "import zoo_bad_catalog, pathlib; print(pathlib.Path(zoo_bad_catalog.__file__).with_name('chat.toml'))").stdout.strip()
    return {name: error.format(catalog=catalog) for name, error in FAILED.items()}


@pytest.fixture(scope="module")
def knot(tmp_path_factory):
    server = Knot(tmp_path_factory.mktemp("knot"), ZONE, TARGETS).start()
    yield server
    server.stop()


@pytest.fixture
def config(tmp_path, knot):
    def write(timeout: float = 3, **daemon: str) -> str:
        lines = "".join(f'{k} = "{v}"\n' for k, v in daemon.items())
        path = tmp_path / "dijkwacht.toml"
        path.write_text(
            f'[agent]\nnameservers = ["{knot.address}"]\ndata_dir = "{IP_RANGES}"\ndns_timeout = 1\ndns_tries = 2\ndetector_timeout = {timeout}\n'
            f"[daemon]\n{lines}" + "".join(f'[[targets]]\ndomain = "{t}"\n' for t in TARGETS)
        )
        return str(path)

    return write


def test_plugins_command_shows_every_plugin_and_why_some_are_not_used(zoo, failed):
    done = zoo.run("-m", "dijkwacht.cli", "plugins", "--format", "json")
    assert done.returncode == 0, done.stderr
    rows = {(r["plugin"], r["distribution"]): r for r in json.loads(done.stdout)}
    assert {name: row["error"] for (name, _), row in rows.items() if row["status"] == "failed"} == failed
    assert rows[("email", "dijkwacht")]["status"] == "loaded"
    identity = rows[("identity", "dijkwacht-identity")]
    assert (identity["status"], identity["version"], identity["api"]) == ("loaded", "0.1.0", ">=1.0,<2")
    assert identity["detectors"][0]["settings"] == {"hosts": ["login", "sso", "enterpriseregistration", "msoid"]}
    assert identity["catalog_files"][0].endswith("dijkwacht_identity/identity.toml")
    strict = zoo.run("-m", "dijkwacht.cli", "plugins", "--strict-plugins")
    assert strict.returncode == 2 and strict.stderr.startswith("dijkwacht: plugin '") and strict.stdout == ""


def scan(zoo, config_path, *extra, autoload=True):
    args = ["-m", "dijkwacht.cli", "scan", "--config", config_path, "--format", "json", *extra]
    if autoload:
        return zoo.run(*args)
    return subprocess.run([str(zoo.python), *args], capture_output=True, text=True, timeout=120, env={**zoo.env(), "DIJKWACHT_DISABLE_PLUGIN_AUTOLOAD": "1"})


def test_scan_with_every_misbehaving_plugin_keeps_builtin_findings_and_blames_each(zoo, failed, config):
    path = config()
    baseline = scan(zoo, path, autoload=False)
    assert baseline.returncode == 0, baseline.stderr
    started = time.monotonic()
    done = scan(zoo, path)
    seconds = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)
    assert [r["target"] for r in results] == TARGETS
    for base, result in zip(json.loads(baseline.stdout), results):
        builtin = [d for d in result["dependencies"] if d["category"] != "identity"]
        assert builtin == base["dependencies"], result["target"]
        identity = [d["provider"] for d in result["dependencies"] if d["category"] == "identity"]
        assert identity == IDENTITY[result["target"]]
        assert base["errors"] == []
        assert {e["detector"]: e["message"] for e in result["errors"]} == SCAN_ERRORS, result["target"]
    for error in failed.values():  # logged once each, with the reason
        assert done.stderr.count(json.dumps(error)[1:-1]) == 1, error
    assert seconds < 60, "the scan must not wait on the blocked and spinning detectors' threads"


def test_strict_plugins_makes_the_scan_fail_fast(zoo, config):
    done = scan(zoo, config(), "--strict-plugins")
    assert done.returncode == 2 and done.stdout == ""
    assert re.match(r"dijkwacht: plugin '\w+' \(distribution zoo-[a-z-]+\): ", done.stderr), done.stderr


def test_disable_in_the_config_turns_plugins_off(zoo, config, tmp_path):
    path = config()
    with open(path, "a") as f:
        f.write('[plugins]\ndisable = ["returns", "raises", "sleeps", "spins", "liar", "identity"]\n')
    done = scan(zoo, path)
    assert done.returncode == 0, done.stderr
    assert all(r["errors"] == [] for r in json.loads(done.stdout))


def test_ctrl_c_still_stops_a_scan_whose_plugins_block_and_spin(zoo, config):
    process = zoo.popen("-m", "dijkwacht.cli", "scan", "--config", config(timeout=60), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(3)  # plugins loaded; the blocking and spinning detectors hold the scan for 60 s
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 130


def get(url: str) -> tuple[int, str, float]:
    started = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode(), time.monotonic() - started
    except urllib.error.HTTPError as exc:
        return exc.code, "", time.monotonic() - started
    except OSError:
        return 0, "", time.monotonic() - started


def metric(text: str, name: str) -> dict[frozenset, float]:
    out = {}
    for line in text.splitlines():
        if line.startswith(name + "{"):
            labels, value = line[len(name) + 1 :].rsplit("} ", 1)
            out[frozenset(re.findall(r'(\w+)="([^"]*)"', labels))] = float(value)
    return out


def test_agent_stays_ready_and_responsive_and_quarantines_blocking_and_spinning_plugins(zoo, config, tmp_path):
    port = free_port()
    path = config(listen=f"127.0.0.1:{port}", interval="2s", state_path=str(tmp_path / "state.db"))
    log = open(tmp_path / "agent.log", "w")
    agent = zoo.popen("-m", "dijkwacht.cli", "run", "--config", path, stdout=subprocess.DEVNULL, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while get(f"{base}/-/ready")[0] != 200:
            assert agent.poll() is None and time.monotonic() < deadline, (tmp_path / "agent.log").read_text()[-3000:]
            time.sleep(0.2)
        # While the blocking and spinning detectors time out on every target, until both are quarantined:
        slowest = 0.0
        deadline = time.monotonic() + 60
        while True:
            status, text, seconds = get(f"{base}/metrics")
            _, _, healthy = get(f"{base}/-/healthy")
            assert status == 200
            slowest = max(slowest, seconds, healthy)
            statuses = {(dict(k)["plugin"], dict(k)["status"]) for k in metric(text, "dijkwacht_plugin_info")}
            if {("sleeps", "quarantined"), ("spins", "quarantined")} <= statuses or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert slowest < 1.0, f"/metrics or /-/healthy took {slowest:.2f} s"
        assert statuses == {
            *((name, "loaded") for name in ("email", "cdn", "dns", "hosting", "video", "identity", "returns", "raises", "liar")),
            *((name, "failed") for name in FAILED),
            ("sleeps", "quarantined"), ("spins", "quarantined"),
        }
        deps = {(dict(k)["target"], dict(k)["category"], dict(k)["provider"]) for k in metric(text, "dijkwacht_dependency_info")}
        assert ("gemeente.nl", "email", "microsoft") in deps and ("gemeente.nl", "identity", "okta") in deps
        assert ("waterschap.nl", "email", "transip") in deps and ("waterschap.nl", "identity", "microsoft") in deps
        errors = {dict(k)["detector"]: v for k, v in metric(text, "dijkwacht_detector_errors_total").items()}
        assert {d for d, v in errors.items() if v > 0} == set(SCAN_ERRORS)
        assert all(errors[d] == 0 for d in ("email", "video", "cdn", "hosting", "dns", "identity"))
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(timeout=30) == 0
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()
        log.close()


@pytest.mark.parametrize("mode", ["strict", "auto"])
def test_the_identity_examples_tests_pass_next_to_broken_plugins(zoo, example, mode):
    # The README's command, in both pytest-asyncio modes; the zoo's broken plugins cannot
    # disturb them, since the kit reads no other plugin's catalog.
    done = zoo.run("-m", "pytest", "-q", "-p", "no:cacheprovider", *NO_CLOUDCOIL, "-o", f"asyncio_mode={mode}", cwd=example)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert re.search(r"\b6 passed\b", done.stdout), done.stdout[-500:]
