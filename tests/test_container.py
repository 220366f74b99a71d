"""The Containerfile, checked statically -- parsed by the official Dockerfile parser (PyPI
`dockerfile`, the Go parser BuildKit uses); there is no container engine on the test machine,
so the image itself is not built here -- and its HEALTHCHECK command and default configuration
run against a real agent."""

from __future__ import annotations

import http.server
import json
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
import tomllib
import urllib.error
import urllib.request
from importlib.metadata import distribution

import dockerfile
import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from .knot import free_port
from .test_deploy_artifacts import CONTRACT, DIJKWACHT, ROOT, check_config, run

CONTAINERFILE = ROOT / "deploy" / "container" / "Containerfile"
CONSTRAINTS = ROOT / "deploy" / "container" / "constraints.txt"
BASE = re.compile(r"^python:3\.12-slim@sha256:[0-9a-f]{64}$")


def instructions() -> list[dockerfile.Command]:
    return list(dockerfile.parse_file(str(CONTAINERFILE)))


def stages() -> list[list[dockerfile.Command]]:
    out: list[list[dockerfile.Command]] = []
    for ins in instructions():
        if ins.cmd == "FROM":
            out.append([])
        out[-1].append(ins)
    return out


def final(cmd: str) -> list[dockerfile.Command]:
    return [i for i in stages()[-1] if i.cmd == cmd]


def test_multi_stage_build_on_a_base_pinned_by_digest():
    froms = [s[0].value for s in stages()]
    assert [f[2] for f in froms[:-1]] == ["build", "data"] and len(froms[-1]) == 1
    bases = [f[0] for f in froms if f[0] != "build"]
    assert len(bases) == 2 and all(BASE.match(b) for b in bases) and len(set(bases)) == 1, bases
    # The final stage takes only the virtualenv and the data from the others: no build context.
    copies = final("COPY")
    assert all(any(flag.startswith("--from=") for flag in c.flags) for c in copies), [c.original for c in copies]


def test_runs_as_a_numeric_non_root_user():
    (user,) = final("USER")
    uid, _, gid = user.value[0].partition(":")
    assert uid.isdigit() and uid != "0" and gid.isdigit()
    assert final("EXPOSE")[0].value == ("9849",)
    assert list(final("ENTRYPOINT")[0].value) == ["dijkwacht", "run"]


def test_oci_labels_name_source_revision_and_version():
    labels = dict(zip(*[iter(v.strip('"') for label in final("LABEL") for v in label.value)] * 2, strict=True))
    args = dict(a.value[0].split("=", 1) for a in final("ARG"))
    for key in ("source", "revision", "version", "licenses", "title"):
        assert f"org.opencontainers.image.{key}" in labels, key
    assert labels["org.opencontainers.image.revision"] == "${REVISION}"
    assert labels["org.opencontainers.image.version"] == "${VERSION}"
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert args["VERSION"] == pyproject["project"]["version"]
    assert labels["org.opencontainers.image.licenses"] == pyproject["project"]["license"]


def test_copies_what_the_package_build_needs():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    needed = {"pyproject.toml", pyproject["project"]["readme"]}
    needed |= {d.rstrip("/") for d in pyproject["tool"]["setuptools"]["package-dir"].values()}
    copied = {s.rstrip("/") for c in stages()[0] if c.cmd == "COPY" for s in c.value[:-1]}
    assert needed <= copied, f"not copied into the image: {needed - copied}"
    assert "." not in copied, "copy only what the build needs, not the whole context"
    for source in copied | {s.rstrip("/") for c in instructions() if c.cmd == "COPY" and not c.flags for s in c.value[:-1]}:
        assert (ROOT / source).exists(), source


def test_install_is_pinned_by_the_constraints_file():
    (install,) = [c for c in stages()[0] if c.cmd == "RUN" and "pip install" in c.value[0]]
    assert "--constraint constraints.txt ." in install.value[0]
    pins = {}
    for line in CONSTRAINTS.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version and name == name.lower(), line
            pins[name] = version
    # Every runtime dependency, direct or not, is pinned, and the pins meet pyproject.toml.
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    direct = [Requirement(r) for r in pyproject["project"]["dependencies"]]
    for req in direct:
        key = req.name.lower().replace("_", "-")
        assert key in pins, key
        assert pins[key] in SpecifierSet(str(req.specifier)), (key, pins[key], req.specifier)
    closure, todo = set(), [r.name for r in direct]
    while todo:
        name = todo.pop().lower().replace("_", "-")
        if name in closure:
            continue
        closure.add(name)
        for raw in distribution(name).requires or []:
            req = Requirement(raw)
            if req.marker is None or req.marker.evaluate({"extra": "", "python_version": "3.12"}):
                todo.append(req.name)
    assert closure <= set(pins), f"not pinned: {closure - set(pins)}"


def test_image_carries_a_snapshot_of_the_ip_data():
    (update,) = [c for c in stages()[1] if c.cmd == "RUN"]
    assert "dijkwacht data update --data-dir /snapshot $from" in update.value[0]
    assert '"$status" -eq 3' in update.value[0]  # a partial snapshot is fine, none is not
    targets = {c.value[-1] for c in final("COPY") if "--from=data" in c.flags}
    # The Helm chart seeds new volumes from /usr/share/dijkwacht/ip-ranges.
    helpers = (ROOT / "deploy" / "helm" / "dijkwacht" / "templates" / "_helpers.tpl").read_text(encoding="utf-8")
    snapshot = re.search(r'define "dijkwacht.snapshotDir" -}}(.*?){{', helpers).group(1)
    assert targets == {snapshot + "/", "/var/lib/dijkwacht/ip-ranges/"}
    assert (ROOT / "deploy" / "container" / "ip-data" / "README.md").is_file()


def default_config() -> str:
    text = next(c.value[0] for c in final("RUN") if "dijkwacht.toml" in c.value[0])
    m = re.search(r"printf '%s\\n' (.*?) > /etc/dijkwacht/dijkwacht\.toml", text)
    assert m, text
    return "\n".join(shlex.split(m.group(1))) + "\n"


def test_default_config_is_valid(tmp_path):
    text = default_config()
    cfg = tomllib.loads(text)
    assert cfg["daemon"]["listen"] == ":9849"
    assert cfg["daemon"]["state_path"] == "/var/lib/dijkwacht/state.db"
    assert cfg["agent"]["data_dir"] == "/var/lib/dijkwacht/ip-ranges"
    f = tmp_path / "dijkwacht.toml"
    f.write_text(text, encoding="utf-8")
    check_config(f)


class _Handler(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self):  # noqa: N802
        self.send_response(self.status if self.path == "/-/healthy" else 404)
        self.end_headers()
        self.wfile.write(b"ok\n")

    def log_message(self, *args):
        pass


def healthcheck_command(port: int) -> list[str]:
    (hc,) = final("HEALTHCHECK")
    cmd = json.loads(hc.original[hc.original.index("CMD") + 3:].strip())
    assert cmd[0] == "python"
    return [sys.executable, *(c.replace("127.0.0.1:9849", f"127.0.0.1:{port}") for c in cmd[1:])]


@pytest.mark.parametrize("status, healthy", [(200, True), (503, False)])
def test_healthcheck_command(status, healthy):
    handler = type("H", (_Handler,), {"status": status})
    server = http.server.HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        res = run(healthcheck_command(server.server_address[1]), timeout=30)
        assert (res.returncode == 0) is healthy, res.stderr
    finally:
        server.shutdown()
        server.server_close()


def test_healthcheck_fails_without_server():
    server = http.server.HTTPServer(("127.0.0.1", 0), _Handler)
    port = server.server_address[1]
    server.server_close()  # nothing listens there any more
    assert run(healthcheck_command(port), timeout=30).returncode != 0


# --------------------------------------------------------------------------
# The image's configuration against a real agent (loopback only; no targets at
# first, so no DNS traffic)
# --------------------------------------------------------------------------

@pytest.fixture
def live_agent(tmp_path):
    """The image's default configuration, with paths and port moved into tmp_path."""
    port = free_port()
    text = default_config().replace("/var/lib/dijkwacht", str(tmp_path / "state")).replace('":9849"', f'":{port}"')
    (tmp_path / "state" / "ip-ranges").mkdir(parents=True)
    config = tmp_path / "dijkwacht.toml"
    config.write_text(text, encoding="utf-8")
    log = (tmp_path / "agent.log").open("w")
    proc = subprocess.Popen([*DIJKWACHT, "run", "--config", str(config), "--config.reload-interval", "0.2s"], stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(base + "/-/healthy", timeout=1)
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail("agent did not come up: " + (tmp_path / "agent.log").read_text())
            time.sleep(0.2)
    yield proc, base, port, config
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    log.close()


def _metrics(base: str) -> str:
    return urllib.request.urlopen(base + "/metrics", timeout=5).read().decode()


def _sample(text: str, name: str) -> float:
    m = re.search(rf"^{name} (\S+)$", text, re.M)
    assert m, name
    return float(m.group(1))


def test_real_agent_metric_families_match_the_contract(live_agent):
    _, base, _, _ = live_agent
    families = dict(re.findall(r"^# TYPE (dijkwacht_\w+) (\w+)$", _metrics(base), re.M))
    exposed = {}
    for name, mtype in families.items():
        if name.endswith("_created") and CONTRACT.get(name[: -len("_created")], ("",))[0] == "histogram":
            continue  # prometheus_client's creation-time companion of the histogram
        # prometheus_client names a counter family without its _total sample suffix.
        key = name + "_total" if mtype == "counter" and not name.endswith("_total") else name
        exposed[key] = mtype
    assert exposed == {n: t for n, (t, _) in CONTRACT.items()}


def test_real_agent_healthcheck_readiness_reload_and_stop(live_agent):
    proc, base, port, config = live_agent
    assert run(healthcheck_command(port), timeout=30).returncode == 0
    # Kubernetes readiness probe path: ready at once with no targets.
    assert urllib.request.urlopen(base + "/-/ready", timeout=5).status == 200
    first = _sample(_metrics(base), "dijkwacht_config_last_reload_success_timestamp_seconds")
    # POST /-/reload is off without --web.enable-lifecycle.
    request = urllib.request.Request(base + "/-/reload", data=b"", method="POST")
    with pytest.raises(urllib.error.HTTPError, match="403"):
        urllib.request.urlopen(request, timeout=5)
    # An edited configuration file is reloaded without a signal (a ConfigMap update).
    time.sleep(1.1)
    config.write_text(config.read_text(encoding="utf-8") + '\n[[targets]]\ndomain = "example.nl"\n', encoding="utf-8")
    deadline = time.monotonic() + 10
    while _sample(_metrics(base), "dijkwacht_targets") != 1:
        assert time.monotonic() < deadline, "the edited config was not reloaded"
        time.sleep(0.2)
    second = _sample(_metrics(base), "dijkwacht_config_last_reload_success_timestamp_seconds")
    assert second > first
    # systemd's ExecReload (kill -HUP).
    time.sleep(1.1)
    proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while _sample(_metrics(base), "dijkwacht_config_last_reload_success_timestamp_seconds") <= second:
        assert time.monotonic() < deadline, "SIGHUP did not reload"
        time.sleep(0.2)
    assert _sample(_metrics(base), "dijkwacht_config_last_reload_successful") == 1
    # SIGTERM (systemd stop, container stop): exits well within TimeoutStopSec.
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
