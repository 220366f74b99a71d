"""Fuzz tests (Hypothesis): config files, targets files, command lines, web configs and DNS
answers, thousands of cases in all. Whatever comes in, the outcome is data or one clear line:
a ConfigError / exit status with one line on stderr, never another exception or a traceback.

Each test sets its own number of cases and a deadline, so the group stays well under a minute.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import struct

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dijkwacht.config import AGENT_FIELDS, DAEMON_FIELDS, load_config
from dijkwacht.daemon.webconfig import load_web_config
from dijkwacht.dns import STATUSES, DNSEngine
from dijkwacht.errors import DijkwachtError
from dijkwacht.targets import read_targets_file
from dijkwacht.testing import FakeDNSServer, Record

# Derandomized: the same cases every run (a failure reproduces; CI does not flake), no example
# database left in the work tree.
FUZZ = settings(deadline=2000, derandomize=True, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# ---- values ----------------------------------------------------------------------------------

texts = st.one_of(
    st.sampled_from(["", "15m", "1ms", "0s", "nan", "inf", "-1", "1e308", "EU", "fe80::1%lo", "127.0.0.1:99999", "[::1]:53", "__name__", "../x", "\0", "é", "refuse"]),
    st.text(max_size=40),
)
scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    texts,
)
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(texts, inner, max_size=4)), max_leaves=8)


def toml_key(key: str) -> str:
    return json.dumps(key)  # a quoted key: any text is a valid TOML key this way


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # JSON string escapes are TOML's (lone surrogates: invalid TOML, also fine)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


known_keys = {"agent": sorted(AGENT_FIELDS), "daemon": sorted(DAEMON_FIELDS), "targets": ["domain", "labels", "hosts"]}


@st.composite
def config_texts(draw) -> str:
    lines = []
    for section in draw(st.lists(st.sampled_from(["agent", "daemon", "detectors.email", "detectors.nosuch", "targets", "bogus"]), max_size=4)):
        header = f"[[{section}]]" if section == "targets" else f"[{section}]"
        lines.append(header)
        keys = known_keys.get(section, ["hosts", "extra_selectors", "always_check_tenant", "x"])
        for _ in range(draw(st.integers(0, 5))):
            key = draw(st.one_of(st.sampled_from(keys), texts))
            lines.append(f"{toml_key(key)} = {toml_value(draw(values))}")
    if draw(st.booleans()):  # now and then, raw bytes of text where TOML was
        lines.insert(draw(st.integers(0, len(lines))), draw(st.text(max_size=30)))
    return "\n".join(lines) + "\n"


# ---- config files ------------------------------------------------------------------------------


@settings(FUZZ, max_examples=600)
@given(text=config_texts())
def test_config_files(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("cfg") / "dijkwacht.toml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        config = load_config(path, {"email": {"hosts": [], "extra_selectors": [], "always_check_tenant": False, "x": 0.5}})
    except DijkwachtError as exc:
        assert "\n" not in str(exc) and str(exc).startswith(str(path)), str(exc)
        return
    for target in config.targets:
        assert target.domain == target.domain.lower() and len(target.domain) <= 253
        assert all(not k.startswith("__") for k in target.labels)
    assert math.isfinite(config.daemon.interval) and config.daemon.interval >= 1


# ---- targets files -----------------------------------------------------------------------------

lines = st.one_of(
    st.sampled_from([b"example.nl", b"example.nl sector=x", b"ex.nl __name__=x", b"caf\xe9.nl", b"xn--zz.de", b"a" * 5000, b"\x00\x1b[31m.nl", b"# c", b""]),
    st.binary(max_size=120),
    st.text(max_size=80).map(lambda t: t.encode("utf-8", "surrogatepass")),
)


@settings(FUZZ, max_examples=600)
@given(content=st.lists(lines, max_size=12).map(lambda parts: b"\n".join(parts)))
def test_targets_files(tmp_path_factory, content):
    path = tmp_path_factory.mktemp("targets") / "targets.txt"
    path.write_bytes(content)
    targets, problems = read_targets_file(path)
    assert len({t.domain for t in targets}) == len(targets)
    for problem in problems:
        message = str(problem)
        assert message.isprintable() and len(message) < 400 + len(str(path)), message


# ---- web configs ----------------------------------------------------------------------------

web_keys = {
    "tls_server_config": ["cert_file", "key_file", "cert", "key", "client_auth_type", "client_ca_file", "client_ca", "client_allowed_sans",
                          "min_version", "max_version", "cipher_suites", "curve_preferences", "prefer_server_cipher_suites"],
    "http_server_config": ["headers", "http2"],
    "basic_auth_users": ["prometheus", "bob"],
    "rate_limit": ["interval", "burst"],
}
web_values = st.one_of(
    values,
    st.sampled_from(["TLS12", "TLS99", "RequireAnyClientCert", "RequireAndVerifyClientCert", "NoClientCert", "cert.pem", "nope.pem",
                     ["TLS_AES_128_GCM_SHA256"], ["CurveP256", "X25519"], {"X-Frame-Options": "deny"}, {"X-Bad": "x"},
                     "$2y$10$" + "a" * 53, "$2y$04$abc", "1s", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"]),
)


@st.composite
def web_config_documents(draw):
    document = {}
    for section in draw(st.lists(st.sampled_from([*web_keys, "bogus"]), max_size=4, unique=True)):
        keys = web_keys.get(section, ["x"])
        document[section] = draw(st.one_of(st.dictionaries(st.one_of(st.sampled_from(keys), texts), web_values, max_size=4), values))
    return document


@settings(FUZZ, max_examples=400)
@given(document=web_config_documents(), raw=st.booleans(), noise=st.text(max_size=40))
def test_web_configs(tmp_path_factory, document, raw, noise):
    directory = tmp_path_factory.mktemp("web")
    (directory / "cert.pem").write_text("not a certificate\n")
    path = directory / "web.yml"
    path.write_text(noise if raw else yaml.safe_dump(document, allow_unicode=True), encoding="utf-8", errors="surrogatepass")
    try:
        load_web_config(path)
    except DijkwachtError as exc:
        assert "\n" not in str(exc), str(exc)


# ---- command lines ----------------------------------------------------------------------------

option_values = st.one_of(texts, st.sampled_from(["0", "1", "64", "65", "-3", "1.5", "1e9", "nan", "jsonl", "table", "json", "EU", "XX"]))
scan_options = st.sampled_from(["--timeout", "--concurrency", "--workers", "--max-inflight", "--max-qps", "--format", "--home", "--detector",
                                "--data-dir", "--targets-file", "--config", "--progress-interval", "--nameserver"])
flags = st.sampled_from(["--http-probe", "--http-probe-allow-private", "--stats", "--quiet", "--demo", "--resume"])


@st.composite
def command_lines(draw) -> list[str]:
    command = draw(st.sampled_from(["scan", "scan", "scan", "check-config", "history", "catalog", "plugins", "data", "bogus"]))
    argv = [command]
    if command == "scan":
        argv += ["--nameserver", "127.0.0.1:9", "--timeout", "0.05"]  # a closed port: every lookup fails at once
        for _ in range(draw(st.integers(0, 4))):
            if draw(st.booleans()):
                argv += [draw(scan_options), draw(option_values)]
            else:
                argv.append(draw(flags))
        argv += draw(st.lists(st.one_of(st.sampled_from(["example.nl", "xn--zz.de", "a..b", "zürich.ch"]), texts), max_size=2))
        if "--workers" in argv:  # forking per case is slow; the option's checks are exercised anyway
            argv[argv.index("--workers") + 1 : argv.index("--workers") + 2] = [draw(st.sampled_from(["0", "1", "65", "x"]))]
    elif command == "history":
        argv += [draw(st.sampled_from(["--state", "--config"])), draw(st.sampled_from(["none.db", "cfg.toml"])), draw(st.sampled_from(["--since", "--target", "--format"])), draw(option_values)]
    elif command in ("check-config", "catalog", "plugins"):
        argv += draw(st.lists(st.one_of(st.sampled_from(["cfg.toml", "--format", "json", "--config"]), texts), max_size=3))
    else:
        argv += draw(st.lists(option_values, max_size=3))
    return argv


@settings(FUZZ, max_examples=250, deadline=5000)
@given(argv=command_lines(), config=config_texts())
def test_command_lines(tmp_path_factory, monkeypatch, capsys, argv, config):
    from dijkwacht.cli import main

    directory = tmp_path_factory.mktemp("cli")
    (directory / "cfg.toml").write_text(config, encoding="utf-8", errors="surrogatepass")
    monkeypatch.chdir(directory)
    if argv[0] == "data":  # never download anything
        monkeypatch.setattr("dijkwacht.cli_data.run", lambda args, path: 0)
    try:
        status = main(argv)
    except SystemExit as exc:  # argparse: usage errors (2), --help/--version (0)
        status = exc.code
    err = capsys.readouterr().err
    assert status in (0, 1, 2, 130), (argv, status, err)
    assert "Traceback" not in err and "internal error" not in err, (argv, err)


# ---- DNS answers ------------------------------------------------------------------------------


class HostileServer(asyncio.DatagramProtocol):
    """Answers every query with bytes Hypothesis chose (behind the query's own id and question)."""

    def __init__(self) -> None:
        self.reply = b""
        self.transport = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        question_end = 12
        while question_end < len(data) and data[question_end]:
            question_end += data[question_end] + 1
        question = data[12 : question_end + 5]
        self.transport.sendto(data[:2] + self.reply[:10] + question + self.reply[10:], addr)


names = itertools.count()


@st.composite
def raw_answers(draw) -> bytes:
    flags = draw(st.integers(0, 0xFFFF)) | 0x8000  # a response, anything else goes
    counts = struct.pack("!HHHH", 1, *draw(st.tuples(st.integers(0, 6), st.integers(0, 3), st.integers(0, 3))))
    body = b""
    for _ in range(draw(st.integers(0, 4))):
        owner = draw(st.sampled_from([b"\xc0\x0c", b"\xc0\x00", b"\xc0\xff", b"\x03abc\x00", b"\x3fx" + b"y" * 70, b"\x00"]))
        rtype = draw(st.sampled_from([1, 5, 15, 16, 28, 33, 2, 12, 65535]))
        rdata = draw(st.one_of(st.binary(max_size=80), st.sampled_from([b"\x7f\x00\x00\x01", b"\xc0\x0c", b"\x00\x0a\xc0\x0c", b"\x05hello"])))
        length = draw(st.one_of(st.just(len(rdata)), st.integers(0, 0xFFFF)))
        body += owner + struct.pack("!HHIH", rtype, 1, draw(st.integers(0, 2**32 - 1)), length) + rdata
    return struct.pack("!H", flags) + counts + body + draw(st.binary(max_size=20))


@pytest.fixture(scope="module")
def hostile():
    loop = asyncio.new_event_loop()
    server = HostileServer()
    transport, _ = loop.run_until_complete(loop.create_datagram_endpoint(lambda: server, local_addr=("127.0.0.1", 0)))
    engine = loop.run_until_complete(_engine(f"127.0.0.1:{transport.get_extra_info('sockname')[1]}"))
    yield loop, server, engine
    loop.run_until_complete(engine.close())
    transport.close()
    loop.close()


async def _engine(address: str) -> DNSEngine:
    return DNSEngine([address], timeout=0.3, tries=1)


@settings(FUZZ, max_examples=800)
@given(reply=raw_answers(), qtype=st.sampled_from(["A", "AAAA", "CNAME", "MX", "NS", "TXT", "SRV", "PTR"]))
def test_raw_dns_answers(hostile, reply, qtype):
    loop, server, engine = hostile
    server.reply = reply
    answer = loop.run_until_complete(engine.resolve(f"q{next(names)}.example.nl", qtype))
    assert answer.status in STATUSES
    for record in answer.records:
        assert isinstance(record, (str, tuple))


record_values = {
    "A": st.one_of(st.ip_addresses(v=4).map(str), st.sampled_from(["127.0.0.1", "169.254.169.254"])),
    "AAAA": st.ip_addresses(v=6).map(str),
    "CNAME": st.sampled_from(["ex.nl.", "www.ex.nl.", "x.outlook.com.", "a.b.c.d.e.f.g.h.", "."]),
    "MX": st.tuples(st.integers(0, 65535).map(str), st.sampled_from(["ex.nl.", ".", "mx.transip.email.", "ex-nl.mail.protection.outlook.com."])),
    "TXT": st.one_of(st.text(max_size=300), st.sampled_from(["v=spf1 include:ex.nl -all", "v=spf1 redirect=ex.nl", "v=spf1 ip4:1.2.3.4/99 a:%{d} -all", "MS=ms1234"])),
    "NS": st.sampled_from(["ns1.ex.nl.", "ns-1.awsdns-1.com.", "."]),
    "SRV": st.tuples(st.integers(0, 9).map(str), st.integers(0, 9).map(str), st.integers(0, 65535).map(str), st.sampled_from(["sip.ex.nl.", "."])),
}


@st.composite
def zones(draw) -> list[Record]:
    owners = ["ex.nl", "www.ex.nl", "_a.ex.nl", "lyncdiscover.ex.nl", "_sip._tls.ex.nl", "selector1._domainkey.ex.nl", "autodiscover.ex.nl"]
    records = []
    for _ in range(draw(st.integers(0, 10))):
        rtype = draw(st.sampled_from(sorted(record_values)))
        value = draw(record_values[rtype])
        rdata = value if isinstance(value, tuple) else (value,)
        records.append(Record(draw(st.sampled_from(owners)), rtype, rdata, draw(st.integers(0, 600))))
    return records


@pytest.fixture(scope="module")
def scanner_over_fake_dns():
    from dijkwacht.config import AgentSettings
    from dijkwacht.runtime import build_runtime, load_data

    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(FakeDNSServer("").start())
    settings_ = AgentSettings(nameservers=(server.address,), dns_timeout=0.3, dns_tries=1)
    data = load_data(settings_)

    async def make():
        return build_runtime(settings_, data)

    runtime = loop.run_until_complete(make())
    yield loop, server, runtime
    loop.run_until_complete(runtime.close())
    loop.run_until_complete(server.stop())
    loop.close()


@settings(FUZZ, max_examples=250)
@given(records=zones())
def test_any_zone_scans_to_data_or_one_line_errors(scanner_over_fake_dns, records):
    from dijkwacht.targets import Target

    loop, server, runtime = scanner_over_fake_dns
    try:
        server.load(records)
    except (ValueError, UnicodeError, OSError, struct.error):
        return  # the test server cannot encode this record (e.g. TXT text it cannot split)
    runtime.engine._cache.clear()
    result = loop.run_until_complete(runtime.scanner.scan(Target("ex.nl")))
    for error in result.errors:
        # Lookup failures only: a detector that crashed would say e.g. "TypeError: ...".
        assert "Error:" not in error.message and "Exception" not in error.message, error
    json.dumps(result.to_json())
