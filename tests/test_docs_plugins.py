"""docs/plugins.md's code samples, executed: every python and toml block names the file it is,
the files form a plugin package that is pip-installed into a scratch environment, listed by
`dijkwacht plugins`, configured by the sample configuration, and tested by the sample tests in
pytest-asyncio's strict and auto modes."""

from __future__ import annotations

import json
import re

import pytest

from .conftest import ROOT
from .plugin_venv import PluginVenv

pytestmark = pytest.mark.e2e
# The test venv's cloudcoil (CRD models for the chart tests) registers a pytest plugin that
# needs packages it does not install; dijkwacht's own pytest configuration turns it off.
NO_CLOUDCOIL = ("-p", "no:cloudcoil")

DOC = (ROOT / "docs" / "plugins.md").read_text()
BLOCKS = re.findall(r"```(python|toml)\n(.*?)```", DOC, re.S)


def test_every_sample_names_its_file():
    assert len(BLOCKS) >= 5
    for lang, body in BLOCKS:
        assert re.match(r"# [\w./-]+\.(py|toml)\n", body), f"a {lang} sample without a '# path' first line:\n{body[:200]}"


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    root = tmp_path_factory.mktemp("docs")
    project = root / "project"
    for _, body in BLOCKS:
        path = project / body.split("\n", 1)[0][2:].strip()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body)
    return project, PluginVenv(root / "venv", [project])


def test_the_sample_plugin_is_listed_with_its_settings_and_catalog_file(sample):
    project, venv = sample
    done = venv.run("-m", "dijkwacht.cli", "plugins", "--format", "json", "--strict-plugins")
    assert done.returncode == 0, done.stderr
    [chat] = [r for r in json.loads(done.stdout) if r["plugin"] == "chat"]
    assert (chat["distribution"], chat["version"], chat["status"], chat["api"]) == ("dijkwacht-chat", "1.0.0", "loaded", ">=1.0,<2")
    assert chat["detectors"] == [{"name": "chat", "categories": ["chat"], "description": "Chat platforms from domain-verification TXT records", "settings": {"also_www": False}}]
    assert chat["catalog_files"][0].endswith("dijkwacht_chat/chat.toml")


def test_the_sample_configuration_is_valid(sample):
    project, venv = sample
    done = venv.run("-m", "dijkwacht.cli", "check-config", str(project / "dijkwacht.toml"), "--strict-plugins")
    assert done.returncode == 0, done.stderr
    assert "6 detectors" in done.stdout


@pytest.mark.parametrize("mode", ["strict", "auto"])
def test_the_sample_tests_pass(sample, mode):
    project, venv = sample
    done = venv.run("-m", "pytest", "-q", "-p", "no:cacheprovider", *NO_CLOUDCOIL, "-o", f"asyncio_mode={mode}", "tests", cwd=project)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert re.search(r"\b5 passed\b", done.stdout), done.stdout[-500:]
